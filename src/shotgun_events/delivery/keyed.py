"""Run one plugin's events on its own thread pool, one event per ordering key at a time.

Events of the same key (ordering.py) wait in that key's queue and run one
after the other in the order they were submitted (id order); a key whose
event is running, or retrying, holds back only its own queue. A free thread
always takes the waiting key whose next event has the lowest id, so the
runner's watermark moves as fast as it can. A thread that finishes an event
goes on with its key's next one while that is the lowest id waiting, and
wakes no other thread for work it takes itself: a hot key runs on one
thread without a hand-off per event.

A plugin reload never mixes code: events started on the old callbacks finish
first, then the new callbacks take over (the loader has already swapped
them; a started event keeps the list it was started with).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from shotgun_events.delivery.dispatch import Dispatcher, Outcome
from shotgun_events.delivery.executor import OnDone
from shotgun_events.delivery.ordering import key_function
from shotgun_events.events import Event

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.keyed")

#: Events a plugin may have queued per thread before the runner is told to wait.
QUEUED_PER_THREAD = 16


class KeyedExecutor:
    """A plugin's own pool of ``concurrency`` threads, order kept per key."""

    def __init__(
        self,
        plugin: Plugin,
        dispatcher: Dispatcher,
        on_done: OnDone,
        *,
        concurrency: int,
        order_by: str = "entity",
        capacity: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._plugin = plugin
        self._dispatcher = dispatcher
        self._on_done = on_done
        self._key = key_function(order_by)
        self.concurrency = max(1, concurrency)
        self.order_by = order_by
        self._capacity = capacity or max(64, self.concurrency * QUEUED_PER_THREAD)
        self._monotonic = monotonic
        lock = threading.Lock()
        # Two conditions on one lock: waking every thread at every completion costs more
        # than the events of a quick plugin do.
        self._cond = threading.Condition(lock)
        self._room = threading.Condition(lock)
        #: key -> its events not started yet (present while the key has work queued or running).
        self._queues: dict[Hashable, deque[Event]] = {}
        #: (id of the key's next event, tie-breaker, key) for keys that may start now.
        self._ready: list[tuple[int, int, Hashable]] = []
        self._seq = 0
        self._ids: set[int] = set()
        #: thread ident -> (event id, monotonic start, plugin generation it runs on).
        self._running: dict[int, tuple[int, float, int]] = {}
        self._closing = False
        self._threads = [
            threading.Thread(target=self._work, name=f"plugin-{plugin.name}-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()

    # -- the Executor protocol -------------------------------------------------

    def submit(self, event: Event) -> None:
        """Queue the event behind its key's earlier ones; a free thread picks it up."""
        key = self._key(event)
        with self._cond:
            self._ids.add(int(event["id"]))
            queue = self._queues.get(key)
            if queue is None:
                self._queues[key] = deque((event,))
                self._push_ready(key, event)
                self._cond.notify()
            else:
                queue.append(event)

    def has_room(self) -> bool:
        """Whether fewer events than the capacity are queued or running."""
        # Read without the lock (one atomic len()): a stale answer only delays by one event.
        return len(self._ids) < self._capacity

    def in_flight(self) -> set[int]:
        """Ids submitted and not reported finished yet."""
        with self._cond:
            return set(self._ids)

    def busy(self) -> list[tuple[float, int]]:
        """(seconds in the current event, thread id) of every thread inside a callback."""
        now = self._monotonic()
        with self._cond:
            return [(now - start, ident) for ident, (_, start, _) in self._running.items()]

    def wait_room(self, stop: threading.Event, step: float = 0.1) -> bool:
        """Block until half the capacity is free again; False when ``stop`` was set first.

        Waiting for half, not for one slot, lets the runner hand on events in runs.
        """
        with self._room:
            while len(self._ids) > self._capacity // 2:
                if stop.is_set() or self._closing:
                    return False
                self._room.wait(step)
        return True

    def drain(self, timeout: float) -> bool:
        """Wait until every submitted event was reported finished."""
        deadline = self._monotonic() + timeout
        with self._room:
            while self._ids:
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    return False
                self._room.wait(min(remaining, 0.1))
        return True

    def close(self, timeout: float) -> None:
        """Let started events finish (up to ``timeout``), report queued ones not run, stop."""
        with self._cond:
            self._closing = True
            dropped = [event for queue in self._queues.values() for event in queue]
            for queue in self._queues.values():
                queue.clear()
            self._ready.clear()
            self._cond.notify_all()
            self._room.notify_all()
        for event in dropped:
            self._finish(event, Outcome.INTERRUPTED, key=None)
        deadline = self._monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._monotonic()))
        if any(t.is_alive() for t in self._threads):
            log.error(
                "plugin %s: %d event(s) still running after %.0f s; leaving them; they are "
                "delivered again at the next start",
                self._plugin.name,
                len(self._running),
                timeout,
            )

    # -- the pool's threads ----------------------------------------------------------

    def _push_ready(self, key: Hashable, head: Event) -> None:
        self._seq += 1
        heapq.heappush(self._ready, (int(head["id"]), self._seq, key))

    def _may_start(self) -> bool:
        """A ready key exists and no event of an older plugin generation still runs."""
        return bool(self._ready) and self._barrier_clear()

    def _barrier_clear(self) -> bool:
        """No event of an older plugin generation still runs (a reload waits for those)."""
        generation = getattr(self._plugin, "generation", 0)
        return all(gen == generation for _, _, gen in self._running.values())

    def _work(self) -> None:
        ident = threading.get_ident()
        event: Event | None = None
        key: Hashable = None
        while True:
            with self._cond:
                if event is None:
                    while not self._closing and not self._may_start():
                        self._cond.wait()
                    if self._closing:
                        return
                    _, _, key = heapq.heappop(self._ready)
                    event = self._queues[key].popleft()
                self._running[ident] = (
                    int(event["id"]),
                    self._monotonic(),
                    getattr(self._plugin, "generation", 0),
                )
            outcome = self._run(event)
            with self._cond:
                self._running.pop(ident, None)
            event = self._finish(event, outcome, key=key)

    def _run(self, event: Event) -> Outcome:
        if not self._plugin.active:
            # Switched off meanwhile (a failure on another key, an operator): not handled.
            return Outcome.INTERRUPTED
        try:
            return self._dispatcher.run(self._plugin, event)
        except Exception:
            # The dispatcher isolates callbacks; this is our bug: keep the event unhandled.
            log.exception("plugin %s: delivering event %s failed", self._plugin.name, event["id"])
            return Outcome.INTERRUPTED

    def _finish(self, event: Event, outcome: Outcome, *, key: Hashable | None) -> Event | None:
        """Report the event, then free its key; return the key's next event for this thread.

        ``key`` is the key a pool thread just ran (None when ``close`` reports an
        event that never ran). That thread goes on with the key's next event
        itself while that is the lowest id waiting, and otherwise takes the
        lowest ready key itself: no other thread is woken for work it is about
        to take (each wake-up costs more than a quick event).
        """
        try:
            self._on_done(event, outcome)
        except Exception:
            log.exception("plugin %s: recording event %s failed", self._plugin.name, event["id"])
        following: Event | None = None
        with self._cond:
            self._ids.discard(int(event["id"]))
            if key is not None:
                queue = self._queues.get(key)
                if queue:
                    head = int(queue[0]["id"])
                    lowest = not self._ready or self._ready[0][0] > head
                    if lowest and not self._closing and self._barrier_clear():
                        following = queue.popleft()
                    else:
                        self._push_ready(key, queue[0])
                elif queue is not None:
                    del self._queues[key]
            if not self._running and self._ready:
                # Threads held back by a reload's generation barrier may start now. (Only
                # then: waking every idle thread after each event costs more than the event.)
                self._cond.notify(len(self._ready))
            if len(self._ids) <= self._capacity // 2:
                self._room.notify_all()
        return following
