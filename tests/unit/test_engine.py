"""The poll loop's rules, driven one ``run_once`` at a time with in-memory fakes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from shotgun_events.client.outage import Outage
from shotgun_events.client.retry import SiteRetry
from shotgun_events.cursor import Cursor
from shotgun_events.delivery import fanout
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.settings import Settings
from tests.unit.fakes import DISPATCH_MODES

from .fakes import (
    T0,
    Clock,
    FakeCallback,
    FakeConnections,
    FakeLoader,
    FakePlugin,
    FakeSource,
    FakeStore,
    recording_plugin,
)


@pytest.fixture(autouse=True, params=DISPATCH_MODES)
def dispatch(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every engine rule in every delivery mode."""
    global DISPATCH
    DISPATCH = request.param
    yield request.param
    for engine in ENGINES:
        engine.close()
    ENGINES.clear()


DISPATCH = "serial"
ENGINES: list[Engine] = []


class SteppedEngine(Engine):
    """An engine whose run_once also waits for the plugin workers to finish."""

    drain_timeout = 5.0

    def run_once(self) -> bool:
        full = super().run_once()
        self.drain(timeout=self.drain_timeout)
        return full


def real_time_engine(source: FakeSource, plugins: list[FakePlugin], **settings: Any) -> Engine:
    """An engine on the real clock (the lane's take-off watch runs on it), started."""
    stop = threading.Event()
    engine = Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: stop.is_set()),
        loader=FakeLoader(plugins),
        store=FakeStore(),
        dispatcher=Dispatcher(connections=FakeConnections(), use_session_uuid=False),
        settings=Settings(**settings),
        stop=stop,
    )
    ENGINES.append(engine)
    engine.start()
    return engine


def build(
    source: FakeSource,
    plugins: list[FakePlugin],
    store: FakeStore | None = None,
    *,
    clock: Clock | None = None,
    batch_size: int = 500,
    start_from_id: int | None = None,
    prefilter: bool = False,
    dispatcher: Dispatcher | None = None,
) -> tuple[Engine, FakeStore, Clock]:
    store = store or FakeStore()
    clock = clock or Clock()
    stop = threading.Event()
    retry = SiteRetry(max_attempts=3, burst_sleep=0, wait=lambda s: stop.is_set())
    engine = SteppedEngine(
        source=source,
        retry=retry,
        loader=FakeLoader(plugins),
        store=store,
        dispatcher=dispatcher or Dispatcher(connections=FakeConnections(), use_session_uuid=True),
        settings=Settings(
            batch_size=batch_size,
            backlog_timeout=timedelta(seconds=300),
            backlog_poll_interval=5.0,
            start_from_id=start_from_id,
            dispatch=DISPATCH,
            state_retry_interval=0.01,
            prefilter=prefilter,
        ),
        stop=stop,
        clock=clock,
        monotonic=clock.monotonic,
    )
    assert engine.start()
    ENGINES.append(engine)
    return engine, store, clock


def test_no_state_starts_at_newest_event_and_replays_nothing() -> None:
    # Given a site with events 1..5 and no state
    source = FakeSource()
    source.add(1, 2, 3, 4, 5)
    plugin = recording_plugin("a")
    engine, store, _ = build(source, [plugin])
    # When new events 6, 7 appear and the engine runs
    source.add(6, 7)
    engine.run_once()
    # Then only the new events are delivered
    assert plugin.received == [6, 7]
    assert store.positions[plugin.key].last_id == 7


def test_from_id_starts_there() -> None:
    source = FakeSource()
    source.add(1, 2, 3, 4, 5)
    plugin = recording_plugin("a")
    engine, _, _ = build(source, [plugin], start_from_id=3)
    engine.run_once()
    assert plugin.received == [3, 4, 5]


def test_every_plugin_gets_every_event_in_order_and_resumes_from_saved_state() -> None:
    # Given saved positions: a at 2, b at 4
    source = FakeSource()
    source.add(*range(1, 11))
    a, b = recording_plugin("a"), recording_plugin("b")
    store = FakeStore({a.key: Cursor(2), b.key: Cursor(4)})
    engine, store, _ = build(source, [a, b], store, batch_size=3)
    # When the engine runs until it is idle
    while engine.run_once():
        pass
    # Then each plugin got exactly the events after its own position, in order
    assert a.received == list(range(3, 11))
    assert b.received == list(range(5, 11))
    # And the slower plugin's events were read from its own position
    assert ("after", 2) in source.calls


def test_late_event_is_delivered_once_and_later_events_are_not_repeated() -> None:
    # Given events 1..3 seen, then 5, 6 visible while 4 is not committed yet
    source = FakeSource()
    source.add(1, 2, 3)
    plugin = recording_plugin("a")
    engine, store, clock = build(source, [plugin])
    source.add(4, 5, 6)
    source.hidden.add(4)
    engine.run_once()
    assert plugin.received == [5, 6]
    assert store.positions[plugin.key].backlog.keys() == {4}
    # When 4 commits and the backlog poll interval passes
    source.hidden.clear()
    clock.advance(6)
    engine.run_once()
    engine.run_once()
    # Then 4 is delivered once and 5, 6 are not delivered again
    assert plugin.received == [5, 6, 4]
    assert store.positions[plugin.key].last_id == 6
    assert store.positions[plugin.key].backlog == {}


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (plugins on threads of their own), up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_plugin_held_by_an_outage_takes_no_late_event_of_another_plugin_as_fresh() -> None:
    # Given plugins a and b at event 0, events 1..8 with 5 not committed yet, and b's
    # callback meeting a site outage at event 3 (held: it reads again from 3 later)
    source = FakeSource()
    source.add(1, 2, 3, 4, 5, 6, 7, 8)
    source.hidden.add(5)
    a = recording_plugin("a")
    b = FakePlugin("b")
    outages = {3}

    def callback(sg: Any, logger: Any, event: Any, args: Any) -> None:
        if event["id"] in outages:
            outages.discard(event["id"])
            raise ConnectionResetError("reset by the site")
        b.received.append(event["id"])

    b.callbacks.append(FakeCallback("callback", callback))
    store = FakeStore({a.key: Cursor(0), b.key: Cursor(0)})
    answers = threading.Event()
    outage = Outage(lambda: answers.wait(10), first_wait=0.01)
    dispatcher = Dispatcher(connections=FakeConnections(), use_session_uuid=False, outage=outage)
    engine, store, clock = build(source, [a, b], store, dispatcher=dispatcher)
    engine.drain_timeout = 0.2  # b's own thread (parallel mode) waits for the site meanwhile
    engine.run_once()
    wait_for(lambda: len(a.received) == 7)
    assert a.received == [1, 2, 3, 4, 6, 7, 8]
    # When 5 commits and the backlog poll hands it out while b is still held at 2
    source.hidden.clear()
    clock.advance(6)
    engine._backlog.poll(list(engine._plugins.by_key.values()), engine._delivery)
    wait_for(lambda: len(a.received) == 8)
    # Then 5 went to a only: b did not jump over 3 and 4 as if they were gaps
    assert a.received == [1, 2, 3, 4, 6, 7, 8, 5]
    assert b.received == [1, 2]
    assert store.positions[b.key].backlog == {}
    # And once the site answers, b reads again from 3 and gets every event once, in order
    answers.set()
    for _ in range(20):
        engine.run_once()
        clock.advance(1)
        if b.received[-1:] == [8]:
            break
    assert b.received == [1, 2, 3, 4, 5, 6, 7, 8]


def test_backlog_is_requeried_by_id_only_when_due() -> None:
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("a")
    engine, _, clock = build(source, [plugin])
    source.add(2, 3)
    source.hidden.add(2)
    engine.run_once()  # sees the gap; the first poll is due at once
    calls_after_first = [c for c in source.calls if c[0] == "ids"]
    engine.run_once()
    engine.run_once()
    # Then no further id reads happen before the poll interval has passed
    assert [c for c in source.calls if c[0] == "ids"] == calls_after_first
    clock.advance(5)
    engine.run_once()
    assert [c for c in source.calls if c[0] == "ids"][-1] == ("ids", (2,))


def test_id_that_never_commits_is_dropped_after_the_timeout() -> None:
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("a")
    engine, store, clock = build(source, [plugin])
    source.add(2, 3)
    source.hidden.add(2)
    engine.run_once()
    assert 2 in store.positions[plugin.key].backlog
    # When the backlog timeout passes without the id appearing
    clock.advance(301)
    engine.run_once()
    # Then it is dropped and nothing more is asked for it
    assert store.positions[plugin.key].backlog == {}
    source.calls.clear()
    clock.advance(10)
    engine.run_once()
    assert not [c for c in source.calls if c[0] == "ids"]


def test_stop_on_error_disables_only_that_plugin_and_keeps_its_position() -> None:
    # Given a plugin that fails on event 3 and a healthy one
    source = FakeSource()
    source.add(1)
    bad = recording_plugin("bad", fail_on={3})
    good = recording_plugin("good")
    engine, store, _ = build(source, [bad, good])
    source.add(2, 3, 4)
    # When the engine runs
    engine.run_once()
    # Then bad stops before 3 and stays there, good gets everything
    assert bad.received == [2]
    assert not bad.active
    assert "boom on 3" in (bad.reason or "")
    assert good.received == [2, 3, 4]
    assert store.positions[bad.key].last_id == 2
    assert store.sections["plugins"]["/plugins::bad"]["active"] is False  # type: ignore[index]


def test_reactivated_plugin_resumes_from_the_failed_event() -> None:
    source = FakeSource()
    source.add(1)
    bad = recording_plugin("bad", fail_on={3})
    good = recording_plugin("good")
    engine, _, _ = build(source, [bad, good])
    source.add(2, 3, 4)
    engine.run_once()
    # When the plugin is fixed and comes back (as the loader does: callbacks, then active)
    fixed = recording_plugin("tmp")
    bad.callbacks = [fixed.callbacks[0]]
    bad.active, bad.reason = True, None
    engine.run_once()
    # Then it gets 3 and 4, and the healthy plugin gets nothing twice
    assert fixed.received == [3, 4]
    assert good.received == [2, 3, 4]


def test_stop_on_error_false_counts_the_event_as_processed() -> None:
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("a", fail_on={2}, stop_on_error=False)
    engine, store, _ = build(source, [plugin])
    source.add(2, 3)
    engine.run_once()
    assert plugin.active
    assert plugin.received == [3]
    assert store.positions[plugin.key].last_id == 3


def test_unmatched_events_are_persisted_once_per_batch() -> None:
    # Given a plugin that matches only one event type
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("a", matches=lambda e: e["event_type"] == "Shotgun_Task_Change")
    engine, store, _ = build(source, [plugin])
    source.add(*range(2, 102))
    source.add(102, event_type="Shotgun_Task_Change")
    source.add(103)
    # When a batch of 102 events goes through
    store.records = 0
    engine.run_once()
    # Then one record for the delivered event and one at the end of the batch
    assert plugin.received == [102]
    assert store.records == 2
    assert store.positions[plugin.key].last_id == 103


def test_site_errors_are_retried() -> None:
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("a")
    engine, _, _ = build(source, [plugin])
    source.add(2)
    source.fail_next = 2
    engine.run_once()
    assert plugin.received == [2]


def test_full_disk_stops_delivery_until_state_can_be_written() -> None:
    # Given a running engine
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("a")
    engine, store, _ = build(source, [plugin])
    # A worker retrying its state write is not idle: do not wait long for it.
    engine.drain_timeout = 0.5  # type: ignore[attr-defined]
    source.add(2, 3)
    # When the disk is full
    store.full = True
    engine.run_once()
    # Then the first event is delivered but nothing after it
    assert plugin.received == [2]
    engine.run_once()
    assert plugin.received == [2]
    # When space returns, the position is written and delivery resumes without repeats
    store.full = False
    engine.run_once()
    engine.run_once()
    assert plugin.received == [2, 3]
    assert store.positions[plugin.key].last_id == 3


def test_gap_wider_than_a_batch_makes_progress() -> None:
    # Given a gap followed by more than one batch of events
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("a")
    engine, store, _ = build(source, [plugin], batch_size=10)
    source.add(*range(3, 40))
    source.hidden.add(2)
    # When the engine runs until idle
    rounds = 0
    while engine.run_once():
        rounds += 1
    # Then it moved through all events in few reads, and waits for 2 only by id
    assert plugin.received == list(range(3, 40))
    assert rounds <= 4
    assert list(store.positions[plugin.key].backlog) == [2]


def test_session_uuid_is_set_before_each_callback() -> None:
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("a")
    connections = FakeConnections()
    stop = threading.Event()
    engine = Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: False),
        loader=FakeLoader([plugin]),
        store=FakeStore(),
        dispatcher=Dispatcher(connections=connections, use_session_uuid=True),
        settings=Settings(),
        stop=stop,
        clock=Clock(),
    )
    engine.start()
    source.add(2, session_uuid="abc")
    source.add(3)
    engine.run_once()
    assert connections.sg.session_uuids == ["abc", None]


@pytest.mark.parametrize("attempt,expected", [(1, 1.0), (2, 2.0), (3, 4.0), (5, 60.0)])
def test_retry_backs_off_then_sleeps_a_burst(attempt: int, expected: float) -> None:
    retry = SiteRetry(max_attempts=5, burst_sleep=60, wait=lambda s: False)
    assert retry.delay_after(attempt) == expected


def test_retry_waits_and_stops_when_asked() -> None:
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) >= 7

    source = FakeSource()
    source.fail_next = 100
    retry = SiteRetry(max_attempts=3, burst_sleep=30, wait=wait)
    assert retry.call("x", source.newest_id) is None
    assert waits == [1.0, 2.0, 30, 1.0, 2.0, 30, 1.0]


def test_events_created_in_the_past_do_not_wait_for_gaps() -> None:
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("a")
    engine, store, _ = build(source, [plugin])
    source.add(3, created_at=T0 - timedelta(hours=2))
    source.hidden.add(2)
    engine.run_once()
    assert store.positions[plugin.key].backlog == {}


def test_legacy_single_id_applies_to_plugins_present_at_first_start_only() -> None:
    # Given the original's oldest state: one last id for every plugin
    from shotgun_events.state.legacy import ANY_PLUGIN

    source = FakeSource()
    source.add(*range(1, 11))
    plugin = recording_plugin("a")
    store = FakeStore({ANY_PLUGIN: Cursor(6)})
    engine, store, _ = build(source, [plugin], store)
    engine.run_once()
    # Then the plugin resumed after 6, and the shared id is gone from the state
    assert plugin.received == [7, 8, 9, 10]
    assert ANY_PLUGIN not in store.positions
    assert store.positions[plugin.key].last_id == 10


def test_saved_position_matches_folder_written_differently() -> None:
    source = FakeSource()
    source.add(*range(1, 6))
    plugin = recording_plugin("a")
    store = FakeStore({("/plugins/", "a"): Cursor(3)})
    engine, _, _ = build(source, [plugin], store)
    engine.run_once()
    assert plugin.received == [4, 5]


def test_new_plugin_start_position_is_saved_at_once() -> None:
    source = FakeSource()
    source.add(1, 2, 3)
    plugin = recording_plugin("a")
    _, store, _ = build(source, [plugin])
    assert store.positions[plugin.key].last_id == 3


def test_prefilter_reads_only_wanted_types_and_settles_other_ids_without_waiting() -> None:
    # Given a plugin that only wants task changes, with the prefilter on
    from shotgun_events.plugins.matching import compile_match

    wanted = {"Shotgun_Task_Change": None}
    source = FakeSource()
    source.add(1)
    plugin = recording_plugin("tasks", matches=compile_match(wanted), match_events=wanted)
    engine, store, clock = build(source, [plugin], prefilter=True)
    # When shot and task events interleave, one task event committing late
    source.add(2, 4, event_type="Shotgun_Shot_Change")
    source.add(3, 5, 6, event_type="Shotgun_Task_Change")
    source.hidden.add(5)
    engine.run_once()
    # Then only task events were read and delivered; shot ids 2 and 4 look missing
    assert plugin.received == [3, 6]
    assert set(store.positions[plugin.key].backlog) == {2, 4, 5}
    # When the backlog poll comes (by id, without the type filter)
    source.hidden.clear()
    clock.advance(6)
    engine.run_once()
    # Then 2 and 4 are settled as not wanted, 5 arrives late, nothing waits any more
    assert plugin.received == [3, 6, 5]
    assert store.positions[plugin.key].backlog == {}


def test_prefilter_is_off_when_a_callback_wants_everything() -> None:
    source = FakeSource()
    source.add(1)
    everything = recording_plugin("all")
    engine, _, _ = build(source, [everything], prefilter=True)
    assert engine.event_type_filter() is None


def test_a_blocked_plugin_does_not_hold_up_the_others_and_catches_up_alone() -> None:
    # Given three plugins, one of which blocks inside its callback (parallel mode)
    if DISPATCH != "parallel":
        pytest.skip("isolation between plugins is what parallel dispatch is for")
    release = threading.Event()
    source = FakeSource()
    source.add(1)
    fast = [recording_plugin("fast1"), recording_plugin("fast2")]
    slow = recording_plugin("slow")
    inner = slow.callbacks[0].func
    slow.callbacks[0].func = lambda *a: (release.wait(10), inner(*a))
    stop = threading.Event()
    clock = Clock()
    engine = Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: stop.is_set()),
        loader=FakeLoader([*fast, slow]),
        store=FakeStore(),
        dispatcher=Dispatcher(connections=FakeConnections(), use_session_uuid=False),
        settings=Settings(batch_size=5, dispatch="parallel"),
        stop=stop,
        clock=clock,
        monotonic=clock.monotonic,
    )
    ENGINES.append(engine)
    engine.start()
    source.add(*range(2, 42))
    # When the engine runs while the slow plugin is stuck on its first event
    for _ in range(40):
        if all(p.received[-1:] == [41] for p in fast):
            break
        engine.run_once()
        engine.drain(0.2)
    # Then the fast plugins got every event, in order, and the slow one nothing yet
    assert all(p.received == list(range(2, 42)) for p in fast)
    assert slow.received == []
    # When it is released, it catches up by itself, in order, each event once
    release.set()
    for _ in range(100):
        if slow.received[-1:] == [41]:
            break
        engine.run_once()
        engine.drain(0.2)
    assert slow.received == list(range(2, 42))


def test_auto_gives_a_slow_plugin_its_own_thread_and_takes_it_back_once_caught_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given auto dispatch, two quick plugins and one that takes 30 ms per event
    if DISPATCH != "auto":
        pytest.skip("promotion is what auto dispatch does")
    source = FakeSource()
    source.add(1)
    fast = [recording_plugin("fast1"), recording_plugin("fast2")]
    slow = recording_plugin("slow")
    inner = slow.callbacks[0].func
    delay = [0.03]
    slow.callbacks[0].func = lambda *a: (threading.Event().wait(delay[0]), inner(*a))
    engine = real_time_engine(source, [*fast, slow], batch_size=10, dispatch="auto")
    delivery = engine.delivery
    assert delivery.policy is fanout.Promotion.WHEN_SLOW
    source.add(*range(2, 62))
    # When the engine reads the first batch
    engine.run_once()
    # Then the slow plugin was moved to a thread of its own part-way, the quick ones
    # got the whole batch, and the slow one had only its first few events in the group
    assert [r.plugin.name for r in delivery.on_own_threads()] == ["slow"]
    assert all(p.received == list(range(2, 12)) for p in fast)
    # When the engine goes on and the slow plugin is given time to catch up
    for _ in range(200):
        if all(p.received[-1:] == [61] for p in [*fast, slow]) and engine.drain(0.1):
            break
        engine.run_once()
        engine.drain(0.1)
    # Then every plugin got every event once, in id order
    for plugin in [*fast, slow]:
        assert plugin.received == list(range(2, 62)), plugin.name
    # And once caught up, idle and quick again, it shares the engine's thread again
    monkeypatch.setattr(fanout, "REJOIN_AFTER", 0.0)
    delay[0] = 0.0
    source.add(62)
    engine.run_once()
    assert delivery.on_own_threads() == []
    source.add(63)
    engine.run_once()
    assert all(p.received[-2:] == [62, 63] for p in [*fast, slow])


def test_auto_hands_a_promoted_plugin_the_rest_of_the_batch_so_it_never_reads_alone() -> None:
    # Given auto dispatch and a plugin slow on one event only (one long site call, say)
    if DISPATCH != "auto":
        pytest.skip("promotion is what auto dispatch does")
    source = FakeSource()
    source.add(1)
    quick = recording_plugin("quick")
    moody = recording_plugin("moody")
    inner = moody.callbacks[0].func
    moody.callbacks[0].func = lambda sg, lg, ev, a: (
        threading.Event().wait(0.06 if ev["id"] == 5 else 0),
        inner(sg, lg, ev, a),
    )
    engine = real_time_engine(source, [quick, moody], batch_size=10)
    source.add(*range(2, 42))
    # When the engine reads its batches (the plugin leaves the lane on event 5)
    for _ in range(10):
        engine.run_once()
    assert engine.drain(10)
    # Then it got its own thread with the rest of that batch, and followed the engine's
    # reads from there: every read of the site was the engine's own, none from behind
    assert [r.plugin.name for r in engine.delivery.on_own_threads()] == ["moody"]
    assert moody.received == quick.received == list(range(2, 42))
    reads = [position for kind, position in source.calls if kind == "after"]
    assert reads == sorted(reads) and 5 not in reads, reads


def test_a_callback_returning_while_its_plugin_is_taken_off_still_gets_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given auto dispatch and a plugin whose call on event 5 runs long enough to be taken
    # off the lane, and returns in the very moment it is taken off (before its thread is made)
    if DISPATCH != "auto":
        pytest.skip("taking a plugin off the lane is what auto dispatch does")
    source = FakeSource()
    source.add(1)
    quick = recording_plugin("quick")
    sticky = recording_plugin("sticky")
    inner = sticky.callbacks[0].func
    release, returned = threading.Event(), threading.Event()

    def call(sg: object, lg: object, ev: dict[str, int], a: object) -> None:
        if ev["id"] == 5 and not returned.is_set():
            release.wait(5)
            returned.set()
        inner(sg, lg, ev, a)

    sticky.callbacks[0].func = call
    promote = fanout.Fanout._promote

    def racing(self: fanout.Fanout, runner: object, held: float, **kw: object) -> None:
        if kw.get("start") is False:  # taken off in the middle of its callback
            release.set()
            returned.wait(5)
            threading.Event().wait(0.1)  # the left lane is past the callback by now
        promote(self, runner, held, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fanout.Fanout, "_promote", racing)
    engine = real_time_engine(source, [quick, sticky], batch_size=10)
    source.add(*range(2, 32))
    # When the engine reads its batches
    for _ in range(50):
        engine.run_once()
        engine.drain(0.1)
        if sticky.received[-1:] == [31]:
            break
    # Then the plugin was taken off, and its thread started once the callback returned:
    # it got every event once, in order, as the quick one did
    assert returned.is_set()
    assert [r.plugin.name for r in engine.delivery.on_own_threads()] == ["sticky"]
    assert sticky.received == quick.received == list(range(2, 32))
