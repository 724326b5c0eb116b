"""One plugin's progress through the event log: hand events to its executor, keep its position.

A ``PluginRunner`` owns a plugin's position, a watermark (watermark.py): it
takes the events its plugin still needs in id order, hands those a callback
wants to the plugin's executor (executors.py) and hears back, from any
thread, when each is finished. The position moves over finished events only
and is recorded after every event a callback ran for (one journal line), so
a crash re-delivers at most the events in flight: the one in hand for an
inline plugin, at most its ``concurrency`` for a pool. With events finishing
in id order (an inline plugin) the state file is exactly the original's
layout.

Back-pressure: the executor raises ``RejectedError`` when it holds all it
may, and the runner waits for room before it hands on the same event again;
the runner itself keeps at most ``WINDOW_LIMIT`` handled ids above its
position (those a slow key's event holds back) before it waits too.

After a failure that switched the plugin off (or a stop), the events in
flight finish, the plugin reads again from before its first unfinished event,
and the rest of the batch in hand is no longer its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from shotgun_events.cursor import NO_GAP, Cursor, GapReport, ranges
from shotgun_events.delivery.dispatch import Dispatcher, Outcome, TimerFailure
from shotgun_events.delivery.executors import (
    INLINE,
    ExecutorFactory,
    ExecutorSpec,
    RejectedError,
)
from shotgun_events.delivery.watermark import FRESH, LATE, SEEN, Watermark
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event, PluginKey
from shotgun_events.plugins.loader import Plugin
from shotgun_events.plugins.registrar import Timer
from shotgun_events.state.changes import Changes
from shotgun_events.state.protocols import PositionRecorder

log = logging.getLogger("engine.runner")

#: Outcomes after which the event counts as handled and the position moves.
HANDLED = (Outcome.DONE, Outcome.SKIPPED)
#: Handled ids a plugin may keep above its position (behind a slow key) before it waits.
WINDOW_LIMIT = 10_000
#: Seconds the events in flight get to finish before a reload or an operator command.
DRAIN_TIMEOUT = 3600.0


class PluginRunner:
    """Feed events to one plugin through its executor and keep its position."""

    def __init__(
        self,
        plugin: Plugin,
        cursor: Cursor,
        *,
        dispatcher: Dispatcher,
        executors: ExecutorFactory,
        spec_for: Callable[[Plugin], ExecutorSpec],
        recorder: PositionRecorder,
        backlog_timeout: timedelta,
        stop: threading.Event | None = None,
    ) -> None:
        self.plugin = plugin
        self._dispatcher = dispatcher
        self._executors = executors
        self._spec_for = spec_for
        self._recorder = recorder
        self._timeout = backlog_timeout
        self._stop = stop or threading.Event()
        # Guards the position against the engine's thread, pool threads and operator commands.
        self._lock = threading.RLock()
        self._room = threading.Condition(self._lock)
        self._wm = Watermark(cursor)
        #: Where reading continues (shares its backlog with the saved position).
        self.cursor = self._wm.read
        self._unsaved = False
        self._dirty = False
        self._failed = False
        self._ignore_until_flush = False
        self._changes = Changes()
        self.delivered = 0
        #: Events skipped because the site's log no longer has them (``skip_expired``).
        self.expired = 0
        #: created_at of the newest fresh event handled (for the lag in `status`).
        self.last_created_at: datetime | None = None
        self._generation = plugin.generation
        #: The plugin's identity in the state file (the same object lives across reloads).
        self.key: PluginKey = plugin.key
        #: Threads waiting for the window to have room (completions wake them).
        self._window_waiters = 0
        self._at_rest = False
        #: An event met a site outage: the plugin reads again from it once the site answers.
        self._held = False
        self.spec = spec_for(plugin)
        self._executor = executors(plugin, self.spec, self._completed)

    @property
    def active(self) -> bool:
        """Whether the plugin takes events now."""
        return self.plugin.active

    @property
    def unsaved(self) -> bool:
        """Whether the last position change could not be persisted yet."""
        return self._unsaved

    def mark_unsaved(self) -> None:
        """A write that held this plugin's records failed: save again before going on."""
        self._unsaved = True

    @property
    def dirty(self) -> bool:
        """Whether the position moved over unmatched events since the last save."""
        return self._dirty

    def lag_seconds(self, head_created_at: datetime | None) -> float:
        """How far behind the newest fetched event this plugin is, in event time."""
        if not isinstance(head_created_at, datetime) or not isinstance(
            self.last_created_at, datetime
        ):
            return 0.0
        return max(0.0, (head_created_at - self.last_created_at).total_seconds())

    def awaited(self) -> set[int]:
        """The ids this plugin still waits for (safe from another thread)."""
        with self._lock:
            return set(self.cursor.backlog) - self._wm.late

    def saved_cursor(self) -> Cursor:
        """The position as persisted (the watermark form)."""
        with self._lock:
            return self._wm.saved().copy()

    def progress(self) -> dict[str, int]:
        """Watermark, events in flight and the done set's size (for ``status``)."""
        with self._lock:
            return {
                "watermark": self._wm.last_id,
                "in_flight": len(self._executor.in_flight()),
                "done": len(self._wm.done),
            }

    def executor_status(self) -> dict[str, Any]:
        """What ``status`` shows of the plugin's executor (Celery: queue, tasks, workers)."""
        return {"executor": self.spec.kind, **self._executor.status()}

    def run_timer(self, timer: Timer) -> TimerFailure | None:
        """Run one of the plugin's timers once, where its events run (timers.py)."""
        return self._executor.run_timer(timer)

    def executor_figures(self) -> dict[str, int]:
        """The executor's counters for metrics (Celery: tasks in flight, sent, re-sent)."""
        return self._executor.figures()

    # -- delivering ----------------------------------------------------------------

    def handle(self, event: Event, now: datetime, *, late: bool = False) -> Outcome | None:
        """Take one event if the plugin still needs it.

        ``late``: the event was read by id for the plugins that wait for it; it is taken
        only if this plugin waits for it too. Above the position of a plugin that does
        not (rewound, or behind the read), it is no fresh event: taking it would pass over
        the ids between as gaps.

        Returns DONE when a callback ran for it (or it was handed to a pool or
        Celery), None when the plugin did not need it, FAILED once after a
        failure switched the plugin off, HELD once after a site outage (it reads
        again from there once the site answers), INTERRUPTED while stopping.
        """
        plugin = self.plugin
        if plugin.generation != self._generation:
            self._adopt_generation()
        wm = self._wm
        if wm.stuck or self._failed:
            return self._after_failure()
        if self._ignore_until_flush or not plugin.active:
            return None
        event_id = int(event["id"])
        # No lock to classify: only this thread moves the read position, and executors'
        # threads touch only ids at or below it, which cannot change what a fresh id is.
        kind = wm.classify(event_id)
        if kind is None or (late and kind is not LATE):
            return None
        wanted = kind is not SEEN and self._dispatcher.wants(plugin, event)
        if wanted and len(wm.done) >= WINDOW_LIMIT and not self._wait_window(wm):
            return self._after_failure()
        created_at = event.get("created_at")
        with self._lock:
            report = wm.take(event_id, kind, created_at, now, self._timeout)
            if report is not NO_GAP:
                self._note_gaps(report)
            if kind is FRESH:
                self.last_created_at = created_at
            if not wanted:
                # Nothing would run: finished here, without a trip through the executor.
                if kind is not SEEN:
                    self._finish_locked(wm, event_id, Outcome.SKIPPED)
                self._dirty = True
                return None
        try:
            self._executor.submit(event)
        except RejectedError:
            if not self._submit_when_room(event):
                with self._lock:
                    self._finish_locked(wm, event_id, Outcome.INTERRUPTED)
        if wm.stuck or self._failed:
            return self._after_failure()
        return Outcome.DONE

    def _submit_when_room(self, event: Event) -> bool:
        """The executor was full: wait for room and submit again; False on stop or failure."""
        while not self._failed and self.plugin.active and self._executor.wait_room(self._stop):
            try:
                self._executor.submit(event)
                return True
            except RejectedError:
                continue
        return False

    def _wait_window(self, wm: Watermark) -> bool:
        """Wait while the window is full; False on a stop or a failure meanwhile."""
        with self._room:
            self._window_waiters += 1
            try:
                while len(wm.done) >= WINDOW_LIMIT:
                    if self._stop.is_set() or wm.stuck or self._failed or not self.plugin.active:
                        return False
                    self._room.wait(0.1)
            finally:
                self._window_waiters -= 1
        return True

    def _completed(self, event: Event, outcome: Outcome) -> None:
        """The executor's report that an event is finished (any thread): move, persist."""
        with self._lock:
            try:
                self._finish_locked(self._wm, int(event["id"]), outcome)
            finally:
                if self._window_waiters:
                    self._room.notify_all()

    def _finish_locked(self, wm: Watermark, event_id: int, outcome: Outcome) -> None:
        late = bool(wm.late) and event_id in wm.late
        newly, settled = wm.finish(event_id, outcome in HANDLED)
        if settled:
            self._changes.gone((event_id,))
        if newly:
            self._changes.done.extend(newly)
        if outcome is Outcome.FAILED:
            self._failed = True
        elif outcome is Outcome.HELD:
            self._held = True
        if outcome is Outcome.DONE:
            if late:
                log.info("%s: late event %d delivered", self.plugin.name, event_id)
            self.delivered += 1
            # A callback ran: persist now, so a crash re-delivers at most this event.
            # Events no callback wanted are persisted in bulk by flush().
            try:
                self._save_locked()
            except StateWriteError:
                if self._executor.kind == INLINE:
                    raise  # the engine waits until the state can be written
                log.critical(
                    "%s: cannot record event %d as done; it may run again after a crash",
                    self.plugin.name,
                    event_id,
                )
        elif outcome is Outcome.SKIPPED:
            self._dirty = True

    def _after_failure(self) -> Outcome:
        """Let events in flight end, read again from before the first unfinished one.

        FAILED (the delivery reads again for this plugin), HELD when it was a site outage
        (the same, once the site answers), or INTERRUPTED while stopping.
        """
        if self._stop.is_set():
            return Outcome.INTERRUPTED
        self._executor.drain(DRAIN_TIMEOUT)
        with self._lock:
            self._changes.gone(self._wm.rewind())
            held, self._held = self._held, False
            self._failed = False
            self._dirty = True
            # The rest of the batch in hand lies past the rewound position: not ours now.
            self._ignore_until_flush = True
        return Outcome.HELD if held else Outcome.FAILED

    def _note_gaps(self, report: GapReport) -> None:
        for waiting in report.waiting:
            self._changes.added[waiting] = self.cursor.backlog[waiting]
        if report.waiting:
            log.debug(
                "%s: ids %s not visible yet; waiting for them",
                self.plugin.name,
                ranges(report.waiting),
            )
        if report.abandoned:
            log.info(
                "%s: ids %s are missing from events older than the backlog timeout; "
                "not waiting for them",
                self.plugin.name,
                ranges(report.abandoned),
            )

    # -- reload, operator commands, stop ------------------------------------------

    def _adopt_generation(self) -> None:
        """The plugin was reloaded: if it asks for another executor, swap once idle."""
        self._generation = self.plugin.generation
        spec = self._spec_for(self.plugin)
        if spec == self.spec:
            return  # a pool lets old-code events finish before new ones start
        log.info(
            "plugin %s now runs on %s, %d event(s) at once (order by %s); waiting for events "
            "in flight",
            self.plugin.name,
            spec.kind,
            spec.concurrency,
            spec.order_by,
        )
        reading = self.cursor.last_id
        self.quiesce()
        self._executor.close(DRAIN_TIMEOUT)
        self.spec = spec
        self._executor = self._executors(self.plugin, spec, self._completed)
        self.resume()
        if self.cursor.last_id < reading:
            # Rewound before events it had taken (one failed or was held): the rest of the
            # batch in hand lies past its position; it reads again from there.
            self._ignore_until_flush = True

    def quiesce(self, timeout: float = DRAIN_TIMEOUT) -> bool:
        """Wait for events in flight, then put the position at rest (the saved form).

        Operator commands change ``cursor`` between ``quiesce()`` and ``resume()``.
        """
        drained = self._executor.drain(timeout)
        with self._lock:
            self._changes.gone(self._wm.rewind())
            self._failed = False
            self.cursor = self._wm.saved().copy()
            self._at_rest = True
        return drained

    def resume(self) -> None:
        """Take events again after ``quiesce()`` (and any change of the cursor)."""
        with self._lock:
            self._wm = Watermark(self.cursor)
            self.cursor = self._wm.read
            self._at_rest = False
            self._ignore_until_flush = False

    def drain(self, timeout: float) -> bool:
        """Wait until every event handed to the executor is finished (tests, benchmarks)."""
        return self._executor.drain(timeout)

    def close(self, timeout: float) -> None:
        """Let events in flight finish (up to ``timeout``), then persist the position."""
        self._executor.close(timeout)
        try:
            self.flush()
        except StateWriteError:
            log.critical("%s: could not save the position on stop", self.plugin.name)

    def flush(self) -> None:
        """Persist a position that moved over events no callback wanted."""
        self._ignore_until_flush = False
        if self._dirty or self._unsaved:
            self.save()

    def skip_expired(self, oldest: int, more_than: int) -> None:
        """Move past ids below ``oldest``, the oldest event the site still keeps, when more
        than ``more_than`` of them are missing (fewer are gaps, as anywhere in the log): they
        can never be delivered. Reported once, as one ERROR naming the range; counted; and
        no backlog id below it is waited for. Only with nothing in flight (between batches)."""
        if oldest <= 0:
            return
        with self._lock:
            mark = self._wm.last_id
            gone = [i for i in self.cursor.backlog if i < oldest]
            first, last = mark + 1, oldest - 1
            if last - first + 1 <= more_than:
                first = last + 1  # a few missing ids: gaps, the cursor's rules handle them
                gone = []
            if last < first and not gone:
                return
            if last >= first and not self._executor.in_flight():
                self.cursor = Cursor(last, self.cursor.backlog, self._wm.done)
                self._wm = Watermark(self.cursor)
                self.cursor = self._wm.read
                self.expired += last - first + 1
            else:
                first = last + 1  # nothing to skip, only backlog ids to forget
            for event_id in gone:
                del self.cursor.backlog[event_id]
            self._changes.known = False
            self._save_locked()
        if last >= first:
            log.error(
                "events %d..%d of plugin %s are no longer in the site's event log; they "
                "cannot be delivered (the site keeps events from %d on); going on from there",
                first,
                last,
                self.plugin.name,
                oldest,
            )
        if gone:
            log.info(
                "%s: no longer waiting for ids %s: the site's log starts after them",
                self.plugin.name,
                ranges(gone),
            )

    def expire(self, now: datetime) -> list[int]:
        """Give up on backlog ids whose wait is over."""
        with self._lock:
            expired = [i for i in self.cursor.expire(now) if i not in self._wm.late]
            self._changes.gone(expired)
        if expired:
            log.warning(
                "%s: event ids %s never appeared within the backlog timeout; giving up on them",
                self.plugin.name,
                ranges(expired),
            )
            self.save()
        return expired

    # -- persisting ------------------------------------------------------------------

    def save(self, *, rewritten: bool = False) -> None:
        """Persist the position; raises StateWriteError and remembers to try again.

        ``rewritten``: the cursor was changed from outside (an operator command),
        so the store compares it whole instead of applying the tracked changes.
        """
        with self._lock:
            if rewritten:
                self._changes.known = False
            self._save_locked()

    def _save_locked(self) -> None:
        # At rest (between quiesce and resume) the cursor is the position, as commands set it.
        saved = self.cursor if self._at_rest else self._wm.saved()
        try:
            self._changes.write(self._recorder, self.key, saved)
        except StateWriteError:
            self._unsaved = True
            raise
        self._unsaved = False
        self._dirty = False
