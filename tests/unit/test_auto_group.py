"""The shared group of auto dispatch: which plugin leaves it, and when (fake clock, no threads)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import cast

from shotgun_events.delivery.auto import _TimedGroup
from shotgun_events.delivery.base import Hooks
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.events import Event


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimedRunner:
    """A plugin runner whose every event takes ``cost`` seconds of the fake clock."""

    def __init__(self, name: str, cost: float, clock: FakeClock) -> None:
        self.name = name
        self.cost = cost
        self.clock = clock
        self.active = True
        self.handled: list[int] = []
        self.plugin = type("P", (), {"name": name})()

    def handle(self, event: Event, now: datetime) -> Outcome:
        self.clock.now += self.cost
        self.handled.append(int(event["id"]))
        return Outcome.DONE

    def flush(self) -> None:
        """Nothing to save."""


def group(*runners: TimedRunner, clock: FakeClock) -> tuple[_TimedGroup, list[str]]:
    left: list[str] = []
    hooks = Hooks(
        on_failed=lambda plugin: None,
        on_state_trouble=lambda exc: None,
        clock=lambda: datetime(2026, 12, 2, tzinfo=UTC),
    )
    timed = _TimedGroup(
        hooks,
        threading.Event(),
        threshold=0.15,
        on_slow=lambda runner, spent: left.append(runner.plugin.name),
        monotonic=clock,
    )
    for runner in runners:
        timed.add(cast(PluginRunner, runner))
    return timed, left


def batch(first: int, count: int) -> list[Event]:
    return [cast(Event, {"id": n}) for n in range(first, first + count)]


def test_a_sleeper_beside_quick_plugins_leaves_after_a_fifth_of_the_threshold() -> None:
    # Given nine quick plugins and one that waits 20 ms per event
    clock = FakeClock()
    quick = [TimedRunner(f"q{n}", 0.00001, clock) for n in range(9)]
    sleeper = TimedRunner("sleeper", 0.02, clock)
    timed, left = group(*quick, sleeper, clock=clock)
    # When a batch of 100 events goes through the group
    timed.deliver(batch(1, 100))
    # Then the sleeper left after 2 events (40 ms > 30 ms, nearly all of the time),
    # long before the 150 ms threshold's 8, and the quick ones got the whole batch
    assert left == ["sleeper"]
    assert sleeper.handled == [1, 2]
    assert all(r.handled == list(range(1, 101)) for r in quick)


def test_plugins_slowed_alike_stay_in_the_group_until_the_full_threshold() -> None:
    # Given ten plugins that all take 5.1 ms per event (GIL waits slow them alike)
    clock = FakeClock()
    alike = [TimedRunner(f"p{n}", 0.0051, clock) for n in range(10)]
    timed, left = group(*alike, clock=clock)
    # When a batch of 20 events goes through (102 ms each, a tenth of the time each)
    timed.deliver(batch(1, 20))
    # Then none dominates and none reached 150 ms: all stay
    assert left == []
    # When a longer batch takes each past the full threshold
    timed.deliver(batch(21, 40))
    # Then they leave by the threshold rule, at its 30th event (153 ms > 150 ms)
    assert left == [f"p{n}" for n in range(10)]
    assert all(r.handled[-1] == 21 + 29 for r in alike)


def test_a_plugin_alone_in_the_group_leaves_only_at_the_full_threshold() -> None:
    # Given one plugin alone, 20 ms per event (there is no one to protect)
    clock = FakeClock()
    only = TimedRunner("only", 0.02, clock)
    timed, left = group(only, clock=clock)
    # When a batch goes through
    timed.deliver(batch(1, 20))
    # Then it stayed for 8 events (160 ms > 150 ms), not 2
    assert left == ["only"]
    assert only.handled == list(range(1, 9))


def test_the_share_is_counted_per_batch() -> None:
    # Given a plugin that is slow in one batch only, beside a quick one
    clock = FakeClock()
    quick = TimedRunner("quick", 0.00001, clock)
    moody = TimedRunner("moody", 0.012, clock)
    timed, left = group(quick, moody, clock=clock)
    # When a batch of 2 events goes through (24 ms: under 30 ms)
    timed.deliver(batch(1, 2))
    moody.cost = 0.00001
    # And then a quick batch
    timed.deliver(batch(3, 10))
    # Then its earlier time did not carry over: it never left
    assert left == []
    assert moody.handled == list(range(1, 13))


def test_one_stall_of_a_quick_plugin_is_not_dominance() -> None:
    # Given ten quick plugins, one of which stalls once for 40 ms (a garbage collection)
    clock = FakeClock()
    quick = [TimedRunner(f"q{n}", 0.00001, clock) for n in range(10)]
    stalled = quick[3]
    inner = stalled.handle

    def once(event: Event, now: datetime) -> Outcome:
        if event["id"] == 1:
            clock.now += 0.04
        return inner(event, now)

    stalled.handle = once  # type: ignore[method-assign]
    timed, left = group(*quick, clock=clock)
    # When a batch goes through
    timed.deliver(batch(1, 50))
    # Then nobody left: 40 ms is most of the batch's time, but in one callback
    assert left == []
    assert all(r.handled == list(range(1, 51)) for r in quick)
