"""Durable positions: the journal + snapshot store, its file format and the legacy pickle import.

Owns the state file and everything written to it; the protocols the engine
and the runners see it through. May import: the core and ``config``.
"""
