"""One plugin's progress through the event log: deliver, advance the cursor, persist.

A ``PluginRunner`` owns a plugin's cursor. It delivers fresh events in id order
and late events found through the backlog, moves the cursor only after an
event was fully handled, and records the cursor after every change, so a crash
re-delivers at most the one event that was in flight.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shotgun_events.cursor import NO_GAP, Cursor, GapReport
from shotgun_events.delivery.dispatch import Dispatcher, Outcome
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event, PluginKey
from shotgun_events.state.protocols import PositionRecorder

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.runner")

#: Outcomes after which the event counts as handled and the cursor moves.
_HANDLED = (Outcome.DONE, Outcome.SKIPPED)


class PluginRunner:
    """Feed events to one plugin and keep its cursor."""

    def __init__(
        self,
        plugin: Plugin,
        cursor: Cursor,
        *,
        dispatcher: Dispatcher,
        recorder: PositionRecorder,
        backlog_timeout: timedelta,
    ) -> None:
        self.plugin = plugin
        self.cursor = cursor
        self._dispatcher = dispatcher
        self._recorder = recorder
        self._timeout = backlog_timeout
        self._unsaved = False
        self._dirty = False
        # Backlog changes since the last save, so a big backlog is not re-compared whole;
        # None after the cursor was changed from outside (operator commands).
        self._added: dict[int, datetime] = {}
        self._removed: set[int] = set()
        self._delta_known = False
        # Guards cursor changes against the engine reading the backlog from its thread.
        self._lock = threading.Lock()
        self.delivered = 0
        #: created_at of the newest fresh event handled (for the lag in `status`).
        self.last_created_at: datetime | None = None

    @property
    def key(self) -> PluginKey:
        """The plugin's identity in the state file."""
        return self.plugin.key

    @property
    def active(self) -> bool:
        """Whether the plugin takes events now."""
        return self.plugin.active

    @property
    def unsaved(self) -> bool:
        """Whether the last cursor change could not be persisted yet."""
        return self._unsaved

    def lag_seconds(self, head_created_at: datetime | None) -> float:
        """How far behind the newest fetched event this plugin is, in event time."""
        if not isinstance(head_created_at, datetime) or not isinstance(
            self.last_created_at, datetime
        ):
            return 0.0
        return max(0.0, (head_created_at - self.last_created_at).total_seconds())

    @property
    def dirty(self) -> bool:
        """Whether the cursor moved over unmatched events since the last save."""
        return self._dirty

    def awaited(self) -> set[int]:
        """Return the ids this plugin still waits for (safe from another thread)."""
        with self._lock:
            return set(self.cursor.backlog)

    def handle(self, event: Event, now: datetime) -> Outcome | None:
        """Deliver one event if the plugin still needs it; None when it did not."""
        if not self.plugin.active:
            return None
        event_id = int(event["id"])
        if self.cursor.is_fresh(event_id):
            outcome = self._dispatcher.run(self.plugin, event)
            if outcome in _HANDLED:
                created_at = event.get("created_at")
                with self._lock:
                    report = self.cursor.advance(event_id, created_at, now, self._timeout)
                    for waiting in report.waiting:
                        self._added[waiting] = self.cursor.backlog[waiting]
                self.last_created_at = created_at
                if report is not NO_GAP:
                    self._report(report)
                self._after(outcome)
            return outcome
        if self.cursor.is_awaited(event_id):
            outcome = self._dispatcher.run(self.plugin, event)
            if outcome in _HANDLED:
                if outcome is Outcome.DONE:
                    log.info("%s: late event %d delivered", self.plugin.name, event_id)
                with self._lock:
                    self.cursor.settle_late(event_id)
                    self._note_removed((event_id,))
                self._after(outcome)
            return outcome
        return None

    def flush(self) -> None:
        """Persist a cursor that moved over events no callback wanted."""
        if self._dirty or self._unsaved:
            self.save()

    def expire(self, now: datetime) -> list[int]:
        """Give up on backlog ids whose wait is over."""
        with self._lock:
            expired = self.cursor.expire(now)
            self._note_removed(expired)
        if expired:
            log.warning(
                "%s: event ids %s never appeared within the backlog timeout; giving up on them",
                self.plugin.name,
                _ranges(expired),
            )
            self.save()
        return expired

    def save(self, *, rewritten: bool = False) -> None:
        """Persist the cursor; raises StateWriteError and remembers to try again.

        ``rewritten``: the cursor was changed from outside (operator command), so
        the store compares it whole instead of applying the tracked changes.
        """
        if rewritten:
            self._delta_known = False
        change = (self._added, self._removed) if self._delta_known else None
        try:
            self._recorder.record(self.key, self.cursor, change)
        except StateWriteError:
            self._unsaved = True
            raise
        self._unsaved = False
        self._dirty = False
        self._added = {}
        self._removed = set()
        self._delta_known = True

    def _note_removed(self, ids: tuple[int, ...] | list[int]) -> None:
        for event_id in ids:
            if self._added.pop(event_id, None) is None:
                self._removed.add(event_id)

    def _after(self, outcome: Outcome) -> None:
        # A callback ran: persist now, so a crash re-delivers at most this event.
        # Events no callback matched are persisted in bulk by flush(): replaying
        # them after a crash calls nothing.
        if outcome is Outcome.DONE:
            self.delivered += 1
            self.save()
        else:
            self._dirty = True

    def _report(self, report: GapReport) -> None:
        if report.waiting:
            log.debug(
                "%s: ids %s not visible yet; waiting for them",
                self.plugin.name,
                _ranges(report.waiting),
            )
        if report.abandoned:
            log.info(
                "%s: ids %s are missing from events older than the backlog timeout; "
                "not waiting for them",
                self.plugin.name,
                _ranges(report.abandoned),
            )


def _ranges(ids: tuple[int, ...] | list[int]) -> str:
    """Compress sorted ids into 'a-b, c' for one-line log messages."""
    parts: list[str] = []
    start = prev = None
    for value in sorted(ids):
        if start is None:
            start = prev = value
        elif prev is not None and value == prev + 1:
            prev = value
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = value
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    if len(parts) > 10:
        return ", ".join(parts[:10]) + f" and {len(parts) - 10} more ranges"
    return ", ".join(parts)
