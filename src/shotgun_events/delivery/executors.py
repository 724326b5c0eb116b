"""Where a plugin's events run: the ``Executor`` protocol, the one choice, and the per-key line.

Three executors run a plugin's events, and ``choose`` alone decides which one
a plugin gets, from the config over the plugin's own request:

- ``inline``: each event to its end in the thread that hands it on (strict id
  order, no threads; the original's behaviour and the default);
- ``pool``: the plugin's own threads (``PoolExecutor``), ``concurrency``
  events at once, one at a time per ordering key;
- ``celery``: tasks on Celery workers (``celery.executor.CeleryExecutor``),
  one task at a time per ordering key.

An executor reports each event finished through the ``on_done`` callback it
was built with; the runner keeps the position. Back-pressure is one signal:
``submit`` raises ``RejectedError`` when the executor holds as many events as
it may, and the runner waits with ``wait_room`` before it hands on more. An
executor also runs the plugin's timers (``run_timer``, engine/timers.py), so they
run where its callbacks do.

The pool's events, like Celery's, wait in the per-key line (keys.py); a
key whose event is running, or retrying, holds back only its own events. A
free pool thread takes the waiting key whose next event has the lowest id; a
thread that finishes an event takes the next work itself, waking no other
thread for it (each wake-up costs more than a quick event). A plugin reload
never mixes code: events started on the old callbacks finish first, then the
new callbacks take over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shotgun_events.config.plugin_sections import PluginSettings
from shotgun_events.delivery.dispatch import Dispatcher, Outcome, TimerFailure
from shotgun_events.delivery.keys import KeyLines, key_function
from shotgun_events.events import Event
from shotgun_events.plugins.registrar import Timer

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.keyed")

INLINE, POOL, CELERY = "inline", "pool", "celery"

#: Called once per submitted event when it is finished (from any thread).
OnDone = Callable[[Event, Outcome], None]
#: Events a pool may hold per thread (queued or running) before the runner must wait.
QUEUED_PER_THREAD = 16


class RejectedError(Exception):
    """The executor holds as many events as it may: wait for room, then submit again."""


class Executor(Protocol):
    """Runs one plugin's events and reports each one finished, in any order across keys."""

    kind: str

    def submit(self, event: Event) -> None:
        """Start or queue one event; raise ``RejectedError`` when there is no room."""
        ...

    def wait_room(self, stop: threading.Event) -> bool:
        """Block until ``submit`` would take an event; False when ``stop`` was set first."""
        ...

    def in_flight(self) -> set[int]:
        """Ids submitted and not reported finished (running or queued)."""
        ...

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False on timeout."""
        ...

    def close(self, timeout: float) -> None:
        """Let started events finish (up to ``timeout``), report queued ones not run, stop."""
        ...

    def status(self) -> dict[str, Any]:
        """What ``status`` shows of this executor."""
        ...

    def figures(self) -> dict[str, int]:
        """Counters cheap enough for every metrics scrape."""
        ...

    def run_timer(self, timer: Timer) -> TimerFailure | None:
        """Run one of the plugin's timers once, where its events run; wait for the end."""
        ...


#: Builds the executor a spec names: (plugin, spec, on_done) -> Executor.
ExecutorFactory = Callable[["Plugin", "ExecutorSpec", OnDone], Executor]


@dataclass(frozen=True)
class ExecutorSpec:
    """Which executor a plugin gets, with its concurrency and ordering key."""

    kind: str = INLINE
    concurrency: int = 1
    order_by: str = "entity"


def choose(
    plugin: Plugin, sections: Mapping[str, PluginSettings], executor: str = "local"
) -> ExecutorSpec:
    """The one rule: ``[plugin:NAME]``, then ``[daemon] executor``, then ``reg.setConcurrency``.

    ``executor`` is ``[daemon] executor`` (``local`` or ``celery``). A local
    plugin runs inline at concurrency 1 and on a pool above it.
    """
    section = sections.get(plugin.name)
    where = (section.executor if section else None) or executor
    concurrency = (section.concurrency if section else None) or plugin.concurrency or 1
    order_by = (section.order_by if section else None) or plugin.order_by or "entity"
    if where == CELERY:
        return ExecutorSpec(CELERY, concurrency, order_by)
    return ExecutorSpec(POOL if concurrency > 1 else INLINE, concurrency, order_by)


class InlineExecutor:
    """Run each event to its end in the submitting thread: a window of one, no threads."""

    kind = INLINE

    def __init__(self, plugin: Plugin, dispatcher: Dispatcher, on_done: OnDone) -> None:
        self._plugin = plugin
        self._dispatcher = dispatcher
        self._on_done = on_done

    def submit(self, event: Event) -> None:
        """Dispatch the event now and report it before returning."""
        self._on_done(event, self._dispatcher.run(self._plugin, event))

    def wait_room(self, stop: threading.Event) -> bool:
        """There is always room: nothing is left in flight."""
        return not stop.is_set()

    def in_flight(self) -> set[int]:
        """Nothing: ``submit`` returns when the event is finished."""
        return set()

    def drain(self, timeout: float) -> bool:
        """Nothing to wait for."""
        return True

    def close(self, timeout: float) -> None:
        """Nothing to release."""

    def status(self) -> dict[str, Any]:
        """Nothing beyond the runner's own figures."""
        return {}

    def figures(self) -> dict[str, int]:
        """No counters of its own."""
        return {}

    def run_timer(self, timer: Timer) -> TimerFailure | None:
        """Run the timer in the calling thread (the timer's own)."""
        return self._dispatcher.attempt_timer(self._plugin, timer)


class PoolExecutor:
    """A plugin's own pool of ``concurrency`` threads, order kept per key."""

    kind = POOL

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
        self._lines = KeyLines(key_function(order_by))
        self.concurrency = max(1, concurrency)
        self._capacity = capacity or max(64, self.concurrency * QUEUED_PER_THREAD)
        self._monotonic = monotonic
        lock = threading.Lock()
        # Two conditions on one lock: threads wait for work, the runner for room.
        self._work_ready = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._ids: set[int] = set()
        #: thread ident -> the plugin generation of the event it runs.
        self._running: dict[int, int] = {}
        self._closing = False
        #: An event was held, failed or cut short: run nothing more until all has ended.
        self._halted = False
        self._threads = [
            threading.Thread(target=self._work, name=f"plugin-{plugin.name}-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()

    # -- the Executor protocol -------------------------------------------------

    def submit(self, event: Event) -> None:
        """Queue the event behind its key's earlier ones; a free thread picks it up."""
        with self._work_ready:
            if len(self._ids) >= self._capacity:
                raise RejectedError(self._plugin.name)
            self._ids.add(int(event["id"]))
            if self._lines.add(event):
                self._work_ready.notify()

    def wait_room(self, stop: threading.Event) -> bool:
        """Block until half the capacity is free again; False when ``stop`` was set first.

        Waiting for half, not for one slot, lets the runner hand on events in runs.
        """
        with self._room:
            while len(self._ids) > self._capacity // 2:
                if stop.is_set() or self._closing:
                    return False
                self._room.wait(0.1)
        return not stop.is_set()

    def in_flight(self) -> set[int]:
        """Ids submitted and not reported finished yet."""
        with self._room:
            return set(self._ids)

    def drain(self, timeout: float) -> bool:
        """Wait until every submitted event was reported finished (a halt ends there)."""
        deadline = self._monotonic() + timeout
        with self._room:
            while self._ids:
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    return False
                self._room.wait(min(remaining, 0.1))
            self._halted = False
        return True

    def close(self, timeout: float) -> None:
        """Let started events finish (up to ``timeout``), report queued ones not run, stop."""
        with self._work_ready:
            self._closing = True
            dropped = self._lines.clear()
            self._work_ready.notify_all()
            self._room.notify_all()
        for event in dropped:
            self._report(event, Outcome.INTERRUPTED)
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

    def status(self) -> dict[str, Any]:
        """The pool's threads and what waits in its lines."""
        with self._room:
            return {"threads": self.concurrency, "queued": self._lines.waiting}

    def figures(self) -> dict[str, int]:
        """No counters beyond the runner's."""
        return {}

    def run_timer(self, timer: Timer) -> TimerFailure | None:
        """Run the timer in the calling thread (the timer's own), beside the pool's."""
        return self._dispatcher.attempt_timer(self._plugin, timer)

    # -- the pool's threads ------------------------------------------------------

    def _barrier_clear(self) -> bool:
        """No event of an older plugin generation still runs (a reload waits for those)."""
        generation = self._plugin.generation
        return all(gen == generation for gen in self._running.values())

    def _work(self) -> None:
        ident = threading.get_ident()
        taken: tuple[Hashable, list[Event]] | None = None
        while True:
            with self._work_ready:
                while taken is None:
                    if self._closing:
                        return
                    if self._barrier_clear():
                        taken = self._lines.take()
                    if taken is None:
                        self._work_ready.wait()
                self._running[ident] = self._plugin.generation
            key, (event,) = taken
            outcome = self._run(event)
            self._report(event, outcome)
            with self._work_ready:
                self._running.pop(ident, None)
                self._ids.discard(int(event["id"]))
                self._lines.release(key)
                # The next work is this thread's own: no wake-up for what it takes itself.
                taken = None
                if not self._closing and self._barrier_clear():
                    taken = self._lines.take()
                if not self._running and self._lines.lowest_ready() is not None:
                    # Threads held back by a reload's generation barrier may start now.
                    self._work_ready.notify(self.concurrency)
                if len(self._ids) <= self._capacity // 2:
                    self._room.notify_all()

    def _run(self, event: Event) -> Outcome:
        if not self._plugin.active or self._halted:
            # Switched off meanwhile (a failure on another key, an operator), or an event
            # was held or failed: the plugin reads again from there, so nothing after it
            # runs until all in flight has ended (``drain``). Not handled.
            return Outcome.INTERRUPTED
        try:
            outcome = self._dispatcher.run(self._plugin, event)
        except Exception:
            # The dispatcher isolates callbacks; this is our bug: keep the event unhandled.
            log.exception("plugin %s: delivering event %s failed", self._plugin.name, event["id"])
            outcome = Outcome.INTERRUPTED
        if outcome not in (Outcome.DONE, Outcome.SKIPPED):
            self._halted = True
        return outcome

    def _report(self, event: Event, outcome: Outcome) -> None:
        try:
            self._on_done(event, outcome)
        except Exception:
            log.exception("plugin %s: recording event %s failed", self._plugin.name, event["id"])


class Executors:
    """Builds the executor a spec names: inline or a pool here, Celery through its factory."""

    def __init__(self, dispatcher: Dispatcher, celery: ExecutorFactory | None = None) -> None:
        self._dispatcher = dispatcher
        self._celery = celery

    def __call__(self, plugin: Plugin, spec: ExecutorSpec, on_done: OnDone) -> Executor:
        """Return a new executor for ``plugin`` as ``spec`` says."""
        if spec.kind == CELERY:
            if self._celery is None:
                raise ValueError(f"plugin {plugin.name} runs on Celery, which is not set up")
            return self._celery(plugin, spec, on_done)
        if spec.kind == POOL:
            return PoolExecutor(
                plugin,
                self._dispatcher,
                on_done,
                concurrency=spec.concurrency,
                order_by=spec.order_by,
            )
        return InlineExecutor(plugin, self._dispatcher, on_done)
