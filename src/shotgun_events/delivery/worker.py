"""One plugin's worker thread: take batches from the inbox, or catch up from the site alone.

A worker owns its plugin's runner (cursor and delivery). Attached, it takes
the batches the engine read for everyone; detached (fallen behind, or back
after being switched off), it reads from its own cursor with its own
connection until it has caught up, then asks to attach again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event

if TYPE_CHECKING:
    from shotgun_events.delivery.base import Hooks

log = logging.getLogger("engine.worker")

_FRESH = "fresh"
_LATE = "late"
_EXPIRE = "expire"


class WorkerHost(Protocol):
    """What a plugin's worker asks of the delivery that feeds it."""

    def has_head(self) -> bool:
        """Tell whether the engine has read anything yet (a worker can attach to it)."""
        ...

    def try_attach(self, worker: Worker) -> bool:
        """Attach a worker that caught up with the engine; False if it is still behind."""
        ...

    def notify_room(self) -> None:
        """Wake the engine: a worker's inbox has room again."""
        ...


class Worker:
    """A thread that delivers events to one plugin in id order."""

    def __init__(
        self,
        runner: PluginRunner,
        *,
        delivery: WorkerHost,
        stop: threading.Event,
        source_factory: Callable[[], EventSource],
        retry: SiteRetry,
        batch_size: int,
        hooks: Hooks,
        state_retry_interval: float,
    ) -> None:
        self.runner = runner
        self.attached = False
        self._delivery = delivery
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
        closer = getattr(self._source, "close", None)
        if callable(closer):
            closer()

    # -- the thread ----------------------------------------------------------

    def _done(self) -> bool:
        return self._stop.is_set() or self._closing.is_set()

    def _run(self) -> None:
        while not self._done():
            item = self._next(timeout=0.25 if self.attached else 0.0)
            if item is not None:
                kind, events = item
                if kind == _FRESH:
                    self._delivery.notify_room()
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
            self._delivery.notify_room()
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
        if not self._delivery.has_head():
            # The engine has not placed the shared read yet: wait rather than read alone.
            self._stop.wait(0.05)
            return
        if self._delivery.try_attach(self):
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
        self._delivery.try_attach(self)

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
