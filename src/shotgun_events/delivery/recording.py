"""Persisting one plugin's cursor: the backlog changes since the last save, and the write itself."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING

from shotgun_events.cursor import Cursor
from shotgun_events.delivery.watermark import Watermark
from shotgun_events.errors import StateWriteError
from shotgun_events.events import PluginKey
from shotgun_events.state.protocols import PositionRecorder

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin


class RecordedCursor:
    """The saving half of a ``PluginRunner`` (runner.py), which sets these attributes.

    Backlog changes since the last save are tracked (``_added``, ``_removed``,
    ``_done_added``), so a big backlog is not re-compared whole on every write;
    ``_delta_known`` is False after the cursor was changed from outside
    (operator commands).
    """

    plugin: Plugin
    cursor: Cursor
    _recorder: PositionRecorder
    _lock: threading.RLock
    _wm: Watermark | None
    _unsaved: bool
    _dirty: bool
    _added: dict[int, datetime]
    _removed: set[int]
    _done_added: list[int]
    _delta_known: bool

    @property
    def key(self) -> PluginKey:
        """The plugin's identity in the state file."""
        return self.plugin.key

    def save(self, *, rewritten: bool = False) -> None:
        """Persist the cursor; raises StateWriteError and remembers to try again.

        ``rewritten``: the cursor was changed from outside (operator command), so
        the store compares it whole instead of applying the tracked changes.
        """
        with self._lock:
            if rewritten:
                self._delta_known = False
            change = (self._added, self._removed) if self._delta_known else None
            try:
                if self._wm is None and not self.cursor.done:
                    self._recorder.record(self.key, self.cursor, change)
                else:
                    saved = self._wm.saved() if self._wm is not None else self.cursor
                    done = self._done_added if change is not None else None
                    self._recorder.record(self.key, saved, change, done)
            except StateWriteError:
                self._unsaved = True
                raise
            self._unsaved = False
            self._dirty = False
            self._added = {}
            self._removed = set()
            self._done_added = []
            self._delta_known = True

    def _note_removed(self, ids: tuple[int, ...] | list[int]) -> None:
        for event_id in ids:
            if self._added.pop(event_id, None) is None:
                self._removed.add(event_id)
