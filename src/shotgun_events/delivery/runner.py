"""One plugin's progress through the event log: deliver, advance the cursor, persist.

A ``PluginRunner`` owns a plugin's cursor and hands the events its plugin
still needs to the plugin's executor (executor.py). With the inline executor
(concurrency 1, the default) each event is finished before the next is
taken: the cursor moves only after an event was fully handled and is
recorded after every change, so a crash re-delivers at most the one event
that was in flight, and the state file is exactly the original's layout.
With a concurrent executor events finish out of order and the saved cursor
is a watermark (watermark.py): a crash re-delivers at most the events in
flight (<= the plugin's concurrency), never one recorded as done.

The strict-order (inline) path and the reload/operator/stop steps are here;
the concurrent path is ``concurrent.WatermarkPath``, saving is
``recording.RecordedCursor`` (both base classes of ``PluginRunner``), and
the gap log lines are in ``gaps``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shotgun_events.cursor import NO_GAP, Cursor
from shotgun_events.delivery.concurrent import DRAIN_TIMEOUT, HANDLED, WatermarkPath
from shotgun_events.delivery.dispatch import Dispatcher, Outcome
from shotgun_events.delivery.executor import (
    Executor,
    ExecutorFactory,
    ExecutorSpec,
    InlineExecutor,
)
from shotgun_events.delivery.gaps import log_gaps, ranges
from shotgun_events.delivery.watermark import Watermark
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event
from shotgun_events.state.protocols import PositionRecorder

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.runner")


def _default_spec(plugin: Plugin) -> ExecutorSpec:
    concurrency = getattr(plugin, "concurrency", 1)
    return ExecutorSpec(concurrency=concurrency, order_by=getattr(plugin, "order_by", "entity"))


class PluginRunner(WatermarkPath):
    """Feed events to one plugin through its executor and keep its cursor."""

    def __init__(
        self,
        plugin: Plugin,
        cursor: Cursor,
        *,
        dispatcher: Dispatcher,
        recorder: PositionRecorder,
        backlog_timeout: timedelta,
        executor_factory: ExecutorFactory | None = None,
        spec_for: Callable[[Plugin], ExecutorSpec] = _default_spec,
        stop: threading.Event | None = None,
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
        self._done_added: list[int] = []
        self._delta_known = False
        # Guards cursor changes against the engine (and a plugin's pool threads).
        self._lock = threading.RLock()
        self._room = threading.Condition(self._lock)
        self._stop = stop or threading.Event()
        self.delivered = 0
        #: created_at of the newest fresh event handled (for the lag in `status`).
        self.last_created_at: datetime | None = None
        if executor_factory is None:
            from shotgun_events.delivery.plan import local_executor

            executor_factory = local_executor(dispatcher)
        self._factory = executor_factory
        self._spec_for = spec_for
        # What the inline executor's completion needs to know about the event it ran.
        self._now: datetime | None = None
        self._late = False
        self._outcome: Outcome | None = None
        self._wm: Watermark | None = None
        self._failed = False
        self._ignore_until_flush = False
        self._generation = getattr(plugin, "generation", 0)
        self.spec = spec_for(plugin)
        self._executor = self._make_executor(self.spec)

    @property
    def active(self) -> bool:
        """Whether the plugin takes events now."""
        return self.plugin.active

    @property
    def unsaved(self) -> bool:
        """Whether the last cursor change could not be persisted yet."""
        return self._unsaved

    @property
    def concurrent(self) -> bool:
        """Whether this plugin's events may finish out of id order."""
        return self._wm is not None

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
            if self._wm is not None:
                return set(self.cursor.backlog) - self._wm.late
            return set(self.cursor.backlog)

    def saved_cursor(self) -> Cursor:
        """The cursor as persisted: the watermark form for a concurrent plugin."""
        with self._lock:
            return self._wm.saved().copy() if self._wm is not None else self.cursor.copy()

    def executor_status(self) -> dict[str, Any]:
        """What the plugin's executor tells ``status`` (Celery: queue, tasks, workers)."""
        describe = getattr(self._executor, "status", None)
        shown: dict[str, Any] = {"executor": self.spec.kind}
        if callable(describe):
            shown.update(describe())
        return shown

    def executor_figures(self) -> dict[str, int]:
        """The executor's counters for metrics (Celery: tasks in flight, sent, re-sent)."""
        figures = getattr(self._executor, "figures", None)
        return dict(figures()) if callable(figures) else {}

    def progress(self) -> dict[str, int]:
        """Watermark, events in flight and the done set's size (for ``status``)."""
        with self._lock:
            if self._wm is None:
                return {"watermark": self.cursor.last_id, "in_flight": 0, "done": 0}
            return {
                "watermark": self._wm.last_id,
                "in_flight": len(self._executor.in_flight()),
                "done": len(self._wm.done),
            }

    def busy(self) -> list[tuple[float, int]]:
        """(seconds, thread id) of the plugin's pool threads inside a callback."""
        busy = getattr(self._executor, "busy", None)
        return list(busy()) if callable(busy) else []

    # -- delivering ----------------------------------------------------------------

    def handle(self, event: Event, now: datetime) -> Outcome | None:
        """Deliver one event if the plugin still needs it; None when it did not (or not yet).

        A concurrent plugin only hands the event to its executor here; it reports
        FAILED once, at a later call, when some event switched the plugin off.
        """
        if getattr(self.plugin, "generation", 0) != self._generation:
            self._adopt_generation()
        if self._wm is not None:
            return self._handle_concurrent(self._wm, event, now)
        if not self.plugin.active:
            return None
        event_id = int(event["id"])
        cursor = self.cursor
        if cursor.is_fresh(event_id):
            if cursor.done and event_id in cursor.done:
                # Handled by an earlier concurrent run of this plugin: pass it by.
                self._advance(event_id, event.get("created_at"), now)
                self._dirty = True
                return None
            self._now, self._late, self._outcome = now, False, None
            self._executor.submit(event)
            return self._outcome
        if cursor.is_awaited(event_id):
            self._now, self._late, self._outcome = now, True, None
            self._executor.submit(event)
            return self._outcome
        return None

    def _completed(self, event: Event, outcome: Outcome) -> None:
        """The executor's report that an event is finished."""
        if self._wm is None:
            self._inline_done(event, outcome)
        else:
            self._concurrent_done(event, outcome)

    def _inline_done(self, event: Event, outcome: Outcome) -> None:
        """Completion of the inline executor: today's cursor rules, in the calling thread."""
        self._outcome = outcome
        if outcome not in HANDLED:
            return
        event_id = int(event["id"])
        if not self._late:
            created_at = event.get("created_at")
            assert self._now is not None
            self._advance(event_id, created_at, self._now)
            self.last_created_at = created_at
            if self.cursor.backlog and event_id in self.cursor.backlog:
                # A gap a concurrent run saw above its watermark, now filled.
                with self._lock:
                    self.cursor.settle_late(event_id)
                    self._note_removed((event_id,))
        else:
            if outcome is Outcome.DONE:
                log.info("%s: late event %d delivered", self.plugin.name, event_id)
            with self._lock:
                self.cursor.settle_late(event_id)
                self._note_removed((event_id,))
        self._after(outcome)

    def _advance(self, event_id: int, created_at: datetime | None, now: datetime) -> None:
        with self._lock:
            report = self.cursor.advance(event_id, created_at, now, self._timeout)
            for waiting in report.waiting:
                self._added[waiting] = self.cursor.backlog[waiting]
        if report is not NO_GAP:
            log_gaps(self.plugin.name, report)

    # -- reload, operator commands, stop ------------------------------------------

    def _make_executor(self, spec: ExecutorSpec) -> Executor:
        executor = self._factory(self.plugin, spec, self._completed)
        if isinstance(executor, InlineExecutor):
            if self._wm is not None:
                self.cursor = self._wm.saved()
                self._wm = None
        elif self._wm is None:
            self._wm = Watermark(self.cursor)
            self.cursor = self._wm.read
        return executor

    def _adopt_generation(self) -> None:
        """The plugin was reloaded: if it asks for another executor, swap once idle."""
        self._generation = getattr(self.plugin, "generation", 0)
        spec = self._spec_for(self.plugin)
        if spec == self.spec:
            return  # the keyed executor lets old-code events finish before new ones start
        log.info(
            "plugin %s now runs %d event(s) at once (order by %s); waiting for events in flight",
            self.plugin.name,
            spec.concurrency,
            spec.order_by,
        )
        self.quiesce()
        self._executor.close(DRAIN_TIMEOUT)
        self.spec = spec
        self._executor = self._make_executor(spec)
        self.resume()

    def quiesce(self, timeout: float = DRAIN_TIMEOUT) -> bool:
        """Wait for events in flight, then put the cursor at rest (the saved form).

        Operator commands change ``cursor`` between ``quiesce()`` and ``resume()``.
        """
        drained = self._executor.drain(timeout)
        with self._lock:
            if self._wm is not None:
                self._note_removed(self._wm.rewind())
                self._failed = False
                self.cursor = self._wm.saved()
        return drained

    def resume(self) -> None:
        """Take events again after ``quiesce()`` (and any change of the cursor)."""
        with self._lock:
            if self._wm is not None:
                self._wm = Watermark(self.cursor)
                self.cursor = self._wm.read
            self._ignore_until_flush = False

    def drain(self, timeout: float) -> bool:
        """Wait until every event handed to the executor is finished (tests, benchmarks)."""
        return self._executor.drain(timeout)

    def close(self, timeout: float) -> None:
        """Let events in flight finish (up to ``timeout``), then persist the cursor."""
        self._executor.close(timeout)
        try:
            self.flush()
        except StateWriteError:
            log.critical("%s: could not save the position on stop", self.plugin.name)

    def flush(self) -> None:
        """Persist a cursor that moved over events no callback wanted."""
        self._ignore_until_flush = False
        if self._dirty or self._unsaved:
            self.save()

    def expire(self, now: datetime) -> list[int]:
        """Give up on backlog ids whose wait is over."""
        with self._lock:
            expired = self.cursor.expire(now)
            if self._wm is not None:
                expired = [i for i in expired if i not in self._wm.late]
            self._note_removed(expired)
        if expired:
            log.warning(
                "%s: event ids %s never appeared within the backlog timeout; giving up on them",
                self.plugin.name,
                ranges(expired),
            )
            self.save()
        return expired

    def _after(self, outcome: Outcome) -> None:
        # A callback ran: persist now, so a crash re-delivers at most this event.
        # Events no callback matched are persisted in bulk by flush(): replaying
        # them after a crash calls nothing.
        if outcome is Outcome.DONE:
            self.delivered += 1
            self.save()
        else:
            self._dirty = True
