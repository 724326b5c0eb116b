"""Helpers for plugin authors' own tests: realistic events and loading a plugin without a daemon.

The pytest plugin (``pytest_plugin``: fixtures ``local_site`` and ``plugin_under_test``,
docs/testing-plugins.md), the ``try`` dry run (``dryrun``) and ``capture`` live here
too; this package may import every daemon package below it and the local site.

Example::

    from shotgun_events.testing import deliver, load_plugin, make_event

    callbacks = load_plugin("plugins/shotStatusRollup.py")
    event = make_event("Shotgun_Task_Change", "sg_status_list", entity_id=42, new_value="fin")
    deliver(callbacks, event, sg=my_fake_shotgun)
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from shotgun_events.events import Event
from shotgun_events.plugins.registrar import Callback, Registrar
from shotgun_events.testing.capture import load_events

__all__ = ["deliver", "load_events", "load_plugin", "make_event"]

_UNSET: Final[Any] = object()

_META_TYPES: Final = {
    "New": "new_entity",
    "Retirement": "entity_retirement",
    "Revival": "entity_revival",
    "Change": "attribute_change",
}


def make_event(
    event_type: str = "Shotgun_Task_Change",
    attribute_name: str | None = _UNSET,
    *,
    id: int = 1,
    entity_id: int = 1,
    entity: dict[str, Any] | None = _UNSET,
    old_value: Any = None,
    new_value: Any = None,
    user: dict[str, Any] | None = _UNSET,
    project: dict[str, Any] | None = _UNSET,
    meta: dict[str, Any] | None = _UNSET,
    session_uuid: str | None = _UNSET,
    created_at: datetime | None = None,
) -> Event:
    """Build an EventLogEntry dict shaped like the ones the daemon passes to callbacks.

    For ``Shotgun_<Entity>_<Change|New|Retirement|Revival>`` types the entity
    link and ``meta`` follow the site's conventions; a ``_Change`` event's
    attribute defaults to ``sg_status_list``, other types have none. Pass any
    field explicitly (``entity=None`` for an entity that was deleted since).
    """
    entity_type, action = _split_event_type(event_type)
    if attribute_name is _UNSET:
        attribute_name = "sg_status_list" if action == "Change" else None
    if entity is _UNSET:
        entity = (
            {"type": entity_type, "id": entity_id, "name": f"{entity_type} {entity_id}"}
            if entity_type
            else None
        )
    if meta is _UNSET:
        meta = _make_meta(action, entity_type, entity_id, attribute_name, old_value, new_value)
    return {
        "type": "EventLogEntry",
        "id": id,
        "event_type": event_type,
        "attribute_name": attribute_name,
        "meta": meta,
        "entity": entity,
        "user": ({"type": "HumanUser", "id": 1, "name": "Test User"} if user is _UNSET else user),
        "project": (
            {"type": "Project", "id": 1, "name": "Demo Project"} if project is _UNSET else project
        ),
        "session_uuid": str(uuid.uuid4()) if session_uuid is _UNSET else session_uuid,
        "created_at": created_at or datetime.now(UTC),
    }


def _split_event_type(event_type: str) -> tuple[str | None, str | None]:
    """``Shotgun_Task_Change`` -> ("Task", "Change"); other types -> (None, None)."""
    if event_type.startswith("Shotgun_"):
        entity_type, _, action = event_type[len("Shotgun_") :].rpartition("_")
        if entity_type and action in _META_TYPES:
            return entity_type, action
    return None, None


def _make_meta(
    action: str | None,
    entity_type: str | None,
    entity_id: int,
    attribute_name: str | None,
    old_value: Any,
    new_value: Any,
) -> dict[str, Any]:
    if action is None:
        return {}
    meta: dict[str, Any] = {
        "type": _META_TYPES[action],
        "entity_type": entity_type,
        "entity_id": entity_id,
    }
    if action == "Change":
        meta.update(
            attribute_name=attribute_name,
            field_data_type="status_list" if attribute_name == "sg_status_list" else "text",
            old_value=old_value,
            new_value=new_value,
            in_create=False,
        )
    return meta


def load_plugin(path: str | Path, *, logger: logging.Logger | None = None) -> list[Callback]:
    """Import a plugin file and run its ``registerCallbacks``, as the daemon would.

    Returns the registered callbacks in registration order. A plugin that fails
    to import or register raises ``PluginError`` (chained to its own error)
    instead of being switched off. Every call imports a fresh module.
    """
    # Imported here so that `testing` stays importable without pulling the loader into plugins.
    from shotgun_events.plugins.loader import register_plugin_file

    path = Path(path)
    registrar = Registrar(path.stem, path, logger or logging.getLogger(f"plugin.{path.stem}"))
    register_plugin_file(path, path.read_bytes(), registrar)
    return registrar.callbacks


def deliver(callbacks: list[Callback], event: Event, *, sg: object = None) -> list[Callback]:
    """Call every callback whose matchEvents selects ``event``, in order, as the daemon would.

    Exceptions propagate (a test wants to see them). Returns the callbacks called.
    """
    called = [cb for cb in callbacks if cb.matches(event)]
    for cb in called:
        # A shallow copy per call, as the daemon passes it.
        cb.func(sg, cb.logger, dict(event), cb.args)
    return called
