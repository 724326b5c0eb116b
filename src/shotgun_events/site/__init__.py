"""The local site: an HTTP api3 server on SQLite that the real shotgun_api3 client can use.

Run it with ``LocalSite`` (a context manager) in tests, or ``shotgunEventDaemon site``
from a shell. Test controls (reserved event ids, bulk events, faults, counters, activity)
are methods on ``LocalSite`` and ``POST /_local/<action>`` endpoints.
"""

from __future__ import annotations

from .local import CONTROL_ACTIONS, DEFAULT_SCRIPTS, LocalSite

__all__ = ["CONTROL_ACTIONS", "DEFAULT_SCRIPTS", "LocalSite"]
