"""The ceiling on plugins' site calls: token buckets on a fake clock, and the gate on real calls."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.client.connections import ConnectionFactory, ConnectionPool
from shotgun_events.client.limits import CallLimiter, TokenBucket, limiter_for
from shotgun_events.config.load import load_config
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.site import LocalSite

from .fakes import FakeCallback, FakePlugin, make_event
from .test_config import MINIMAL, write


class FakeTime:
    """A monotonic clock and a sleep: ``sleep`` records each wait and moves the clock by it."""

    def __init__(self, *, frozen: bool = False) -> None:
        self.now = 500.0
        self.frozen = frozen
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)  # list.append is atomic: safe from several threads
        if not self.frozen:
            self.now += seconds


class Waits:
    """A telemetry sink that keeps what the limiter reports (the rest is ignored)."""

    def __init__(self) -> None:
        self.by_plugin: dict[str, float] = {}

    def site_call_waited(self, plugin: str, seconds: float) -> None:
        self.by_plugin[plugin] = self.by_plugin.get(plugin, 0.0) + seconds

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def limiter(clock: FakeTime, default: float = 0.0, **per_plugin: float) -> CallLimiter:
    return CallLimiter(default, per_plugin, monotonic=clock.monotonic, sleep=clock.sleep)


def test_a_busy_plugin_is_held_to_its_rate_after_one_seconds_burst() -> None:
    # Given a plugin allowed 10 calls per second, and telemetry listening
    clock = FakeTime()
    limits = limiter(clock, rollup=10)
    waits = Waits()
    limits.telemetry = waits  # type: ignore[assignment]
    start = clock.now
    # When it sends 100 calls as fast as it can
    delays = [limits.wait("rollup") for _ in range(100)]
    # Then the first 10 (one second's worth) go at once, every later one waits a tenth
    assert delays[:10] == [0.0] * 10
    assert delays[10:] == pytest.approx([0.1] * 90)
    # And the 100 calls took 9 s: 10 per second after the burst
    assert clock.now - start == pytest.approx(9.0)
    # And the waiting time is counted for status and for the metrics alike
    assert limits.waited("rollup") == pytest.approx(9.0)
    assert waits.by_plugin == {"rollup": pytest.approx(9.0)}


def test_a_quiet_plugin_saves_up_one_seconds_worth_and_no_more() -> None:
    # Given a plugin at 5 calls per second that used its burst, then was quiet for a minute
    clock = FakeTime()
    bucket = TokenBucket(5, monotonic=clock.monotonic)
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5
    clock.now += 60
    # When it calls again 7 times at once
    delays = [bucket.reserve() for _ in range(7)]
    # Then 5 go at once and the next ones wait their turn: the saving is capped at the burst
    assert delays[:5] == [0.0] * 5
    assert delays[5:] == pytest.approx([0.2, 0.4])


def test_a_ceiling_under_one_call_per_second_allows_one_call_at_a_time() -> None:
    # Given a plugin allowed one call every 4 seconds
    clock = FakeTime()
    limits = limiter(clock, report=0.25)
    # When it calls three times
    delays = [limits.wait("report") for _ in range(3)]
    # Then the first goes at once and each next one 4 s after the previous
    assert delays == pytest.approx([0.0, 4.0, 4.0])
    assert limits.waited("report") == pytest.approx(8.0)


def test_calls_from_several_threads_each_get_a_turn_of_their_own() -> None:
    # Given a plugin at 10 calls per second, on a clock that stands still, and 8 threads
    clock = FakeTime(frozen=True)
    limits = limiter(clock, pool=10)
    start = threading.Barrier(8)

    def caller() -> None:
        start.wait()
        for _ in range(25):
            limits.wait("pool")

    threads = [threading.Thread(target=caller) for _ in range(8)]
    # When they all call at once, 200 calls in all
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Then 10 went at once and every other call was given a distinct later turn, a tenth of
    # a second after the one before: no two callers shared a turn and none was lost
    waits = sorted(clock.sleeps)
    assert len(waits) == 190
    assert waits == pytest.approx([k / 10 for k in range(1, 191)])
    assert limits.waited("pool") == pytest.approx(sum(k / 10 for k in range(1, 191)))


def test_the_plugins_section_wins_over_the_daemon_default_and_zero_means_none() -> None:
    # Given a daemon-wide ceiling of 3, one plugin allowed 20 and one exempted with 0
    clock = FakeTime()
    limits = limiter(clock, 3, fast=20, free=0)
    # Then each plugin gets its own ceiling
    assert (limits.limit("fast"), limits.limit("free"), limits.limit("other")) == (20, None, 3)
    # And the exempted plugin never waits, however much it calls
    assert all(limits.wait("free") == 0.0 for _ in range(1000))
    assert limits.waited("free") == 0.0 and clock.sleeps == []
    # And plugins keep separate buckets: one using its calls does not hold another
    for _ in range(3):
        limits.wait("other")
    assert limits.wait("other") > 0
    assert limits.wait("fast") == 0.0


def test_limits_come_from_the_config_and_are_off_by_default(tmp_path: Path) -> None:
    # Given the defaults: no limiter at all (no gate on any call)
    assert limiter_for(load_config(write(tmp_path, MINIMAL), environ={})) is None
    # Given a ceiling in one plugin's section only
    one = load_config(
        write(tmp_path, MINIMAL + "\n[plugin:rollup]\nmax_calls_per_second = 2.5\n"), environ={}
    )
    made = limiter_for(one)
    assert made is not None
    assert (made.limit("rollup"), made.limit("other")) == (2.5, None)
    assert made.describe() == "rollup 2.5/s"
    # Given a daemon-wide default and a section exempting a plugin
    text = MINIMAL.replace("[shotgun]", "max_calls_per_second = 4\n\n[shotgun]")
    both = load_config(
        write(tmp_path, text + "\n[plugin:sync]\nmax_calls_per_second = 0\n"), environ={}
    )
    made = limiter_for(both)
    assert made is not None
    assert (made.limit("sync"), made.limit("other")) == (None, 4)
    assert made.describe() == "sync none, every other plugin 4/s"
    # Given a section setting 0 and no default: nothing to limit
    none = load_config(
        write(tmp_path, MINIMAL + "\n[plugin:sync]\nmax_calls_per_second = 0\n"), environ={}
    )
    assert limiter_for(none) is None


def caller(name: str, calls: int) -> FakePlugin:
    """A plugin whose callback reads the site ``calls`` times per event."""
    plugin = FakePlugin(name)

    def look(sg: Any, logger: Any, event: Any, args: Any) -> None:
        for _ in range(calls):
            sg.find_one("Shot", [], ["code"])

    plugin.callbacks.append(
        FakeCallback("look", look, script_name="shotgun_events", script_key="local")
    )
    return plugin


def test_the_gate_holds_only_the_limited_plugins_callbacks_on_a_shared_sg() -> None:
    # Given the daemon's pieces on a local site: the in-flight registry, a limiter with a
    # ceiling of 2 calls/s for "rollup" only (on a clock that stands still), the plugins'
    # pool with the gate, and a dispatcher writing the registry
    clock = FakeTime(frozen=True)
    limits = limiter(clock, rollup=2)
    waits = Waits()
    limits.telemetry = waits  # type: ignore[assignment]
    registry = InFlight()
    with LocalSite(scripts={"shotgun_events": "local"}) as site:
        pool = ConnectionPool(
            ConnectionFactory(server=site.url, timeout=10), gate=limits.gate(registry.on_thread)
        )
        dispatcher = Dispatcher(connections=pool, use_session_uuid=True, in_flight=registry)
        rollup, sync = caller("rollup", 5), caller("sync", 5)
        # When this thread first calls outside any callback (as registerCallbacks may),
        sg = pool.get("shotgun_events", "local")
        for _ in range(5):
            sg.find_one("Shot", [], ["code"])
        # then runs one event through both plugins, which share that thread's sg
        for plugin in (rollup, sync):
            dispatcher.run(plugin, make_event(1))  # type: ignore[arg-type]
        calls = site.call_counts()
        pool.close()
    # Then only rollup's calls beyond its burst of 2 waited, each for a later turn
    assert clock.sleeps == pytest.approx([0.5, 1.0, 1.5])
    assert waits.by_plugin == {"rollup": pytest.approx(3.0)}
    assert (limits.waited("rollup"), limits.waited("sync")) == (pytest.approx(3.0), 0.0)
    # And every call reached the site once: 15 reads, plus the credential's one info
    assert calls.get("read") == 15 and calls.get("info") == 1


def test_the_gate_runs_once_per_request_the_client_sends() -> None:
    # Given a pool whose gate counts, on a local site
    passed = []
    with LocalSite(scripts={"shotgun_events": "local"}, seed=True) as site:
        pool = ConnectionPool(
            ConnectionFactory(server=site.url, timeout=10), gate=lambda: passed.append(1)
        )
        sg = pool.get("shotgun_events", "local")
        # When a plugin reads, writes, sends a batch and reads the schema
        shot = sg.find_one("Shot", [], ["id"])
        sg.update("Shot", shot["id"], {"description": "x"})
        sg.batch([{"request_type": "update", "entity_type": "Shot", "entity_id": shot["id"],
                   "data": {"description": "y"}}])  # fmt: skip
        sg.schema_field_read("Shot", "code")
        calls = site.call_counts()
        pool.close()
    # Then the gate ran exactly once for each request the site received (info included)
    assert sum(passed) == sum(calls.values()) == 5
