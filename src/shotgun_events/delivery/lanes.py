"""The threads plugins run on: the shared lane, and a plugin's thread of its own.

``Lane``: a thread that runs the shared lane's batches for the engine's
thread. The engine hands each batch to it and watches it, so a callback that
never returns holds only its lane: the engine can leave that lane to it and
start a new one for the other plugins (fanout.py).

``PluginThread``: a plugin's own thread. Attached, it takes the batches the
engine read for everyone from its inbox; detached (fallen behind, or back
after being switched off), it reads from its own position with its own
connection until it has caught up, then asks to attach again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Protocol

from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event
from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.worker")


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


_FRESH = "fresh"
_LATE = "late"
_EXPIRE = "expire"


class Host(Protocol):
    """What a plugin's own thread asks of the fan-out that feeds it."""

    def has_head(self) -> bool:
        """Tell whether the engine has read anything yet (a worker can attach to it)."""
        ...

    def try_attach(self, thread: PluginThread) -> bool:
        """Attach a thread that caught up with the engine; False if it is still behind."""
        ...

    def notify_room(self) -> None:
        """Wake the engine: a thread's inbox has room again."""
        ...


class PluginThread:
    """A plugin's thread of its own: the engine's batches, or its own reads while behind."""

    def __init__(
        self,
        runner: PluginRunner,
        *,
        host: Host,
        stop: threading.Event,
        source_factory: Callable[[], EventSource],
        retry: SiteRetry,
        batch_size: int,
        hooks: Hooks,
        state_retry_interval: float,
    ) -> None:
        self.runner = runner
        self.attached = False
        self._host = host
        self._stop = stop
        self._closing = threading.Event()
        self._source_factory = source_factory
        self._source: EventSource | None = None
        self._retry = retry
        self._batch_size = batch_size
        self._hooks = hooks
        self._state_retry_interval = state_retry_interval
        self._inbox: deque[tuple[str, list[Event]]] = deque()
        self._late_ids: set[int] = set()
        self._ready = threading.Condition()
        self._busy_since: float | None = None
        # True while the thread sleeps on an empty inbox: between items it is not idle.
        self._waiting = False
        self._thread = threading.Thread(
            target=self._run, name=f"plugin-{runner.plugin.name}", daemon=True
        )

    @property
    def pending(self) -> int:
        """Fresh batches waiting in the inbox."""
        return sum(1 for kind, _ in self._inbox if kind == _FRESH)

    @property
    def ident(self) -> int | None:
        """The worker thread's id (to print its stack when it is stuck)."""
        return self._thread.ident

    def busy_for(self) -> float | None:
        """Seconds the current event has been running, or None when idle."""
        since = self._busy_since
        return None if since is None else time.monotonic() - since

    def idle(self) -> bool:
        """Attached, nothing queued, nothing running: all it was given is handled."""
        with self._ready:
            return self.attached and not self._inbox and self._busy_since is None and self._waiting

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def put_fresh(self, batch: list[Event]) -> None:
        """Queue a batch read by the engine (the caller holds the delivery lock)."""
        with self._ready:
            self._inbox.append((_FRESH, batch))
            self._ready.notify()

    def put_late(self, events: list[Event]) -> None:
        """Queue events found through the backlog."""
        with self._ready:
            self._late_ids.update(int(e["id"]) for e in events)
            self._inbox.append((_LATE, events))
            self._ready.notify()

    def late_in_flight(self) -> set[int]:
        """Ids of late events queued and not handled yet."""
        with self._ready:
            return set(self._late_ids)

    def put_expire(self) -> None:
        """Ask the worker to drop backlog ids whose wait is over, between events."""
        with self._ready:
            self._inbox.append((_EXPIRE, []))
            self._ready.notify()

    def request_close(self) -> None:
        """Ask the thread to stop after the event in hand."""
        self._closing.set()
        with self._ready:
            self._ready.notify()

    def close(self, timeout: float) -> None:
        """Stop the thread, waiting up to ``timeout`` for the event in hand."""
        self.request_close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error(
                "plugin %s did not finish its current event within %.0f s; leaving it; "
                "that event will be delivered again at the next start",
                self.runner.plugin.name,
                timeout,
            )
            return
        self._save_until_done()
        if self._source is not None:
            self._source.close()

    # -- the thread ----------------------------------------------------------

    def _done(self) -> bool:
        return self._stop.is_set() or self._closing.is_set()

    def _run(self) -> None:
        while not self._done():
            item = self._next(timeout=0.25 if self.attached else 0.0)
            if item is not None:
                kind, events = item
                if kind == _FRESH:
                    self._host.notify_room()
                if kind == _EXPIRE:
                    self._expire()
                else:
                    self._handle(events)
                if kind == _LATE:
                    with self._ready:
                        self._late_ids.difference_update(int(e["id"]) for e in events)
            elif not self.attached and self.runner.active:
                self._catch_up_step()
            elif not self.runner.active:
                self._idle()

    def _next(self, timeout: float) -> tuple[str, list[Event]] | None:
        with self._ready:
            if not self._inbox and timeout > 0 and not self._done():
                self._waiting = True
                self._ready.wait(timeout)
            self._waiting = False
            return self._inbox.popleft() if self._inbox else None

    def _idle(self) -> None:
        """The plugin is switched off: drop what comes and catch up once it is back."""
        with self._ready:
            dropped = [item for item in self._inbox if item[0] == _FRESH]
            self._inbox = deque(item for item in self._inbox if item[0] != _FRESH)
            if not dropped:
                self._ready.wait(0.25)
        if dropped:
            self._host.notify_room()
        self.attached = False

    def _handle(self, events: list[Event]) -> None:
        now = self._hooks.clock()
        for event in events:
            if self._done():
                break
            self._busy_since = time.monotonic()
            try:
                outcome = self.runner.handle(event, now)
            except StateWriteError as exc:
                self._hooks.on_state_trouble(exc)
                self._save_until_done()
                outcome = None
            finally:
                self._busy_since = None
            if outcome is Outcome.FAILED:
                self.attached = False
                self._hooks.on_failed(self.runner.plugin)
                break
            if outcome is Outcome.INTERRUPTED:
                break
        self._flush()

    def _catch_up_step(self) -> None:
        """Read the next batch after our own cursor; attach once level with the engine."""
        if not self._host.has_head():
            # The engine has not placed the shared read yet: wait rather than read alone.
            self._stop.wait(0.05)
            return
        if self._host.try_attach(self):
            return
        if self._source is None:
            self._source = self._source_factory()
        source = self._source
        position = self.runner.cursor.last_id
        types = self._hooks.event_types()
        batch = self._retry.call(
            f"reading the event log for plugin {self.runner.plugin.name}",
            lambda: source.fetch_after(position, self._batch_size, types),
        )
        if batch:
            self._handle(batch)
        self._host.try_attach(self)

    def _expire(self) -> None:
        try:
            self.runner.expire(self._hooks.clock())
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            self._save_until_done()

    def _flush(self) -> None:
        try:
            self.runner.flush()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            self._save_until_done()

    def _save_until_done(self) -> None:
        """Keep trying to persist the cursor; deliver nothing more until it works."""
        failed = False
        while self.runner.unsaved or self.runner.dirty:
            try:
                self.runner.save()
            except StateWriteError as exc:
                failed = True
                self._hooks.on_state_trouble(exc)
                if self._stop.wait(self._state_retry_interval):
                    return
        if failed:
            log.warning("plugin %s: the state file can be written again", self.runner.plugin.name)
