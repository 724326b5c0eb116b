"""The threads plugins run on: the shared lane (``Lane``) and their own (``OwnThreads``).

``OwnThreads`` feeds each plugin on a thread of its own (``PluginThread``)
from the engine's one read. The engine reads the next batch once every attached thread has room
(``wait_for_room``), so it never races ahead of the fastest plugin, and a
slow one holds it at most its ``patience``, once: then it detaches and
reads on its own (``plugin_thread``). With every plugin on a thread of its
own that is ``DETACH_AFTER``; a plugin taken off the shared lane for holding
it has none: it never holds the lane again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.plugin_thread import MAX_PENDING, Hooks, PluginThread
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.events import Event

log = logging.getLogger("engine.worker")


class LaneAbandonedError(Exception):
    """Raised on a lane left to a stuck callback, once that callback has returned."""


class Lane:
    """A thread that runs the group's work, one job at a time, for the engine's thread."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], bool]] = queue.SimpleQueue()
        self.done = threading.Event()
        self.result = True
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shotgun-events-shared", daemon=True)
        self._thread.start()
        self.ident = self._thread.ident or 0

    def submit(self, job: Callable[[], bool]) -> None:
        """Run ``job`` on the lane; ``done`` is set when it has returned."""
        self.done.clear()
        self._jobs.put(job)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True if it has."""
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Let the thread end once its current job is over."""
        self._jobs.put(_stop_lane)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _stop_lane:
                return
            try:
                self.result = job()
            except LaneAbandonedError:
                return  # the engine has moved on to a new lane
            except BaseException as exc:  # handed to the engine's thread, raised there
                self.error = exc
            self.done.set()


def _stop_lane() -> bool:
    return False


class OwnThreads:
    """The plugins on threads of their own, fed from the engine's one read of the site."""

    def __init__(
        self,
        hooks: Hooks,
        stop: threading.Event,
        *,
        source_factory: Callable[[], EventSource],
        retry: SiteRetry,
        batch_size: int,
        state_retry_interval: float,
        monotonic: Callable[[], float],
        patience: float,
    ) -> None:
        """``patience``: seconds an attached thread may stay full before it reads on its own
        (the engine waits for it meanwhile)."""
        self.hooks = hooks
        self.stop = stop
        self.source_factory = source_factory
        self.retry = retry
        self.batch_size = batch_size
        self.state_retry_interval = state_retry_interval
        self._monotonic = monotonic
        self._threads: dict[int, PluginThread] = {}
        #: The most plugins on threads of their own at once (benchmarks, status).
        self.most = 0
        # Guards `_head` and attachment, so a thread attaches exactly between batches.
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._head: int | None = None
        self._full_since: dict[int, float] = {}
        self._patience = patience

    def __bool__(self) -> bool:
        return bool(self._threads)

    def runners(self) -> list[PluginRunner]:
        """The plugins on threads of their own now."""
        return [t.runner for t in list(self._threads.values())]

    def add(
        self,
        runner: PluginRunner,
        *,
        rest: list[Event] | None = None,
        after: int = 0,
        start: bool = True,
    ) -> None:
        """Give the plugin a thread: attached if it is level with the shared read, or given
        ``rest``, the events of the batch in hand after id ``after`` it has not had;
        ``start``: now, or once ``start(runner)`` is called (its callback in hand still runs
        on the shared lane)."""
        thread = PluginThread(runner, self)
        with self._lock:
            if rest is not None:
                thread.attached = True
                if rest:
                    thread.put_fresh(rest, after)
            else:
                thread.attached = self._head is not None and runner.cursor.last_id >= self._head
            self._threads[id(runner)] = thread
            self.most = max(self.most, len(self._threads))
        if start:
            thread.start()

    def start(self, runner: PluginRunner) -> None:
        """Start the thread ``add(..., start=False)`` made."""
        with self._lock:
            thread = self._threads.get(id(runner))
        if thread is not None:
            thread.start()

    def remove(self, runner: PluginRunner) -> bool:
        """Stop the plugin's thread after its event in hand; False if it had none."""
        with self._lock:
            thread = self._threads.pop(id(runner), None)
            self._room.notify_all()
        if thread is not None:
            thread.close(timeout=30.0)
        return thread is not None

    def idle(self, runner: PluginRunner) -> bool:
        """Whether the plugin's thread is attached with nothing queued or running."""
        thread = self._threads.get(id(runner))
        return thread is not None and thread.idle()

    def position(self, head: int) -> int:
        """Where the shared read continues for them; the first read starts at the front runner."""
        with self._lock:
            if self._head is None and self._threads:
                active = [
                    t.runner.cursor.last_id for t in self._threads.values() if t.runner.active
                ]
                self._head = max(active) if active else head
                for thread in self._threads.values():
                    thread.attached = (
                        thread.runner.active and thread.runner.cursor.last_id >= self._head
                    )
            return self._head if self._head is not None else head

    def feed(self, batch: list[Event], after: int) -> None:
        """Queue the events of ``batch`` (read after id ``after``) past the shared read for
        every attached thread (the shared read is followed even with no thread, for those
        promoted later)."""
        with self._lock:
            head = self._head or 0
            fresh = [e for e in batch if int(e["id"]) > head]
            if not fresh:
                return
            self._head = max(head, int(fresh[-1]["id"]))
            for thread in self._threads.values():
                if not thread.runner.active:
                    # It misses this batch, so it must catch up from its own position
                    # when it is switched on again.
                    thread.attached = False
                elif thread.attached:
                    # It had the ids up to the old head: this part continues from there.
                    thread.put_fresh(fresh, max(after, head))

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Wait until every attached thread can take a batch; detach one that stays full.

        ``serve`` runs operator requests between waits, outside the lock: a
        `status` or `disable` must get through while every plugin is busy.
        """
        while self._threads and not stop.is_set():
            with self._room:
                if self._has_room():
                    return
                self._room.wait(timeout=self._patience)
                if self._has_room():
                    return
            serve()

    def late(self, events: list[Event]) -> None:
        """Late events to every thread whose plugin waits for any of them."""
        ids = {int(e["id"]) for e in events}
        for thread in list(self._threads.values()):
            wanted = thread.runner.awaited() & ids
            if wanted:
                thread.put_late([e for e in events if int(e["id"]) in wanted])

    def expire(self) -> None:
        """Have each thread expire its plugin's backlog between its events."""
        for thread in list(self._threads.values()):
            if thread.runner.awaited():
                thread.put_expire()

    def in_flight(self) -> set[int]:
        """Ids of late events queued for a thread and not handled yet."""
        ids: set[int] = set()
        for thread in list(self._threads.values()):
            ids |= thread.late_in_flight()
        return ids

    def drain(self, deadline: float) -> bool:
        """Wait until every active plugin's thread handled all it was given."""
        while self._monotonic() < deadline:
            if all(t.idle() for t in list(self._threads.values()) if t.runner.active):
                return True
            time.sleep(0.005)
        return False

    def close(self, deadline: float) -> None:
        """Let every thread finish its event in hand (until ``deadline``), then stop them."""
        with self._lock:
            threads = list(self._threads.values())
            self._room.notify_all()
        for thread in threads:
            thread.request_close()
        for thread in threads:
            thread.close(timeout=max(0.0, deadline - self._monotonic()))

    def _has_room(self) -> bool:
        """True when no attached thread is full (after detaching those full for too long)."""
        now = self._monotonic()
        room = True
        for thread in self._threads.values():
            if not (thread.attached and thread.runner.active) or thread.pending < MAX_PENDING:
                self._full_since.pop(id(thread), None)
                continue
            since = self._full_since.setdefault(id(thread), now)
            if now - since >= self._patience:
                thread.attached = False
                self._full_since.pop(id(thread), None)
                log.info(
                    "plugin %s has been %d batches behind for %.1f s; it catches up on its own "
                    "so the other plugins are not held up",
                    thread.runner.plugin.name,
                    thread.pending,
                    now - since,
                )
            else:
                room = False
        return room

    # -- what a plugin's thread asks (Host) ----------------------------------------------

    def has_head(self) -> bool:
        """Whether the shared read has started (threads wait for it before reading alone)."""
        with self._lock:
            return self._head is not None

    def try_attach(self, thread: PluginThread) -> bool:
        """Attach a thread that has caught up with the shared read."""
        with self._lock:
            if self._head is not None and thread.runner.cursor.last_id >= self._head:
                thread.attached = True
                log.info(
                    "plugin %s caught up; it follows the shared read again",
                    thread.runner.plugin.name,
                )
            return thread.attached

    def notify_room(self) -> None:
        """Wake the engine: a thread took a batch from its inbox."""
        with self._room:
            self._room.notify_all()
