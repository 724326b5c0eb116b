"""A plugin's thread of its own: the engine's batches while it keeps up, its own reads while not.

A ``PluginThread`` takes the batches the engine read for everyone from its
inbox while it keeps up (*attached*). One whose inbox stays full (for
``DETACH_AFTER`` when every plugin has a thread of its own, at once for one
taken off the shared lane), or whose plugin was switched off and came back, is
*detached*: it reads from the site on its own, from its own position, with
its own connection, until it has caught up, then attaches again (its host,
``threads.OwnThreads``, decides when).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
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

#: Seconds an attached thread may stay full before it reads on its own, when every plugin
#: has a thread of its own (the engine reads for them all: waiting saves their reads).
DETACH_AFTER = 0.25
#: Batches an attached thread may have waiting in its inbox.
MAX_PENDING = 4


class Hooks:
    """What delivery reports back to the engine."""

    def __init__(
        self,
        *,
        on_failed: Callable[[Plugin], None],
        on_state_trouble: Callable[[StateWriteError], None],
        clock: Callable[[], datetime],
        event_types: Callable[[], Collection[str] | None] = lambda: None,
        grouped: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
        site_down: Callable[[], bool] = lambda: False,
    ) -> None:
        self.on_failed = on_failed
        self.on_state_trouble = on_state_trouble
        self.clock = clock
        self.event_types = event_types
        #: The state store's ``grouped``: one event's records over the shared lane, one write.
        self.grouped = grouped
        #: Whether the site is unavailable now: a thread catching up waits, as the engine does.
        self.site_down = site_down


_FRESH = "fresh"
_LATE = "late"
_EXPIRE = "expire"


class Host(Protocol):
    """What a plugin thread needs of the threads' host (``threads.OwnThreads``)."""

    stop: threading.Event
    hooks: Hooks
    source_factory: Callable[[], EventSource]
    retry: SiteRetry
    batch_size: int
    state_retry_interval: float

    def notify_room(self) -> None:
        """A batch left an inbox: the engine may read the next one."""
        ...

    def has_head(self) -> bool:
        """Whether the engine has placed the shared read yet."""
        ...

    def try_attach(self, thread: PluginThread) -> bool:
        """Attach the thread if it is level with the shared read; True if it is now."""
        ...


class PluginThread:
    """A plugin's thread of its own: the engine's batches, or its own reads while behind."""

    def __init__(self, runner: PluginRunner, host: Host) -> None:
        self.runner = runner
        self.attached = False
        self._host = host
        self._stop = host.stop
        self._hooks = host.hooks
        self._closing = threading.Event()
        self._source: EventSource | None = None
        #: (kind, events, the position a fresh batch was read after; 0 for the other kinds).
        self._inbox: deque[tuple[str, list[Event], int]] = deque()
        self._late_ids: set[int] = set()
        self._ready = threading.Condition()
        self._busy = False
        self._started = False
        # True while the thread sleeps on an empty inbox: between items it is not idle.
        self._waiting = False
        self._thread = threading.Thread(
            target=self._run, name=f"plugin-{runner.plugin.name}", daemon=True
        )

    @property
    def pending(self) -> int:
        """Fresh batches waiting in the inbox."""
        return sum(1 for kind, _, _ in self._inbox if kind == _FRESH)

    def idle(self) -> bool:
        """Attached, nothing queued, nothing running: all it was given is handled."""
        with self._ready:
            return self.attached and not self._inbox and not self._busy and self._waiting

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()
        self._started = True

    def put_fresh(self, batch: list[Event], after: int) -> None:
        """Queue a batch the engine read after id ``after`` (the caller holds the delivery
        lock); none once the thread has detached (it reads from its own position then)."""
        with self._ready:
            if not self.attached:
                return
            self._inbox.append((_FRESH, batch, after))
            self._ready.notify()

    def put_late(self, events: list[Event]) -> None:
        """Queue events found through the backlog."""
        with self._ready:
            self._late_ids.update(int(e["id"]) for e in events)
            self._inbox.append((_LATE, events, 0))
            self._ready.notify()

    def late_in_flight(self) -> set[int]:
        """Ids of late events queued and not handled yet."""
        with self._ready:
            return set(self._late_ids)

    def put_expire(self) -> None:
        """Ask the worker to drop backlog ids whose wait is over, between events."""
        with self._ready:
            self._inbox.append((_EXPIRE, [], 0))
            self._ready.notify()

    def request_close(self) -> None:
        """Ask the thread to stop after the event in hand."""
        self._closing.set()
        with self._ready:
            self._ready.notify()

    def close(self, timeout: float) -> None:
        """Stop the thread, waiting up to ``timeout`` for the event in hand."""
        self.request_close()
        if not self._started:
            return  # its plugin's callback still runs elsewhere; nothing of ours to stop
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
                kind, events, after = item
                if kind == _FRESH:
                    self._host.notify_room()
                    if after > self.runner.cursor.last_id:
                        # Read after ids this plugin has not had (it was rewound by a hold
                        # or a failure): they are no gaps; it reads them on its own.
                        self._detach()
                        continue
                if kind == _EXPIRE:
                    self._expire()
                else:
                    self._handle(events, late=kind == _LATE)
                if kind == _LATE:
                    with self._ready:
                        self._late_ids.difference_update(int(e["id"]) for e in events)
            elif not self.attached and self.runner.active:
                if self._hooks.site_down():
                    self._stop.wait(0.25)  # its events would be held again at once
                else:
                    self._catch_up_step()
            elif not self.runner.active:
                self._idle()

    def _next(self, timeout: float) -> tuple[str, list[Event], int] | None:
        with self._ready:
            if not self._inbox and timeout > 0 and not self._done():
                self._waiting = True
                self._ready.wait(timeout)
            self._waiting = False
            return self._inbox.popleft() if self._inbox else None

    def _idle(self) -> None:
        """The plugin is switched off: drop what comes and catch up once it is back."""
        if not self._detach():
            with self._ready:
                self._ready.wait(0.25)

    def _detach(self) -> bool:
        """Follow the shared read no more, dropping the batches queued from it (the thread
        catches up from its own position); True when some were dropped."""
        with self._ready:
            self.attached = False
            dropped = [item for item in self._inbox if item[0] == _FRESH]
            self._inbox = deque(item for item in self._inbox if item[0] != _FRESH)
        if dropped:
            self._host.notify_room()
        return bool(dropped)

    def _handle(self, events: list[Event], *, late: bool = False) -> None:
        now = self._hooks.clock()
        for event in events:
            if self._done():
                break
            self._busy = True
            try:
                outcome = self.runner.handle(event, now, late=late)
            except StateWriteError as exc:
                self._hooks.on_state_trouble(exc)
                self._save_until_done()
                outcome = None
            finally:
                self._busy = False
            if outcome is Outcome.FAILED or outcome is Outcome.HELD:
                # It reads again from its position (once the site answers, for HELD): the
                # batches queued meanwhile lie past that position and are not its own now.
                self._detach()
                if outcome is Outcome.FAILED:
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
            self._source = self._host.source_factory()
        source = self._source
        position = self.runner.cursor.last_id
        types = self._hooks.event_types()
        batch = self._host.retry.call(
            f"reading the event log for plugin {self.runner.plugin.name}",
            lambda: source.fetch_after(position, self._host.batch_size, types),
        )
        size = self._host.batch_size
        if batch and int(batch[0]["id"]) - position - 1 > size:
            # More ids missing than a batch: not gaps, the site's log may start after them.
            oldest = self._host.retry.call("reading the oldest event", source.oldest_id)
            self.runner.skip_expired(oldest or 0, more_than=size)
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
                if self._stop.wait(self._host.state_retry_interval):
                    return
        if failed:
            log.warning("plugin %s: the state file can be written again", self.runner.plugin.name)
