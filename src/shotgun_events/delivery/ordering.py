"""Ordering keys: which events of one plugin must run one after the other.

Events with the same key run one at a time in id order; events with
different keys may run at once. ``entity`` (type + id, the default) keeps a
shot's ``ip`` -> ``fin`` in order; ``project`` serialises each project;
``none`` gives every event its own key (no order at all); a dotted field
(``meta.entity_id``, ``user.id``) keys on that value of the event. An event
without the field (``entity`` None, say) gets a key shared by all such
events, so they keep their order among themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from shotgun_events.events import Event

#: Maps an event to its ordering key.
KeyFn = Callable[[Event], Hashable]

#: The key of events that lack the ordering field: they stay in order among themselves.
NO_VALUE: Hashable = ("<none>",)


def _link(value: Any) -> Hashable:
    """Key of an entity link or plain value: (type, id) for links, the value if hashable."""
    if isinstance(value, dict):
        if "id" in value:
            return (value.get("type"), value.get("id"))
        return repr(sorted(value.items()))
    if value is None:
        return NO_VALUE
    if isinstance(value, list):
        return tuple(_link(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value  # type: ignore[no-any-return]


def _by_entity(event: Event) -> Hashable:
    return _link(event.get("entity"))


def _by_project(event: Event) -> Hashable:
    return _link(event.get("project"))


def _by_id(event: Event) -> Hashable:
    return event.get("id")


def key_function(order_by: str) -> KeyFn:
    """Return the key function for an ``order_by`` value; ValueError for a malformed one."""
    named: dict[str, KeyFn] = {"entity": _by_entity, "project": _by_project, "none": _by_id}
    if order_by in named:
        return named[order_by]
    parts = order_by.split(".")
    if not order_by or not all(p.isidentifier() for p in parts):
        raise ValueError(
            f"order_by must be entity, project, none or a dotted field of the event, "
            f"not {order_by!r}"
        )

    def by_field(event: Event) -> Hashable:
        value: Any = event
        for part in parts:
            if not isinstance(value, dict):
                return NO_VALUE
            value = value.get(part)
        return _link(value)

    return by_field
