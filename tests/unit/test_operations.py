"""Operator commands inside the engine: replay, skip, reset, disable/enable, reload, status."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from shotgun_events.client.limits import CallLimiter
from shotgun_events.client.retry import SiteRetry
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.executors import choose
from shotgun_events.delivery.failures import DeadLetters
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.settings import Settings
from shotgun_events.errors import ControlError
from shotgun_events.operator import operations
from shotgun_events.operator.status import plugin_line
from tests.unit.fakes import DISPATCH_MODES

from .fakes import (
    Clock,
    FakeConnections,
    FakeLoader,
    FakePlugin,
    FakeSource,
    FakeStore,
    recording_plugin,
)

Rig = tuple[Engine, FakeSource, FakeStore, dict[str, FakePlugin]]


@pytest.fixture(params=DISPATCH_MODES)
def dispatch(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[1, 4], ids=["strict", "concurrent"])
def concurrency(request: pytest.FixtureRequest) -> int:
    """Every command also works on plugins whose events run concurrently (watermark)."""
    return int(request.param)


@pytest.fixture
def rig(dispatch: str, concurrency: int) -> Iterator[Rig]:
    """An engine at event 10 with plugins a, b and 'bad' (fails on event 12)."""
    source = FakeSource()
    source.add(*range(1, 11))
    plugins = {
        "a": recording_plugin("a"),
        "b": recording_plugin("b"),
        "bad": recording_plugin("bad", fail_on={12}),
    }
    store = FakeStore()
    clock = Clock()
    engine = Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: False),
        loader=FakeLoader(list(plugins.values())),
        store=store,
        dispatcher=Dispatcher(connections=FakeConnections(), use_session_uuid=False),
        settings=Settings(dispatch=dispatch, backlog_timeout=timedelta(seconds=300)),
        stop=threading.Event(),
        clock=clock,
        monotonic=clock.monotonic,
        spec_for=lambda plugin: choose(replace(plugin, concurrency=concurrency), {}),
    )
    engine.start()
    try:
        yield engine, source, store, plugins
    finally:
        engine.close()


def step(engine: Engine) -> None:
    engine.run_once()
    engine.drain(5)


def test_replay_redelivers_a_range_to_one_plugin_without_moving_it(rig: Rig) -> None:
    engine, source, store, plugins = rig
    source.add(11, 12)
    step(engine)
    a, b = plugins["a"], plugins["b"]
    # When events 5..8 are replayed to a
    result = operations.replay(engine, "a", 5, 8, "fix bad data")
    # Then a got them again, b did not, and a's position is unchanged
    assert result["delivered"] == 4
    assert a.received == [11, 12, 5, 6, 7, 8]
    assert b.received == [11, 12]
    assert engine.runner_named("a").cursor.last_id == 12  # type: ignore[union-attr]
    assert store.sections["audit"][-1]["command"] == "replay"  # type: ignore[index]
    assert store.sections["audit"][-1]["reason"] == "fix bad data"  # type: ignore[index]


def test_skip_gives_up_the_blocking_event_and_resumes(rig: Rig) -> None:
    engine, source, store, plugins = rig
    bad = plugins["bad"]
    source.add(11, 12, 13)
    step(engine)
    assert not bad.active and bad.received == [11]
    # Skipping an event it is not stuck on is refused
    with pytest.raises(ControlError, match="not stuck on event 13"):
        operations.skip(engine, "bad", 13, "wrong one")
    # When the operator skips event 12
    operations.skip(engine, "bad", 12, "customer data is broken")
    step(engine)
    # Then the plugin is on again, got 13, never 12, and 12 is a dead letter
    assert bad.active
    assert bad.received == [11, 13]
    [letter] = DeadLetters(store).entries()
    assert letter["event_id"] == 12 and "customer data is broken" in letter["reason"]


def test_reset_moves_one_plugin_back(rig: Rig) -> None:
    engine, source, _, plugins = rig
    source.add(11)
    step(engine)
    operations.reset(engine, "a", "9", "redo")
    step(engine)
    assert plugins["a"].received == [11, 9, 10, 11]
    assert plugins["b"].received == [11]


def test_reset_to_latest_skips_ahead(rig: Rig) -> None:
    engine, source, _, plugins = rig
    operations.disable(engine, "a", "maintenance")
    source.add(11, 12)
    step(engine)
    operations.enable(engine, "a", "back")
    operations.reset(engine, "a", "latest", "skip the backlog")
    source.add(13)
    step(engine)
    assert plugins["a"].received == [13]


def test_disabled_plugin_gets_nothing_and_catches_up_after_enable(rig: Rig) -> None:
    engine, source, store, plugins = rig
    operations.disable(engine, "a", "vendor outage")
    assert store.sections["disabled"] == {"a": "vendor outage"}
    source.add(11, 12)
    step(engine)
    assert plugins["a"].received == []
    assert "disabled by an operator" in (plugins["a"].reason or "")
    status = operations.status(engine)
    entry = next(p for p in status["plugins"] if p["name"] == "a")
    assert entry["state"] == "disabled" and entry["lag_events"] == 2
    # When enabled again
    operations.enable(engine, "a", "vendor back")
    step(engine)
    step(engine)
    # Then it catches up from where it stopped
    assert plugins["a"].received == [11, 12]
    assert store.sections["disabled"] == {}


def test_status_lists_every_plugin_with_its_position(rig: Rig) -> None:
    engine, source, _, _ = rig
    source.add(11, 12)
    step(engine)
    status = operations.status(engine)
    names = {p["name"]: p for p in status["plugins"]}
    assert set(names) == {"a", "b", "bad"}
    assert names["a"]["last_event_id"] == 12 and names["a"]["state"] == "active"
    assert names["bad"]["state"] == "inactive" and "boom on 12" in names["bad"]["reason"]
    assert status["head"] == 12


def test_unknown_plugin_is_a_clear_error(rig: Rig) -> None:
    engine, _, _, _ = rig
    with pytest.raises(ControlError, match="no plugin named 'nope'; loaded plugins: a, b, bad"):
        operations.reset(engine, "nope", "latest", "")


def test_submit_runs_the_action_in_the_engine_loop(rig: Rig) -> None:
    engine, _, _, _ = rig
    future = engine.submit(lambda e: threading.current_thread().name)
    assert not future.done()
    engine.run_once()
    assert future.result(timeout=1) == threading.current_thread().name


def test_replay_stops_at_the_plugins_position(rig: Rig) -> None:
    # Given plugin a at event 10
    engine, source, _, plugins = rig
    source.add(11, 12)
    # When a replay asks for events up to 12, which a has not had yet
    result = operations.replay(engine, "a", 9, 12, "too far")
    # Then only 9 and 10 are replayed; 11 and 12 arrive once, by normal delivery
    assert result["to_id"] == 10
    step(engine)
    assert plugins["a"].received == [9, 10, 11, 12]


def test_pending_replay_leaves_the_state_only_after_it_ran(rig: Rig) -> None:
    engine, _, store, plugins = rig
    store.set_extra("pending_replays", [{"plugin": "b", "from_id": 9, "to_id": 10}])
    operations.queue_pending_replays(engine)
    # Queued, not run yet: still in the state (a crash now keeps it)
    assert store.sections["pending_replays"] == [{"plugin": "b", "from_id": 9, "to_id": 10}]
    engine.run_once()
    assert plugins["b"].received == [9, 10]
    assert store.sections["pending_replays"] == []


def test_audit_names_the_operator_who_asked(rig: Rig) -> None:
    engine, _, store, _ = rig
    operations.disable(engine, "a", "night", operator="alice")
    assert store.sections["audit"][-1]["operator"] == "alice"  # type: ignore[index]


def test_status_shows_watermark_in_flight_and_done_set(rig: Rig, concurrency: int) -> None:
    # Given plugins that handled events 11 and 12
    engine, source, _, _ = rig
    source.add(11, 12)
    step(engine)
    # When the status is asked for
    report = {p["name"]: p for p in operations.status(engine)["plugins"]}
    # Then each plugin shows its watermark, nothing in flight, an empty done set
    assert report["a"]["watermark"] == 12
    assert (report["a"]["in_flight"], report["a"]["done"]) == (0, 0)
    assert report["a"]["concurrency"] == concurrency


def test_status_names_the_event_a_callback_has_been_running_on_from_the_registry() -> None:
    # Given an engine whose plugin "held" is inside a callback on event 3
    clock = Clock()
    gate, inside = threading.Event(), threading.Event()
    held = recording_plugin("held")
    inner = held.callbacks[0].func
    held.callbacks[0].func = lambda *a: (inside.set(), gate.wait(10), inner(*a))
    source = FakeSource()
    engine = Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: False),
        loader=FakeLoader([held]),
        store=FakeStore(),
        dispatcher=Dispatcher(
            connections=FakeConnections(),
            use_session_uuid=False,
            in_flight=InFlight(clock.monotonic),
        ),
        settings=Settings(),
        stop=threading.Event(),
        clock=clock,
        monotonic=clock.monotonic,
    )
    engine.start()
    source.add(3)
    runner = threading.Thread(target=engine.run_once)
    runner.start()
    try:
        assert inside.wait(10)
        clock.advance(4.2)
        # When status is asked
        shown = operations.status(engine)["plugins"][0]
        # Then it says which event runs and for how long, the plain text too
        assert shown["running"] == [{"event_id": 3, "seconds": 4.2}]
        assert "running event 3 for 4 s" in plugin_line(shown)
    finally:
        gate.set()
        runner.join(10)
        engine.close()
    assert held.received == [3]


def test_status_shows_a_plugins_call_ceiling_and_the_time_its_calls_waited(rig: Rig) -> None:
    # Given plugin a held to 2 site calls per second, whose callbacks sent 4 calls at once
    engine, _, _, _ = rig
    waits: list[float] = []
    limits = CallLimiter(0, {"a": 2}, monotonic=lambda: 100.0, sleep=waits.append)
    for _ in range(4):
        limits.wait("a")
    # When the status is asked of a daemon with that limiter
    engine.dispatcher.limits = limits
    report = {p["name"]: p for p in operations.status(engine)["plugins"]}
    # Then a shows its ceiling and the 1.5 s its last two calls waited; b has no ceiling
    assert (report["a"]["max_calls_per_second"], report["a"]["site_call_wait_seconds"]) == (2, 1.5)
    assert (report["b"]["max_calls_per_second"], report["b"]["site_call_wait_seconds"]) == (None, 0)
    # And the plain line says it, for a only
    assert "site calls <= 2/s waited 1.5 s" in plugin_line(report["a"])
    assert "site calls" not in plugin_line(report["b"])
    # And a plugin on Celery shows its ceiling as held by each worker
    on_celery = {**report["a"], "executor": "celery"}
    assert "site calls <= 2/s per worker" in plugin_line(on_celery)
