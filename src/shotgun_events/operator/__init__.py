"""The operator's side: the control socket, operations inside the engine, offline commands, status.

Owns replay, skip, reset, enable/disable, reload, status and the audit list.
May import everything below it, including ``engine`` and ``service`` (the
pid file says whether the daemon runs).
"""
