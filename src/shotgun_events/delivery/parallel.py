"""Parallel delivery: one worker thread per plugin, fed from one shared read of the site."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.base import Hooks
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.delivery.worker import Worker
from shotgun_events.events import Event

log = logging.getLogger("engine.delivery")


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

    def is_idle(self, runner: PluginRunner) -> bool:
        """Whether this plugin's worker is attached with nothing queued or running (auto mode)."""
        with self._lock:
            worker = self._workers.get(id(runner))
        return worker is not None and worker.idle()

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
