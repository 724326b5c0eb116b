"""What reaches people: log files (main, per plugin, timing, secret scrubbing) and error email.

May import: the core and ``config``.
"""
