"""The shared lane's rule: which plugin leaves it for a thread of its own, and when (fake clock)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from shotgun_events.client.retry import SiteRetry
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.fanout import HELD, SLOW_CALL, Fanout, Promotion
from shotgun_events.delivery.inflight import InFlight, busy_clock
from shotgun_events.delivery.plugin_thread import DETACH_AFTER, MAX_PENDING, Hooks
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.delivery.threads import OwnThreads
from shotgun_events.events import Event
from tests.unit.fakes import FakeSource


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimedRunner:
    """A plugin runner whose every event takes ``cost`` seconds of the fake clock."""

    def __init__(self, name: str, cost: float, clock: FakeClock) -> None:
        self.cost = cost
        self.clock = clock
        self.active = True
        self.unsaved = False
        self.handled: list[int] = []
        self.plugin = type("P", (), {"name": name, "active": True})()
        self.cursor = type("C", (), {"last_id": 0})()

    def handle(self, event: Event, now: datetime, *, late: bool = False) -> Outcome:
        self.clock.now += self.cost
        self.handled.append(int(event["id"]))
        self.cursor.last_id = int(event["id"])
        return Outcome.DONE

    def flush(self) -> None:
        """Nothing to save."""


def make_fanout(policy: Promotion, clock: Callable[[], float], *, batch_size: int) -> Fanout:
    """A fan-out under ``policy`` on ``clock``, whose hooks record nothing."""
    hooks = Hooks(
        on_failed=lambda plugin: None,
        on_state_trouble=lambda exc: None,
        clock=lambda: datetime(2026, 12, 2, tzinfo=UTC),
    )
    return Fanout(
        hooks,
        threading.Event(),
        policy=policy,
        registry=InFlight(clock),
        source_factory=FakeSource,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: True),
        batch_size=batch_size,
        monotonic=clock,
    )


def lane(
    *runners: TimedRunner,
    clock: Callable[[], float],
    policy: Promotion = Promotion.WHEN_SLOW,
) -> tuple[Fanout, list[str]]:
    """A fan-out whose promotions are only recorded (no threads of their own start)."""
    left: list[str] = []
    fanout = make_fanout(policy, clock, batch_size=500)
    fanout._own.add = lambda runner, **kw: left.append(runner.plugin.name)  # type: ignore[method-assign]
    for runner in runners:
        fanout.add(cast(PluginRunner, runner))
    return fanout, left


def batch(first: int, count: int) -> list[Event]:
    return [cast(Event, {"id": n}) for n in range(first, first + count)]


def test_a_sleeper_beside_quick_plugins_leaves_once_it_held_them_for_held() -> None:
    # Given nine quick plugins and one that waits 20 ms per event
    clock = FakeClock()
    quick = [TimedRunner(f"q{n}", 0.00001, clock) for n in range(9)]
    sleeper = TimedRunner("sleeper", 0.02, clock)
    fanout, left = lane(*quick, sleeper, clock=clock)
    # When a batch of 100 events goes through the lane
    assert fanout.deliver(batch(1, 100), after=0)
    # Then the sleeper left after 2 events (40 ms > 30 ms) and the quick ones got it all
    assert (HELD, SLOW_CALL) == (0.03, 0.01)
    assert left == ["sleeper"]
    assert sleeper.handled == [1, 2]
    assert all(r.handled == list(range(1, 101)) for r in quick)
    fanout.close(1)


def test_quick_calls_never_count_however_many_the_plugins_are_slowed_alike() -> None:
    # Given ten plugins that all take 5 ms per event (waiting for the interpreter's lock)
    clock = FakeClock()
    alike = [TimedRunner(f"p{n}", 0.005, clock) for n in range(10)]
    fanout, left = lane(*alike, clock=clock)
    # When long batches go through
    assert fanout.deliver(batch(1, 200), after=0)
    # Then none leaves: a thread of its own would not make any of them faster
    assert left == []
    assert all(r.handled == list(range(1, 201)) for r in alike)
    fanout.close(1)


class CollectingRunner(TimedRunner):
    """A plugin runner whose every event lands in a full garbage collection."""

    def handle(self, event: Event, now: datetime, *, late: bool = False) -> Outcome:
        gc.collect()
        return super().handle(event, now)


def test_garbage_collections_in_callbacks_do_not_make_a_plugin_slow() -> None:
    # Given a heap whose full collection takes longer than a slow callback (on the wall clock)
    heap: list[list[int]] = []
    took = 0.0
    while took < 2 * SLOW_CALL:
        heap.extend([n] for n in range(500_000))
        started = time.monotonic()
        gc.collect()
        took = time.monotonic() - started
    # and a plugin whose every callback lands in such a collection, beside a quick one
    idle = FakeClock()
    collector = CollectingRunner("collector", 0.0, idle)
    quick = TimedRunner("quick", 0.0, idle)
    fanout, left = lane(quick, collector, clock=busy_clock)
    # When a batch of 4 events goes through (more than HELD of collections on the wall clock)
    assert fanout.deliver(batch(1, 4), after=0)
    # Then the collector stays on the lane: a collection holds every thread alike
    assert 4 * took > HELD
    assert left == []
    assert collector.handled == [1, 2, 3, 4]
    fanout.close(1)
    del heap


def test_the_slow_time_is_counted_per_batch() -> None:
    # Given a plugin that is slow in one batch only, beside a quick one
    clock = FakeClock()
    quick = TimedRunner("quick", 0.00001, clock)
    moody = TimedRunner("moody", 0.012, clock)
    fanout, left = lane(quick, moody, clock=clock)
    # When a batch of 2 events goes through (24 ms: under 30 ms), then quick batches
    assert fanout.deliver(batch(1, 2), after=0)
    moody.cost = 0.00001
    assert fanout.deliver(batch(3, 10), after=2)
    moody.cost = 0.012
    assert fanout.deliver(batch(13, 2), after=12)
    # Then its slow time did not carry over from one batch to the next: it never left
    assert left == []
    assert moody.handled == list(range(1, 15))
    fanout.close(1)


def test_with_promotion_never_nobody_leaves_and_with_always_everybody_has_a_thread() -> None:
    # Given a slow plugin beside a quick one
    clock = FakeClock()
    quick, slow = TimedRunner("quick", 0.00001, clock), TimedRunner("slow", 0.05, clock)
    fanout, left = lane(quick, slow, clock=clock, policy=Promotion.NEVER)
    # When the lane never promotes: the slow one stays and gets every event
    assert fanout.deliver(batch(1, 10), after=0)
    assert left == [] and slow.handled == list(range(1, 11))
    fanout.close(1)
    # When every plugin runs on its own thread from the start
    fanout, left = lane(quick, slow, clock=clock, policy=Promotion.ALWAYS)
    assert left == ["quick", "slow"]
    fanout.close(1)


def test_a_plugin_behind_the_read_gets_nothing_of_it_and_the_next_read_starts_from_it() -> None:
    # Given two plugins on the lane, one of them switched back on at event 3 while the read
    # was placed for the other, after event 10
    clock = FakeClock()
    ahead, back = TimedRunner("ahead", 0.0, clock), TimedRunner("back", 0.0, clock)
    ahead.cursor.last_id, back.cursor.last_id = 10, 3
    fanout, _ = lane(ahead, back, clock=clock)
    # When that batch comes
    delivered = fanout.deliver(batch(11, 5), after=10)
    # Then nobody gets it (ids 4-10 are no gaps to the one behind), and the next read
    # starts from the slowest
    assert not delivered and ahead.handled == [] and back.handled == []
    assert fanout.fetch_position(10) == 3


def full_thread(policy: Promotion, clock: FakeClock) -> tuple[OwnThreads, TimedRunner]:
    """The plugins on threads of their own under ``policy``, one of them attached and
    MAX_PENDING batches behind (its thread not started)."""
    own = make_fanout(policy, clock, batch_size=10)._own
    runner = TimedRunner("behind", 0.0, clock)
    own.add(cast(PluginRunner, runner), rest=[], start=False)
    for n in range(MAX_PENDING):
        own.feed(batch(1 + 10 * n, 10), after=10 * n)
    return own, runner


def test_a_plugin_taken_off_the_lane_never_holds_it_again_when_it_falls_behind() -> None:
    # Given the plugins on threads of their own in auto mode (taken off the lane for holding
    # it), one of them a full inbox behind
    clock = FakeClock()
    own, runner = full_thread(Promotion.WHEN_SLOW, clock)

    # When the engine asks for room to read the next batch
    def serve() -> None:
        raise AssertionError("the engine waited for a plugin taken off the lane")

    own.wait_for_room(threading.Event(), serve=serve)
    # Then it did not wait: the plugin reads on its own from now on
    assert not own._threads[id(runner)].attached


def test_with_every_plugin_on_a_thread_the_engine_waits_a_little_for_a_full_one() -> None:
    # Given every plugin on a thread of its own (parallel mode), one a full inbox behind
    clock = FakeClock()
    own, runner = full_thread(Promotion.ALWAYS, clock)
    stop = threading.Event()
    # When the engine asks for room while the clock stands still
    waited: list[int] = []

    def serve() -> None:
        waited.append(1)
        if len(waited) == 2:
            assert own._threads[id(runner)].attached  # still followed: the engine waits
            clock.now += DETACH_AFTER  # the plugin stays full that long

    own.wait_for_room(stop, serve=serve)
    # Then it waited for the plugin (serving requests meanwhile) until DETACH_AFTER passed,
    # and only then let it read on its own
    assert len(waited) == 2
    assert not own._threads[id(runner)].attached
