"""Ordering keys and the per-key line: which events of one plugin run one after the other.

Events with the same key run one at a time; events with different keys may
run at once. ``entity`` (type + id, the default) keeps a shot's ``ip`` ->
``fin`` in order; ``project`` serialises each project; ``none`` gives every
event its own key; a dotted field (``meta.entity_id``, ``user.id``) keys on
that value. An event without the field (``entity`` None, say) gets a key
shared by all such events, so they keep their order among themselves.

``KeyLines`` is the one per-key line, used by a plugin's pool and by Celery:
events of one key wait in the order they came (id order; a late event after
the later events of its key, since it turns up later), one key is *out* at a
time, and the next taker gets the waiting key whose next event has the
lowest id, so positions move as fast as they can.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from shotgun_events.events import Event

#: Maps an event to its ordering key.
KeyFn = Callable[[Event], Hashable]
#: The key of events that lack the ordering field: they stay in order among themselves.
NO_VALUE: Hashable = ("<none>",)


def key_function(order_by: str) -> KeyFn:
    """The key function of an ``order_by`` value; ValueError for a malformed one."""
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


class KeyLines:
    """Events waiting per ordering key; a key is *out* while one of its events (or tasks) runs.

    Not thread-safe: the executor calls it under its own lock.
    """

    def __init__(self, key: KeyFn) -> None:
        self._key = key
        self._lines: dict[Hashable, deque[Event]] = {}
        self._out: set[Hashable] = set()
        #: (id of the key's next event, tie-breaker, key) for keys that may start now.
        self._ready: list[tuple[int, int, Hashable]] = []
        self._seq = 0
        self.waiting = 0

    def add(self, event: Event) -> bool:
        """Queue an event behind the others of its key; True when its key became ready."""
        key = self._key(event)
        self.waiting += 1
        line = self._lines.get(key)
        if line is not None:
            line.append(event)
            return False
        self._lines[key] = deque((event,))
        if key in self._out:
            return False
        self._push(key, event)
        return True

    def lowest_ready(self) -> int | None:
        """The id of the next event of the most urgent ready key, or None."""
        return self._ready[0][0] if self._ready else None

    def take(self, most: int = 1) -> tuple[Hashable, list[Event]] | None:
        """Take the ready key with the lowest next id: up to ``most`` of its events in
        increasing id order (a late event starts a take of its own). The key is out."""
        if not self._ready:
            return None
        _, _, key = heapq.heappop(self._ready)
        line = self._lines[key]
        events = [line.popleft()]
        while line and len(events) < most and int(line[0]["id"]) > int(events[-1]["id"]):
            events.append(line.popleft())
        if not line:
            del self._lines[key]
        self.waiting -= len(events)
        self._out.add(key)
        return key, events

    def put_back(self, key: Hashable, events: list[Event]) -> None:
        """Return events of a key that is out to the front of its line (not run yet)."""
        self._lines.setdefault(key, deque()).extendleft(reversed(events))
        self.waiting += len(events)

    def release(self, key: Hashable) -> None:
        """The key's run ended: its next event may be taken."""
        self._out.discard(key)
        line = self._lines.get(key)
        if line:
            self._push(key, line[0])

    def clear(self) -> list[Event]:
        """Drop every waiting event and return them (a stop, a switch-off)."""
        dropped = [event for line in self._lines.values() for event in line]
        self._lines.clear()
        self._ready.clear()
        self.waiting = 0
        return dropped

    def ids(self) -> set[int]:
        """Ids of the waiting events."""
        return {int(e["id"]) for line in self._lines.values() for e in line}

    def _push(self, key: Hashable, head: Event) -> None:
        self._seq += 1
        heapq.heappush(self._ready, (int(head["id"]), self._seq, key))
