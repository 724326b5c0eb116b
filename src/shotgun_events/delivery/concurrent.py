"""The concurrent path of a plugin: events run out of order, the saved position is a watermark."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from shotgun_events.cursor import NO_GAP
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.executor import Executor
from shotgun_events.delivery.gaps import log_gaps
from shotgun_events.delivery.recording import RecordedCursor
from shotgun_events.delivery.watermark import FRESH, SEEN, Watermark
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event

log = logging.getLogger("engine.runner")

#: Outcomes after which the event counts as handled and the cursor moves.
HANDLED = (Outcome.DONE, Outcome.SKIPPED)
#: Ids a concurrent plugin may hold above its watermark (in flight + done) before it waits.
WINDOW_LIMIT = 10_000
#: Seconds a concurrent plugin's in-flight events get to finish before a reload or a command.
DRAIN_TIMEOUT = 3600.0


class WatermarkPath(RecordedCursor):
    """The concurrent half of a ``PluginRunner`` (runner.py), used when it has a watermark.

    Events go to the plugin's executor as they are read (up to its room and
    ``WINDOW_LIMIT``); completions arrive on pool threads, move the watermark
    and persist it, so a crash re-delivers at most the events in flight.
    """

    _stop: threading.Event
    _room: threading.Condition
    _executor: Executor
    _timeout: timedelta
    _failed: bool
    _ignore_until_flush: bool
    delivered: int
    last_created_at: datetime | None

    def _handle_concurrent(self, wm: Watermark, event: Event, now: datetime) -> Outcome | None:
        if wm.stuck or self._failed:
            if self._stop.is_set():
                return Outcome.INTERRUPTED
            return self._recover()
        if self._ignore_until_flush or not self.plugin.active:
            return None
        event_id = int(event["id"])
        # No lock: only this thread moves the read cursor, and the pool threads touch
        # only ids at or below it, which cannot change what a fresh id is.
        kind = wm.classify(event_id)
        if kind is None:
            return None
        created_at = event.get("created_at")
        wanted = kind != SEEN and any(cb.matches(event) for cb in self.plugin.callbacks)
        if wanted and not self._wait_room(wm):
            return Outcome.INTERRUPTED if self._stop.is_set() else self._recover()
        with self._lock:
            report = wm.take(event_id, kind, created_at, now, self._timeout)
            for waiting in report.waiting:
                self._added[waiting] = self.cursor.backlog[waiting]
            if kind == FRESH:
                self.last_created_at = created_at
            if not wanted:
                # Nothing would run: finish it here, without a trip through the pool.
                if kind != SEEN:
                    self._finish_locked(wm, event_id, Outcome.SKIPPED)
                self._dirty = True
        if report is not NO_GAP:
            log_gaps(self.plugin.name, report)
        if wanted:
            self._executor.submit(event)
        return None

    def _wait_room(self, wm: Watermark) -> bool:
        """Wait while the executor is full or the window is; False on stop or a failure."""
        while True:
            if self._stop.is_set() or wm.stuck or self._failed or not self.plugin.active:
                return False
            if wm.window >= WINDOW_LIMIT:
                with self._room:
                    self._room.wait(0.1)
                continue
            if self._executor.has_room():
                return True
            wait_room = getattr(self._executor, "wait_room", None)
            if callable(wait_room):
                wait_room(self._stop)
            else:
                with self._room:
                    self._room.wait(0.05)

    def _concurrent_done(self, event: Event, outcome: Outcome) -> None:
        """Completion of a concurrent executor (any thread): move the watermark, persist."""
        wm = self._wm
        if wm is None:
            return
        with self._lock:
            try:
                self._finish_locked(wm, int(event["id"]), outcome)
            finally:
                if wm.window == WINDOW_LIMIT - 1 or outcome not in HANDLED:
                    self._room.notify_all()

    def _finish_locked(self, wm: Watermark, event_id: int, outcome: Outcome) -> None:
        late = event_id in wm.late
        newly, settled = wm.finish(event_id, outcome in HANDLED)
        if settled:
            self._note_removed((event_id,))
        self._done_added.extend(newly)
        if outcome is Outcome.FAILED:
            self._failed = True
        if outcome is Outcome.DONE:
            if late:
                log.info("%s: late event %d delivered", self.plugin.name, event_id)
            self.delivered += 1
            try:
                self.save()
            except StateWriteError:
                log.critical(
                    "%s: cannot record event %d as done; it may run again after a crash",
                    self.plugin.name,
                    event_id,
                )
        elif outcome is Outcome.SKIPPED:
            self._dirty = True

    def _recover(self) -> Outcome:
        """After a failure or a stop of the plugin: let in-flight events end, read again from
        the watermark. Reported as FAILED, so the delivery re-reads for this plugin."""
        self._executor.drain(DRAIN_TIMEOUT)
        with self._lock:
            wm = self._wm
            if wm is not None:
                self._note_removed(wm.rewind())
            self._failed = False
            self._dirty = True
            # The rest of the batch in hand lies past the rewound position: not ours now.
            self._ignore_until_flush = True
        return Outcome.FAILED
