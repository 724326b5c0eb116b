"""What reaches people: log files (main, per plugin, timing, secrets), error email, plugin output.

May import: the core and ``config``.
"""
