"""How fetched events reach the plugins: all in the engine's thread, or one worker per plugin.

``SerialDelivery`` keeps the original's order: for each event, every plugin
in turn, in one thread. ``ParallelDelivery`` gives each plugin a worker with
its own cursor, so a slow plugin falls behind alone; see ``workers.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from .dispatch import Outcome
from .errors import StateWriteError
from .events import Event
from .retry import SiteRetry
from .runner import PluginRunner
from .source import EventSource
from .workers import Worker

if TYPE_CHECKING:
    from .loader import Plugin

log = logging.getLogger("engine.delivery")


class Delivery(Protocol):
    """The engine's view of delivery, whatever the threading."""

    def add(self, runner: PluginRunner) -> None:
        """Start delivering to a new plugin."""
        ...

    def remove(self, runner: PluginRunner) -> None:
        """Stop delivering to a removed plugin."""
        ...

    def fetch_position(self, head: int) -> int:
        """Return the id after which the engine reads next."""
        ...

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Block while no plugin can take another batch, calling ``serve`` meanwhile."""
        ...

    def deliver(self, batch: list[Event]) -> bool:
        """Hand a fresh batch on; False when delivery was cut short."""
        ...

    def deliver_late(self, events: list[Event]) -> None:
        """Hand on events found through the backlog."""
        ...

    def expire(self, now: datetime) -> None:
        """Give up on backlog ids whose wait is over."""
        ...

    def save_pending(self) -> bool:
        """Retry failed state writes; False while they still fail."""
        ...

    def busy(self) -> list[tuple[PluginRunner, float, int | None]]:
        """Return (runner, seconds in the current callback, thread id) for busy plugins."""
        ...

    def in_flight(self) -> set[int]:
        """Ids of late events handed on but not handled yet (not to be read again)."""
        ...

    def drain(self, timeout: float) -> bool:
        """Wait until every active plugin has handled what it was given (tests, benchmarks)."""
        ...

    def close(self, timeout: float) -> None:
        """Finish the events in hand and stop."""
        ...


class Hooks:
    """What delivery reports back to the engine."""

    def __init__(
        self,
        *,
        on_failed: Callable[[Plugin], None],
        on_state_trouble: Callable[[StateWriteError], None],
        clock: Callable[[], datetime],
        event_types: Callable[[], Collection[str] | None] = lambda: None,
    ) -> None:
        self.on_failed = on_failed
        self.on_state_trouble = on_state_trouble
        self.clock = clock
        self.event_types = event_types


class SerialDelivery:
    """Every plugin in the engine's thread: event by event, plugin by plugin."""

    def __init__(self, hooks: Hooks, stop: threading.Event) -> None:
        self._hooks = hooks
        self._stop = stop
        self._runners: list[PluginRunner] = []
        # (runner, monotonic start, thread id) of the event in hand, for the callback watch.
        self._current: tuple[PluginRunner, float, int] | None = None

    def add(self, runner: PluginRunner) -> None:
        """Start delivering to a new plugin."""
        self._runners.append(runner)

    def remove(self, runner: PluginRunner) -> None:
        """Stop delivering to a removed plugin."""
        self._runners.remove(runner)

    def order(self, runners: list[PluginRunner]) -> None:
        """Adopt the plugin order of the loader (collections, then file names)."""
        self._runners = list(runners)

    def fetch_position(self, head: int) -> int:
        """Read from the slowest active plugin, as the original did."""
        active = [r.cursor.last_id for r in self._runners if r.active]
        return min(active) if active else head

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Nothing to wait for: delivery happens inside the engine's step."""

    def deliver(self, batch: list[Event]) -> bool:
        """Hand each event to every active plugin in order; False if interrupted."""
        now = self._hooks.clock()
        try:
            for event in batch:
                if self._stop.is_set():
                    return False
                self._one(event, now)
            for runner in self._runners:
                runner.flush()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            return False
        return True

    def deliver_late(self, events: list[Event]) -> None:
        """Hand on late events to the plugins that wait for them."""
        now = self._hooks.clock()
        try:
            for event in events:
                self._one(event, now)
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)

    def _one(self, event: Event, now: datetime) -> None:
        thread = threading.get_ident()
        for runner in self._runners:
            self._current = (runner, time.monotonic(), thread)
            try:
                outcome = runner.handle(event, now)
            finally:
                self._current = None
            if outcome is Outcome.FAILED:
                self._hooks.on_failed(runner.plugin)
            elif outcome is Outcome.INTERRUPTED:
                return

    def expire(self, now: datetime) -> None:
        """Give up on backlog ids whose wait is over."""
        try:
            for runner in self._runners:
                runner.expire(now)
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)

    def save_pending(self) -> bool:
        """Retry failed state writes; False while they still fail."""
        pending = [r for r in self._runners if r.unsaved]
        try:
            for runner in pending:
                runner.save()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            return False
        if pending:
            log.warning("the state file can be written again; resuming delivery")
        return True

    def busy(self) -> list[tuple[PluginRunner, float, int | None]]:
        """The plugin handling an event in the engine's thread, if any, and for how long."""
        current = self._current
        if current is None:
            return []
        runner, since, thread = current
        return [(runner, time.monotonic() - since, thread)]

    def in_flight(self) -> set[int]:
        """Late events are handled before ``deliver_late`` returns."""
        return set()

    def drain(self, timeout: float) -> bool:
        """Delivery is done when ``deliver`` returns."""
        return True

    def close(self, timeout: float) -> None:
        """Persist cursors that moved over unmatched events."""
        for runner in self._runners:
            try:
                runner.flush()
            except StateWriteError as exc:
                self._hooks.on_state_trouble(exc)


class ParallelDelivery:
    """One worker thread per plugin, fed from one shared read of the site.

    Workers that keep up are *attached*: the engine's batches go into their
    inboxes, and the engine reads the next batch once every attached worker has
    room for it, so plugins of similar speed share one read per batch. A worker
    that stays full for ``detach_after`` seconds (a slow plugin), or whose
    plugin was switched off and came back, is *detached*: it reads from the
    site on its own, from its own cursor, until it has caught up with the
    engine, then attaches again. The others are held up by a slow plugin for
    at most ``detach_after`` seconds, once.
    """

    def __init__(
        self,
        hooks: Hooks,
        stop: threading.Event,
        *,
        source_factory: Callable[[], EventSource],
        retry: SiteRetry,
        batch_size: int,
        max_pending: int = 4,
        state_retry_interval: float = 5.0,
        detach_after: float = 0.25,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hooks = hooks
        self._stop = stop
        self._source_factory = source_factory
        self._retry = retry
        self._batch_size = batch_size
        self._max_pending = max(1, max_pending)
        self._state_retry_interval = state_retry_interval
        self._detach_after = detach_after
        self._monotonic = monotonic
        #: id(worker) -> when it was first seen full while the engine waited for it.
        self._full_since: dict[int, float] = {}
        self._workers: dict[int, Worker] = {}
        # Guards `head` and attachment, so a worker attaches exactly between batches.
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._head: int | None = None

    def add(self, runner: PluginRunner) -> None:
        """Start a worker for a new plugin."""
        worker = Worker(
            runner,
            delivery=self,
            stop=self._stop,
            source_factory=self._source_factory,
            retry=self._retry,
            batch_size=self._batch_size,
            hooks=self._hooks,
            state_retry_interval=self._state_retry_interval,
        )
        with self._lock:
            worker.attached = self._head is not None and runner.cursor.last_id >= self._head
            self._workers[id(runner)] = worker
        worker.start()

    def remove(self, runner: PluginRunner) -> None:
        """Stop the worker of a removed plugin (after its current event)."""
        with self._lock:
            worker = self._workers.pop(id(runner), None)
            self._room.notify_all()
        if worker is not None:
            worker.close(timeout=30.0)

    def fetch_position(self, head: int) -> int:
        """Return where the shared read continues; the first read starts at the front runner."""
        with self._lock:
            if self._head is None:
                active = [
                    w.runner.cursor.last_id for w in self._workers.values() if w.runner.active
                ]
                self._head = max(active) if active else head
                for worker in self._workers.values():
                    worker.attached = (
                        worker.runner.active and worker.runner.cursor.last_id >= self._head
                    )
            return self._head

    def has_head(self) -> bool:
        """Whether the shared read has started (workers wait for it before reading alone)."""
        with self._lock:
            return self._head is not None

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Wait until every attached worker can take a batch; detach one that stays full.

        ``serve`` runs operator requests between waits, outside the lock: a
        `status` or `disable` must get through while every plugin is busy.
        """
        while not stop.is_set():
            with self._room:
                if self._has_room():
                    return
                self._room.wait(timeout=min(0.5, self._detach_after))
                if self._has_room():
                    return
            serve()

    def _has_room(self) -> bool:
        """True when no attached worker is full (after detaching those full for too long)."""
        now = self._monotonic()
        room = True
        for worker in self._workers.values():
            if not (worker.attached and worker.runner.active) or worker.pending < self._max_pending:
                self._full_since.pop(id(worker), None)
                continue
            since = self._full_since.setdefault(id(worker), now)
            if now - since >= self._detach_after:
                worker.attached = False
                self._full_since.pop(id(worker), None)
                log.info(
                    "plugin %s has been %d batches behind for %.1f s; it catches up on its own "
                    "so the other plugins are not held up",
                    worker.runner.plugin.name,
                    worker.pending,
                    now - since,
                )
            else:
                room = False
        return room

    def deliver(self, batch: list[Event]) -> bool:
        """Queue the batch for every attached worker; detach those that are full."""
        if not batch:
            return True
        with self._lock:
            self._head = max(self._head or 0, int(batch[-1]["id"]))
            for worker in self._workers.values():
                if not worker.runner.active:
                    # It misses this batch, so it must catch up from its own cursor
                    # when it is switched on again.
                    worker.attached = False
                    continue
                if not worker.attached:
                    continue
                worker.put_fresh(batch)
        return True

    def try_attach(self, worker: Worker) -> bool:
        """Attach a worker that has caught up with the shared read."""
        with self._lock:
            if self._head is not None and worker.runner.cursor.last_id >= self._head:
                worker.attached = True
                log.info(
                    "plugin %s caught up; it follows the shared read again",
                    worker.runner.plugin.name,
                )
            return worker.attached

    def notify_room(self) -> None:
        """Wake the engine: a worker took a batch from its inbox."""
        with self._room:
            self._room.notify_all()

    def deliver_late(self, events: list[Event]) -> None:
        """Give late events to every worker whose plugin waits for any of them."""
        ids = {int(e["id"]) for e in events}
        for worker in list(self._workers.values()):
            wanted = worker.runner.awaited() & ids
            if wanted:
                worker.put_late([e for e in events if int(e["id"]) in wanted])

    def expire(self, now: datetime) -> None:
        """Have each worker expire its backlog between its events (cursors are theirs)."""
        for worker in list(self._workers.values()):
            if worker.runner.awaited():
                worker.put_expire()

    def save_pending(self) -> bool:
        """Workers retry their own state writes; the engine reads on."""
        return True

    def in_flight(self) -> set[int]:
        """Ids of late events queued in some worker's inbox and not handled yet."""
        ids: set[int] = set()
        for worker in list(self._workers.values()):
            ids |= worker.late_in_flight()
        return ids

    def busy(self) -> list[tuple[PluginRunner, float, int | None]]:
        """Return the workers inside a callback and for how long."""
        return [
            (w.runner, seconds, w.ident)
            for w in list(self._workers.values())
            if (seconds := w.busy_for()) is not None
        ]

    def drain(self, timeout: float) -> bool:
        """Wait until active workers are attached, idle and have empty inboxes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = [w for w in list(self._workers.values()) if w.runner.active]
            if all(w.idle() for w in workers):
                return True
            time.sleep(0.005)
        return False

    def close(self, timeout: float) -> None:
        """Let every worker finish the event in hand, then stop them."""
        with self._lock:
            workers = list(self._workers.values())
            self._room.notify_all()
        for worker in workers:
            worker.request_close()
        for worker in workers:
            worker.close(timeout=timeout)
