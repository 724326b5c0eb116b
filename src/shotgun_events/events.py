"""The event type shared by every module, and the fields the daemon reads from the site."""

from __future__ import annotations

from typing import Any

#: An EventLogEntry as returned by shotgun_api3: a plain dict.
Event = dict[str, Any]

#: The fields the original daemon reads; plugins rely on exactly these being present.
EVENT_FIELDS: tuple[str, ...] = (
    "id",
    "event_type",
    "attribute_name",
    "meta",
    "entity",
    "user",
    "project",
    "session_uuid",
    "created_at",
)

#: A plugin is identified by its collection folder and its file name without ``.py``.
PluginKey = tuple[str, str]
