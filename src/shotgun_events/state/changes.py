"""A plugin's position changes since its last write: what the next journal line must say."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shotgun_events.cursor import Cursor
from shotgun_events.events import PluginKey
from shotgun_events.state.protocols import PositionRecorder


class Changes:
    """What a position's backlog and done set gained or lost since it was last saved.

    A save records only that, so a big backlog is not compared whole at every
    write; after the position was changed from outside (``known`` False) the
    store compares it whole once.
    """

    __slots__ = ("added", "done", "known", "removed")

    def __init__(self) -> None:
        self.added: dict[int, datetime] = {}
        self.removed: set[int] = set()
        self.done: list[int] = []
        self.known = False

    def gone(self, ids: Iterable[int]) -> None:
        """Backlog ids no longer waited for (handled, given up, rewound)."""
        for event_id in ids:
            if self.added.pop(event_id, None) is None:
                self.removed.add(event_id)

    def write(self, recorder: PositionRecorder, key: PluginKey, cursor: Cursor) -> None:
        """Record ``cursor`` with the changes since the last write; raises StateWriteError
        (and keeps the changes for the next try)."""
        change = (self.added, self.removed) if self.known else None
        if cursor.done or self.done:
            recorder.record(key, cursor, change, self.done if change is not None else None)
        else:
            recorder.record(key, cursor, change)
        # Written: start afresh, with new containers (the store may keep these).
        if self.added:
            self.added = {}
        if self.removed:
            self.removed = set()
        if self.done:
            self.done = []
        self.known = True
