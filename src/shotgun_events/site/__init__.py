"""The local site: an HTTP api3 server on SQLite that the real shotgun_api3 client can use.

Run it with ``LocalSite`` (a context manager) in tests, or ``shotgunEventDaemon site``
from a shell. Test controls (reserved event ids, bulk events, faults, counters, activity,
custom entity types) are methods on ``LocalSite`` and ``POST /_local/<action>``
endpoints (JSON object of the method's keyword arguments in, ``{"result": ...}`` out,
HTTP 400 ``{"error": ...}`` on misuse).

Refused calls get HTTP 200 ``{"exception": true, "message", "error_code"}``: 102 for
authentication (the client raises AuthenticationFault), 103 for unknown types, fields,
relations, wrong values and missing entities, 104 for unknown methods, malformed bodies,
wrong paths and verbs (the client raises Fault).

Served as a real site serves them (the official client's live suite passes against it,
see docs/testing-plugins.md): CRUD, batch, summarize, the schema_* reads and
schema_field_create, follows, each data type's value rules (rules.py), uploads,
downloads and thumbnails kept beside the database (files.py), text_search,
activity_stream_read, preferences_read, work_schedule_read/update, export_page's
answers, Page and project last access, people's logins with passwords and sessions,
sudo_as_login, include_archived_projects, the documented additional_filter_presets, and
a studio's own schema from mockgun's files (studio.py, read without running them).

Where it knowingly differs from a real site:
- scripts' ApiUsers have ``generate_event_log_entries`` on (a real site defaults it off;
  ``LocalSite(generate_events=False)`` gives the real default);
- new event rows are visible at once; use ``reserve_event_ids`` to create the gaps that
  fill in later, as on a real site;
- unknown return fields come back as None; the ``user``/``project`` names inside events
  are those at write time (``entity`` follows renames, retirement and revival);
- there are no permission rules: any script or person may do anything, except that
  only scripts may ``sudo_as_login``; no login lockout after failed passwords (a set
  ``locked_until`` is honoured), no two-factor or SSO logins; seeded people's password
  is ``demo``;
- a thumbnail reads as the transient placeholder for 2 seconds, then is served as
  uploaded (not resized or converted); a download is served without the session cookie
  when none comes (the client cannot send it to a ``host:port`` address);
- text_search matches names holding every word typed, type by type and by name (no
  relevance ranking); an activity stream holds the entity's creation, field changes,
  retirement and revival and the creation of entities linked to it at creation (no
  replies, no events of linked entities after that);
- the work week is the studio's Monday to Friday (no project or person work weeks) and
  tasks are never rescheduled; preferences are a new site's defaults; no page is marked
  "API exportable", so export_page always says the export is not available;
- text comparisons ignore case for ASCII letters only;
- note_thread_read, nav_*, user_subscriptions_*, schema_field_update/_delete and
  per-project schema visibility are not served (the client gets "Unknown method", or
  the project is ignored);
- ``schema_field_create`` logs one ``Shotgun_DisplayColumn_New`` row (meta
  ``new_entity`` for a DisplayColumn);
- on a studio's schema, multi-entity fields that are each other's reverse on the real
  site are kept apart (except the pairs of the site's own schema), and calculated,
  summary and pivot fields are stored but never computed.

``LocalSite(open_scripts=True)`` accepts any script name at its first call.
"""

from __future__ import annotations

from .local import DEFAULT_SCRIPTS, LocalSite
from .sitecontrols import CONTROL_ACTIONS

__all__ = ["CONTROL_ACTIONS", "DEFAULT_SCRIPTS", "LocalSite"]
