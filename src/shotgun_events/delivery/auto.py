"""Auto delivery: quick plugins share the engine's thread; a slow one gets a thread of its own.

Every plugin starts in the shared group, run like serial mode (event by
event, plugin by plugin, no hand-off between threads, so trivial plugins
cost what they cost in serial mode). The time each plugin spends in one
batch is measured; a plugin that spends more than ``threshold`` seconds (150 ms) in
a batch is taken out of the group at once, with its cursor saved, and given
a worker of its own (the parallel mode's ``Worker``): from where it stopped
it reads from the site on its own until it has caught up, then follows the
engine's batches. The others go on with the rest of the batch, so a slow
plugin holds them for at most ``threshold`` seconds per promotion, and a
plugin that takes nearly all of the batch's time (a sleeper, a plugin
waiting on the site beside quick ones, in at least two slow callbacks)
leaves after a fifth of it. A
promoted plugin whose worker is caught up and idle goes back to the group
after ``rejoin_after`` seconds; each new promotion doubles that wait, so a
plugin that is slow for good stays on its own thread.

The threshold is wall time, so it also sees a plugin waiting on the site or
sleeping. It is well above what trivial plugins take per batch even when
other threads (read-ahead, promoted workers) hold the GIL: at 25 ms, GIL
waits alone got trivial plugins promoted during a catch-up from a distant
site, which then each read on their own.

A single callback that does not return cannot hold the group either: the
group runs on a thread of its own (a *lane*), and the engine's thread
watches it. When one callback has run longer than ``threshold``, its plugin
leaves the group, the stuck lane is left to that callback alone, and a new
lane takes the rest of the batch (plugins skip the events they already
handled, by their cursors). When the stuck callback returns, its thread ends
and the plugin gets a worker of its own, which catches up from its cursor.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime

from shotgun_events.delivery.base import Hooks
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.lane import Lane, LaneAbandonedError
from shotgun_events.delivery.parallel import ParallelDelivery
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.delivery.serial import SerialDelivery
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event

log = logging.getLogger("engine.delivery")

#: A plugin taking more than this share of a batch's time in the group leaves early,
DOMINANT_SHARE = 0.8
#: once it has spent this fraction of the threshold (30 ms of 150 ms)
DOMINANT_AFTER = 0.2
#: in callbacks of which at least two took this long each.
SLOW_CALLBACK = 0.01


class _TimedGroup(SerialDelivery):
    """Serial delivery that measures each plugin's time per batch and hands off slow ones."""

    def __init__(
        self,
        hooks: Hooks,
        stop: threading.Event,
        *,
        threshold: float,
        on_slow: Callable[[PluginRunner, float], None],
        monotonic: Callable[[], float],
    ) -> None:
        super().__init__(hooks, stop)
        self._threshold = threshold
        #: Below this a plugin's time in a batch cannot make it leave (the earliest rule).
        self._early = threshold * DOMINANT_AFTER
        self._on_slow = on_slow
        self._clock = monotonic
        self._spent: dict[int, float] = {}
        #: Callbacks over SLOW_CALLBACK per plugin in this batch (one stall is not dominance).
        self._slow: dict[int, int] = {}
        self._batch_total = 0.0
        # Per lane thread: the callback in hand; guarded so that taking a stuck plugin
        # out and its callback returning are seen in one order by both threads.
        self._lock = threading.Lock()
        self._currents: dict[int, tuple[PluginRunner, float, int]] = {}
        self._abandoned: set[int] = set()
        #: Plugins whose stuck callback returned on an abandoned lane: promote them.
        self.released: queue.SimpleQueue[PluginRunner] = queue.SimpleQueue()

    @property
    def runners(self) -> list[PluginRunner]:
        """The plugins of the group."""
        return list(self._runners)

    def deliver(self, batch: list[Event]) -> bool:
        """Deliver as serial mode does, measuring each plugin's share of the batch."""
        self._spent.clear()
        self._slow.clear()
        self._batch_total = 0.0
        return super().deliver(batch)

    def _dominates(self, runner: PluginRunner, spent: float) -> bool:
        """Whether one plugin has taken most of the group's time in this batch.

        Asked once the plugin has spent ``DOMINANT_AFTER`` of the threshold. A
        plugin that sleeps or waits on the site takes nearly all the batch's
        time, so it leaves then instead of at the full threshold. GIL waits slow
        every plugin of the group alike, so none of them reaches that share
        (which the full threshold alone cannot tell); and one stall (a garbage
        collection, a page fault) is not a slow plugin: at least two of its
        callbacks must each have taken ``SLOW_CALLBACK``.
        """
        return (
            len(self._runners) > 1
            and self._slow.get(id(runner), 0) >= 2
            and spent > DOMINANT_SHARE * self._batch_total
        )

    def busy(self) -> list[tuple[PluginRunner, float, int | None]]:
        """The callbacks in hand on every lane, stuck ones included."""
        with self._lock:
            return [
                (runner, self._clock() - since, tid)
                for runner, since, tid in self._currents.values()
            ]

    def take_stuck(self, lane: int) -> tuple[PluginRunner, float] | None:
        """Take out of the group the plugin whose callback has held ``lane`` too long."""
        with self._lock:
            entry = self._currents.get(lane)
            if entry is None or self._clock() - entry[1] <= self._threshold:
                return None
            runner, since, _ = entry
            self._abandoned.add(lane)
            self.remove(runner)
            self._spent.pop(id(runner), None)
            return runner, self._clock() - since

    def add(self, runner: PluginRunner) -> None:
        """Start delivering to a new plugin (a new list: a lane may be iterating the old one)."""
        self._runners = [*self._runners, runner]

    def remove(self, runner: PluginRunner) -> None:
        """Stop delivering to a plugin (a new list, as for ``add``)."""
        self._runners = [r for r in self._runners if r is not runner]

    def _one(self, event: Event, now: datetime) -> None:
        thread = threading.get_ident()
        runners = self._runners  # replaced, never changed in place: no copy per event
        for runner in runners:
            if self._runners is not runners and runner not in self._runners:
                continue  # taken out of the group meanwhile
            started = self._clock()
            # No lock to start: the watcher decides, and the lane learns it, under the lock
            # below, so a callback seen or not seen here is seen in one order by both.
            self._currents[thread] = (runner, started, thread)
            try:
                outcome = runner.handle(event, now)
            finally:
                with self._lock:
                    del self._currents[thread]
                    left = bool(self._abandoned) and thread in self._abandoned
                    if left:
                        self._abandoned.discard(thread)
            if left:
                # Another lane has the rest of the batch; this thread only finishes its plugin.
                self.released.put(runner)
                raise LaneAbandonedError
            if outcome is None:
                continue  # not wanted: no callback ran, nothing to measure
            took = self._clock() - started
            key = id(runner)
            spent = self._spent.get(key, 0.0) + took
            self._spent[key] = spent
            self._batch_total += took
            if took > SLOW_CALLBACK:
                self._slow[key] = self._slow.get(key, 0) + 1
            if outcome is Outcome.FAILED:
                self._hooks.on_failed(runner.plugin)
            elif outcome is Outcome.INTERRUPTED:
                return
            leaves = spent > self._early and (
                spent > self._threshold or self._dominates(runner, spent)
            )
            if leaves and runner.active:
                self.remove(runner)
                self._spent.pop(key, None)
                self._on_slow(runner, spent)


class AutoDelivery:
    """Quick plugins in the engine's thread, slow ones on workers of their own."""

    def __init__(
        self,
        hooks: Hooks,
        stop: threading.Event,
        *,
        own: ParallelDelivery,
        threshold: float = 0.15,
        rejoin_after: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hooks = hooks
        self._own = own
        self._rejoin_after = rejoin_after
        self._monotonic = monotonic
        self._group = _TimedGroup(
            hooks, stop, threshold=threshold, on_slow=self._promote, monotonic=monotonic
        )
        #: id(runner) -> (runner, when it got its own thread, promotions so far)
        self._promoted: dict[int, tuple[PluginRunner, float, int]] = {}
        self._promotions: dict[int, int] = {}
        #: The most plugins on threads of their own at once (benchmarks, status).
        self.most_promoted = 0
        self._lane: Lane | None = None
        #: Plugins left alone with a callback that overstayed, until it returns.
        self._stuck: dict[int, PluginRunner] = {}
        #: Lanes left to a stuck callback; a stop waits for them as for any callback.
        self._left: list[Lane] = []
        self._watch_every = max(0.01, threshold / 3)

    # -- membership --------------------------------------------------------------

    def add(self, runner: PluginRunner) -> None:
        """A new plugin starts in the shared group."""
        self._group.add(runner)

    def remove(self, runner: PluginRunner) -> None:
        """Stop delivering to a removed plugin, wherever it runs."""
        self._promotions.pop(id(runner), None)
        if self._stuck.pop(id(runner), None) is not None:
            return  # still inside its stuck callback; it is not promoted when that returns
        if self._promoted.pop(id(runner), None) is not None:
            self._own.remove(runner)
        else:
            self._group.remove(runner)

    def promoted(self) -> list[PluginRunner]:
        """The plugins running on a thread of their own now."""
        return [runner for runner, _, _ in self._promoted.values()]

    def _promote(self, runner: PluginRunner, spent: float) -> None:
        count = self._promotions.get(id(runner), 0) + 1
        self._promotions[id(runner)] = count
        try:
            runner.flush()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
        if spent:
            log.info(
                "plugin %s took %.2f s of one batch; it runs on a thread of its own so the "
                "other plugins are not held up",
                runner.plugin.name,
                spent,
            )
        else:
            log.info(
                "plugin %s's long callback returned; it runs on a thread of its own "
                "until it has caught up",
                runner.plugin.name,
            )
        self._promoted[id(runner)] = (runner, self._monotonic(), count)
        self.most_promoted = max(self.most_promoted, len(self._promoted))
        self._own.add(runner)

    def _in_lane(self, job: Callable[[], bool]) -> bool:
        """Run ``job`` on the group's lane; leave a lane whose callback overstays to it."""
        self._promote_released()
        lane = self._lane or self._new_lane()
        lane.submit(job)
        while not lane.done.wait(self._watch_every):
            stuck = self._group.take_stuck(lane.ident)
            if stuck is None:
                continue
            runner, spent = stuck
            self._stuck[id(runner)] = runner
            self._left.append(lane)
            log.warning(
                "plugin %s has been in one callback for %.2f s; the other plugins go on "
                "without it, and it gets a thread of its own once the callback returns",
                runner.plugin.name,
                spent,
            )
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

    def _promote_released(self) -> None:
        """Give a thread of its own to each plugin whose stuck callback has returned."""
        if self._left:
            self._left = [lane for lane in self._left if not lane.join(0)]
        while True:
            try:
                runner = self._group.released.get_nowait()
            except queue.Empty:
                return
            if self._stuck.pop(id(runner), None) is not None:
                self._promote(runner, 0.0)

    def _rejoin_idle(self) -> None:
        """Bring back promoted plugins that are caught up, idle and were away long enough."""
        now = self._monotonic()
        for key, (runner, since, count) in list(self._promoted.items()):
            wait = self._rejoin_after * 2 ** (count - 1)
            if now - since < wait or not self._own.is_idle(runner):
                continue
            self._own.remove(runner)
            del self._promoted[key]
            self._group.add(runner)
            log.info(
                "plugin %s is caught up; it shares the engine's thread again", runner.plugin.name
            )

    # -- the Delivery interface ----------------------------------------------------

    def fetch_position(self, head: int) -> int:
        """Read from the slowest plugin of the group (workers read on their own)."""
        self._promote_released()
        own = self._own.fetch_position(head)
        if any(r.active for r in self._group.runners):
            return self._group.fetch_position(head)
        return own

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Wait while a promoted, attached plugin has no room (it is detached if it stays full)."""
        if self._promoted:
            self._own.wait_for_room(stop, serve)

    def deliver(self, batch: list[Event]) -> bool:
        """Queue the batch for the promoted plugins, then run it through the group."""
        if not batch:
            return True
        # Before the batch is queued: a worker that handled all it was given is idle now.
        self._rejoin_idle()
        head = self._own.fetch_position(0)
        fresh = [e for e in batch if int(e["id"]) > head]
        if fresh:
            self._own.deliver(fresh)
        return self._in_lane(lambda: self._group.deliver(batch))

    def deliver_late(self, events: list[Event]) -> None:
        """Late events go to whoever waits for them."""
        self._own.deliver_late(events)

        def late() -> bool:
            self._group.deliver_late(events)
            return True

        self._in_lane(late)

    def expire(self, now: datetime) -> None:
        """Expire backlogs in the group now and in the workers between their events."""
        self._group.expire(now)
        self._own.expire(now)

    def save_pending(self) -> bool:
        """Retry the group's failed state writes (workers retry their own)."""
        return self._group.save_pending()

    def busy(self) -> list[tuple[PluginRunner, float, int | None]]:
        """Plugins inside a callback, in the group and on their own threads."""
        return [*self._group.busy(), *self._own.busy()]

    def in_flight(self) -> set[int]:
        """Late events queued for workers and not handled yet."""
        return self._own.in_flight()

    def drain(self, timeout: float) -> bool:
        """Wait for the workers and for callbacks still running on lanes left to them."""
        deadline = self._monotonic() + timeout
        done = self._own.drain(timeout)
        self._left = [lane for lane in self._left if not lane.join(deadline - self._monotonic())]
        return done and not self._left

    def close(self, timeout: float) -> None:
        """Stop the workers and the lane, persist the group's cursors.

        A callback still running on a lane left to it gets the same grace as the
        workers' callbacks: its plugin's position is saved when it returns.
        """
        deadline = self._monotonic() + timeout
        if self._lane is not None:
            self._lane.stop()
            self._lane = None
        self._own.close(timeout)
        for lane in self._left:
            if not lane.join(deadline - self._monotonic()):
                log.warning(
                    "a plugin callback is still running after %.1f s; stopping anyway", timeout
                )
        self._left = []
        self._group.close(timeout)
