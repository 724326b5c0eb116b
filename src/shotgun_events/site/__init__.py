"""The local site: an HTTP api3 server on SQLite that the real shotgun_api3 client can use.

Run it with ``LocalSite`` (a context manager) in tests, or ``shotgunEventDaemon site``
from a shell. Test controls (reserved event ids, bulk events, faults, counters, activity)
are methods on ``LocalSite`` and ``POST /_local/<action>`` endpoints (JSON object of the
method's keyword arguments in, ``{"result": ...}`` out, HTTP 400 ``{"error": ...}`` on
misuse).

Refused calls get HTTP 200 ``{"exception": true, "message", "error_code"}``: 102 for
authentication (the client raises AuthenticationFault), 103 for unknown types, fields,
relations, wrong values and missing entities, 104 for unknown methods, malformed bodies,
wrong paths and verbs (the client raises Fault).

Where it knowingly differs from a real site:
- scripts' ApiUsers have ``generate_event_log_entries`` on (a real site defaults it off;
  ``LocalSite(generate_events=False)`` gives the real default);
- new event rows are visible at once; use ``reserve_event_ids`` to create the gaps that
  fill in later, as on a real site;
- unknown return fields come back as None; ``user_login`` logins accept any password;
- the ``user``/``project`` names inside events are those at write time (``entity``
  follows renames, retirement and revival);
- uploads, thumbnails (``upload*``, ``share_thumbnail``), text search, activity streams
  and note threads are not served (the client gets "Unknown method"); human users'
  passwords are never checked or kept (``password_proxy`` is accepted and dropped);
- ``additional_filter_presets`` knows LATEST (by ENTITIES_CREATED_AT, or by pipeline
  step) on Version and PublishedFile; any other preset is refused, never ignored;
- ``schema_field_create`` logs one ``Shotgun_DisplayColumn_New`` row (meta
  ``new_entity`` for a DisplayColumn); ``schema_field_update``/``_delete`` are not served.

Also served: follow / unfollow / followers / following; the standard fields listed in
``standard.py`` (float, color, duration, tag_list types); Playlist and LocalStorage.
``LocalSite(open_scripts=True)`` accepts any script name at its first call.
"""

from __future__ import annotations

from .local import DEFAULT_SCRIPTS, LocalSite
from .sitecontrols import CONTROL_ACTIONS

__all__ = ["CONTROL_ACTIONS", "DEFAULT_SCRIPTS", "LocalSite"]
