"""Which thread runs each plugin: the shared lane, or a thread of its own.

Every plugin starts on the shared lane (lanes.py), where the engine's batches
run event by event, plugin after plugin, as in the original daemon: no
hand-off between threads per event, so quick plugins cost what they cost
serially, and the engine reads from the slowest plugin of the lane. A
promotion policy decides who leaves it for a thread of its own:

- ``never`` (``dispatch = serial``): nobody; a slow or stuck callback holds
  every plugin, as in the original;
- ``when slow`` (``dispatch = auto``, the default): a plugin leaves once its
  slow callbacks (``SLOW_CALL`` or longer each) add up to more than ``HELD``
  in one batch, the one still running included, so the others wait for it
  at most ``HELD`` per promotion; one that has caught up and stayed idle
  comes back after ``REJOIN_AFTER`` seconds, twice as long after each new
  promotion, so a plugin slow for good stays on its own thread;
- ``always`` (``dispatch = parallel``): every plugin on its own thread.

A plugin on its own thread takes the engine's batches from an inbox while it
keeps up (*attached*); one whose inbox stays full for ``DETACH_AFTER``, or that
was switched off and came back, reads from the site on its own from its own
position until it has caught up (*detached*). The engine reads the next batch
once every attached thread has room: the one back-pressure rule between the
engine and the threads it feeds.

A plugin taken off the lane in the middle of a callback leaves the lane to
that callback; a new lane takes the rest of the batch (plugins skip what they
already handled, by their positions), and the plugin gets its thread once the
callback returns.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime

from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.delivery.lanes import Hooks, Lane, LaneAbandonedError, PluginThread
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event

log = logging.getLogger("engine.delivery")

#: A callback at least this long is slow; shorter ones (GIL waits, a cache miss) never count.
SLOW_CALL = 0.01
#: Slow time in one batch after which a plugin leaves the shared lane.
HELD = 0.03
#: Seconds a caught-up, idle plugin waits before it rejoins the lane (doubling).
REJOIN_AFTER = 10.0
#: Seconds an attached thread may stay full before it reads on its own.
DETACH_AFTER = 0.25
#: Batches an attached thread may have waiting in its inbox.
MAX_PENDING = 4


class Promotion(enum.Enum):
    """Who leaves the shared lane for a thread of their own."""

    NEVER = "serial"
    WHEN_SLOW = "auto"
    ALWAYS = "parallel"


class Fanout:
    """The shared lane and the plugins' own threads, fed from one read of the site."""

    def __init__(
        self,
        hooks: Hooks,
        stop: threading.Event,
        *,
        policy: Promotion,
        registry: InFlight,
        source_factory: Callable[[], EventSource],
        retry: SiteRetry,
        batch_size: int,
        state_retry_interval: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hooks = hooks
        self._stop = stop
        self.policy = policy
        self._registry = registry
        self._source_factory = source_factory
        self._retry = retry
        self._batch_size = batch_size
        self._state_retry_interval = state_retry_interval
        self._monotonic = monotonic
        # The shared lane: its plugins (a list replaced, never changed in place, so the
        # lane thread iterates without a copy), slow time per plugin in this batch.
        self._group: list[PluginRunner] = []
        self._slow: dict[int, float] = {}
        self._lane: Lane | None = None
        #: Lanes left to a callback taken off mid-call; a stop waits for them.
        self._left: list[Lane] = []
        self._abandoned: set[int] = set()
        #: Lane thread -> the plugin it is handing an event to (taking it off is decided
        #: under ``_group_lock``, which the lane takes when that plugin's turn ends).
        self._current: dict[int, PluginRunner] = {}
        #: Plugins whose callback on an abandoned lane returned: they get their thread.
        self._released: queue.SimpleQueue[PluginRunner] = queue.SimpleQueue()
        self._stuck: dict[int, PluginRunner] = {}
        self._group_lock = threading.Lock()
        # Plugins on threads of their own: runner id -> thread, and why they are there.
        self._threads: dict[int, PluginThread] = {}
        self._promoted: dict[int, tuple[PluginRunner, float, int]] = {}
        self._promotions: dict[int, int] = {}
        #: The most plugins on threads of their own at once (benchmarks, status).
        self.most_promoted = 0
        # Guards `_head` and attachment, so a thread attaches exactly between batches.
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._head: int | None = None
        self._full_since: dict[int, float] = {}

    # -- membership --------------------------------------------------------------

    def add(self, runner: PluginRunner) -> None:
        """A new plugin starts on the shared lane, or on its own thread with ``always``."""
        if self.policy is Promotion.ALWAYS:
            self._own_thread(runner)
        else:
            self._group = [*self._group, runner]

    def remove(self, runner: PluginRunner) -> None:
        """Stop delivering to a removed plugin, wherever it runs."""
        key = id(runner)
        self._promotions.pop(key, None)
        self._promoted.pop(key, None)
        if self._stuck.pop(key, None) is not None:
            return  # still inside its callback on a left lane: it gets no thread after it
        with self._lock:
            thread = self._threads.pop(key, None)
            self._room.notify_all()
        if thread is not None:
            thread.close(timeout=30.0)
        self._group = [r for r in self._group if r is not runner]

    def order(self, runners: list[PluginRunner]) -> None:
        """Run the lane's plugins in the loader's order (collections, then file names)."""
        members = {id(r) for r in self._group}
        self._group = [r for r in runners if id(r) in members]

    def on_own_threads(self) -> list[PluginRunner]:
        """The plugins running on a thread of their own now."""
        return [t.runner for t in list(self._threads.values())]

    # -- what the engine calls, per round ------------------------------------------

    def fetch_position(self, head: int) -> int:
        """Where the shared read continues: the slowest plugin of the lane, else the
        plugins on their own threads (their first read starts at the front runner)."""
        self._promote_released()
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
            own = self._head if self._head is not None else head
        lane = [r.cursor.last_id for r in self._group if r.active]
        return min(lane) if lane else own

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Wait until every attached thread can take a batch; detach one that stays full.

        ``serve`` runs operator requests between waits, outside the lock: a
        `status` or `disable` must get through while every plugin is busy.
        """
        while self._threads and not stop.is_set():
            with self._room:
                if self._has_room():
                    return
                self._room.wait(timeout=DETACH_AFTER)
                if self._has_room():
                    return
            serve()

    def deliver(self, batch: list[Event]) -> bool:
        """Queue the batch for the attached threads, then run it on the shared lane."""
        if not batch:
            return True
        self._rejoin_idle()
        with self._lock:
            head = self._head or 0
            fresh = [e for e in batch if int(e["id"]) > head]
            if fresh:
                self._head = max(head, int(fresh[-1]["id"]))
                for thread in self._threads.values():
                    if not thread.runner.active:
                        # It misses this batch, so it must catch up from its own position
                        # when it is switched on again.
                        thread.attached = False
                    elif thread.attached:
                        thread.put_fresh(fresh)
        if not self._group:
            return True
        return self._on_lane(lambda: self._run_group(batch))

    def deliver_late(self, events: list[Event]) -> None:
        """Late events go to whoever waits for them."""
        ids = {int(e["id"]) for e in events}
        for thread in list(self._threads.values()):
            wanted = thread.runner.awaited() & ids
            if wanted:
                thread.put_late([e for e in events if int(e["id"]) in wanted])
        if self._group:
            self._on_lane(lambda: self._run_late(events))

    def expire(self, now: datetime) -> None:
        """Expire backlogs: the lane's now, the threads' between their events."""
        try:
            for runner in self._group:
                runner.expire(now)
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
        for thread in list(self._threads.values()):
            if thread.runner.awaited():
                thread.put_expire()

    def save_pending(self) -> bool:
        """Retry the lane's failed state writes (threads retry their own); False while failing."""
        pending = [r for r in self._group if r.unsaved]
        try:
            for runner in pending:
                runner.save()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            return False
        if pending:
            log.warning("the state file can be written again; resuming delivery")
        return True

    def in_flight(self) -> set[int]:
        """Ids of late events queued for a thread and not handled yet (not to be read again)."""
        ids: set[int] = set()
        for thread in list(self._threads.values()):
            ids |= thread.late_in_flight()
        return ids

    def drain(self, timeout: float) -> bool:
        """Wait until the threads handled all they were given and left lanes have ended."""
        deadline = self._monotonic() + timeout
        while self._monotonic() < deadline:
            threads = [t for t in list(self._threads.values()) if t.runner.active]
            if all(t.idle() for t in threads):
                break
            time.sleep(0.005)
        else:
            return False
        self._left = [lane for lane in self._left if not lane.join(deadline - self._monotonic())]
        return not self._left

    def close(self, timeout: float) -> None:
        """Let every callback in hand finish (up to ``timeout``), persist positions, stop."""
        deadline = self._monotonic() + timeout
        if self._lane is not None:
            self._lane.stop()
            self._lane = None
        with self._lock:
            threads = list(self._threads.values())
            self._room.notify_all()
        for thread in threads:
            thread.request_close()
        for thread in threads:
            thread.close(timeout=max(0.0, deadline - self._monotonic()))
        for lane in self._left:
            if not lane.join(deadline - self._monotonic()):
                log.warning(
                    "a plugin callback is still running after %.1f s; stopping anyway", timeout
                )
        self._left = []
        for runner in self._group:
            try:
                runner.flush()
            except StateWriteError as exc:
                self._hooks.on_state_trouble(exc)

    # -- the shared lane ------------------------------------------------------------

    def _on_lane(self, job: Callable[[], bool]) -> bool:
        """Run ``job`` on the lane, watching for a plugin that holds it too long."""
        self._promote_released()
        lane = self._lane or self._new_lane()
        lane.submit(job)
        watch = self.policy is Promotion.WHEN_SLOW
        while not lane.done.wait(SLOW_CALL if watch else None):
            runner = self._take_off(lane.ident)
            if runner is None:
                continue
            self._stuck[id(runner)] = runner
            self._left.append(lane)
            lane = self._new_lane()
            lane.submit(job)
        if lane.error is not None:
            error, lane.error = lane.error, None
            raise error
        self._promote_released()
        return lane.result

    def _new_lane(self) -> Lane:
        self._lane = Lane()
        return self._lane

    def _take_off(self, lane: int) -> PluginRunner | None:
        """Take off the lane the plugin whose running callback brings it over ``HELD``."""
        work = self._registry.on_thread(lane)
        if work is None:
            return None
        with self._group_lock:
            running = self._monotonic() - work.since
            runner = self._current.get(lane)
            if runner is None or runner.plugin is not work.plugin or running < SLOW_CALL:
                return None
            if self._slow.get(id(runner), 0.0) + running <= HELD:
                return None
            self._abandoned.add(lane)
            self._group = [r for r in self._group if r is not runner]
        log.info(
            "plugin %s has held the other plugins for %.2f s in this batch, %.2f s of it in "
            "one callback still running; they go on without it, and it gets a thread of its "
            "own once that callback returns",
            runner.plugin.name,
            self._slow.pop(id(runner), 0.0) + running,
            running,
        )
        return runner

    def _run_group(self, batch: list[Event]) -> bool:
        """On the lane: each event to every plugin of the lane in order; False if cut short."""
        self._slow = {}
        now = self._hooks.clock()
        try:
            for event in batch:
                if self._stop.is_set():
                    return False
                if not self._run_event(event, now, timed=True):
                    return False
            for runner in self._group:
                runner.flush()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            return False
        return True

    def _run_late(self, events: list[Event]) -> bool:
        now = self._hooks.clock()
        try:
            for event in events:
                self._run_event(event, now, timed=False)
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
        return True

    def _run_event(self, event: Event, now: datetime, *, timed: bool) -> bool:
        """One event to each plugin of the lane; False when a stop cut it short."""
        lane = threading.get_ident()
        runners = self._group
        clock = self._monotonic
        for runner in runners:
            if self._group is not runners and runner not in self._group:
                continue  # taken off meanwhile
            started = clock()
            self._current[lane] = runner
            try:
                outcome = runner.handle(event, now)
            finally:
                with self._group_lock:
                    del self._current[lane]
                    left = lane in self._abandoned
                    self._abandoned.discard(lane)
            if left:
                # A new lane has the rest of the batch; this thread only finished its plugin.
                self._released.put(runner)
                raise LaneAbandonedError
            if outcome is None:
                continue
            if outcome is Outcome.FAILED:
                self._hooks.on_failed(runner.plugin)
            elif outcome is Outcome.INTERRUPTED:
                return False
            took = clock() - started
            if timed and took >= SLOW_CALL and self.policy is Promotion.WHEN_SLOW:
                slow = self._slow.get(id(runner), 0.0) + took
                self._slow[id(runner)] = slow
                if slow > HELD and runner.active:
                    with self._group_lock:
                        self._group = [r for r in self._group if r is not runner]
                    self._promote(runner, slow)
        return True

    # -- plugins on threads of their own ------------------------------------------------

    def _promote(self, runner: PluginRunner, held: float) -> None:
        count = self._promotions.get(id(runner), 0) + 1
        self._promotions[id(runner)] = count
        try:
            runner.flush()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
        if held:
            log.info(
                "plugin %s held the other plugins for %.2f s in one batch; it runs on a thread "
                "of its own so they are not held up",
                runner.plugin.name,
                held,
            )
        self._promoted[id(runner)] = (runner, self._monotonic(), count)
        self._own_thread(runner)

    def _own_thread(self, runner: PluginRunner) -> None:
        thread = PluginThread(
            runner,
            host=self,
            stop=self._stop,
            source_factory=self._source_factory,
            retry=self._retry,
            batch_size=self._batch_size,
            hooks=self._hooks,
            state_retry_interval=self._state_retry_interval,
        )
        with self._lock:
            thread.attached = self._head is not None and runner.cursor.last_id >= self._head
            self._threads[id(runner)] = thread
            self.most_promoted = max(self.most_promoted, len(self._threads))
        thread.start()

    def _promote_released(self) -> None:
        """Give a thread of its own to each plugin whose callback on a left lane returned."""
        if self._left:
            self._left = [lane for lane in self._left if not lane.join(0)]
        while True:
            try:
                runner = self._released.get_nowait()
            except queue.Empty:
                return
            if self._stuck.pop(id(runner), None) is not None:
                self._promote(runner, 0.0)

    def _rejoin_idle(self) -> None:
        """Bring back promoted plugins that are caught up, idle and were away long enough."""
        now = self._monotonic()
        for key, (runner, since, count) in list(self._promoted.items()):
            thread = self._threads.get(key)
            if thread is None or now - since < REJOIN_AFTER * 2 ** (count - 1):
                continue
            if not thread.idle():
                continue
            with self._lock:
                self._threads.pop(key, None)
            thread.close(timeout=30.0)
            del self._promoted[key]
            self._group = [*self._group, runner]
            log.info("plugin %s is caught up; it shares the lane again", runner.plugin.name)

    def _has_room(self) -> bool:
        """True when no attached thread is full (after detaching those full for too long)."""
        now = self._monotonic()
        room = True
        for thread in self._threads.values():
            if not (thread.attached and thread.runner.active) or thread.pending < MAX_PENDING:
                self._full_since.pop(id(thread), None)
                continue
            since = self._full_since.setdefault(id(thread), now)
            if now - since >= DETACH_AFTER:
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

    # -- what a plugin's thread asks (lanes.Host) --------------------------------------------

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
