"""The daemon as a client of the site: connections per credential, the event source, retries.

Owns every ``shotgun_api3`` object the daemon makes (the engine's reads and the
plugins' ``sg``), the retry policy for site calls and the ceiling on plugins'
calls (``limits``). May import: the core and ``config``.
"""
