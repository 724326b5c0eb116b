"""Ordering keys, the keyed executor and a concurrent plugin's runner (watermark, restart)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shotgun_events.cursor import Cursor
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.executors import INLINE, POOL, Executors, ExecutorSpec, choose
from shotgun_events.delivery.keys import NO_VALUE, key_function
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.events import Event
from tests.unit.fakes import FakeCallback, FakeConnections, FakePlugin, FakeStore, make_event

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def _shot(event_id: int, shot: int) -> Event:
    return make_event(
        event_id, entity={"type": "Shot", "id": shot}, project={"type": "Project", "id": 1}
    )


def test_entity_key_is_type_and_id() -> None:
    # Given the default key
    key = key_function("entity")
    # Then events on the same shot share a key, another shot or type does not
    assert key(_shot(1, 7)) == key(_shot(2, 7)) == ("Shot", 7)
    assert key(_shot(3, 8)) != key(_shot(1, 7))
    assert key(make_event(4, entity=None)) == NO_VALUE


def test_project_none_and_dotted_keys() -> None:
    # Given events with a project and a meta field
    event = make_event(5, project={"type": "Project", "id": 3}, meta={"entity_id": 42})
    # Then each key reads its part, none gives each event its own key
    assert key_function("project")(event) == ("Project", 3)
    assert key_function("meta.entity_id")(event) == 42
    assert key_function("meta.missing.deeper")(event) == NO_VALUE
    assert key_function("none")(event) != key_function("none")(make_event(6))


def test_malformed_order_by_is_refused() -> None:
    with pytest.raises(ValueError, match="order_by"):
        key_function("meta..x")


class _Recorder:
    """A callback that records (shot, id) in start order and can be held on one shot."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.order: list[tuple[int, int]] = []
        self.running = 0
        self.peak = 0
        self.hold: dict[int, threading.Event] = {}
        self.overlap = threading.Barrier(2, timeout=10)

    def __call__(self, sg: Any, logger: Any, event: Event, args: Any) -> None:
        shot = event["entity"]["id"]
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        gate = self.hold.get(shot)
        if gate is not None:
            assert gate.wait(10)
        with self.lock:
            self.order.append((shot, event["id"]))
            self.running -= 1


def _runner(
    plugin: FakePlugin, store: FakeStore, cursor: Cursor, concurrency: int = 4
) -> PluginRunner:
    dispatcher = Dispatcher(connections=FakeConnections(), use_session_uuid=False)
    return PluginRunner(
        plugin,
        cursor,
        dispatcher=dispatcher,
        executors=Executors(dispatcher),
        recorder=store,
        backlog_timeout=timedelta(minutes=5),
        spec_for=lambda p: ExecutorSpec(POOL, concurrency=concurrency, order_by="entity"),
    )


def _choosing_runner(plugin: FakePlugin, store: FakeStore) -> PluginRunner:
    """A runner at event 0 whose executor follows what the plugin asks for (as on reload)."""
    dispatcher = Dispatcher(connections=FakeConnections(), use_session_uuid=False)
    return PluginRunner(
        plugin,
        Cursor(0),
        dispatcher=dispatcher,
        executors=Executors(dispatcher),
        recorder=store,
        backlog_timeout=timedelta(minutes=5),
        spec_for=lambda p: choose(p, {}),  # type: ignore[arg-type]
    )


def _plugin(callback: _Recorder, *, stop_on_error: bool = True) -> FakePlugin:
    plugin = FakePlugin("fast")
    plugin.callbacks.append(FakeCallback("cb", callback, stop_on_error=stop_on_error))
    return plugin


def test_a_held_key_blocks_only_itself_and_the_watermark_waits_for_it() -> None:
    # Given a concurrent plugin whose callback is held on shot 1
    callback = _Recorder()
    gate = callback.hold[1] = threading.Event()
    store = FakeStore()
    runner = _runner(_plugin(callback), store, Cursor(0))
    events = [_shot(i, 1 if i in (1, 4) else 2 + i % 3) for i in range(1, 13)]
    # When twelve events are handed out over four shots
    for event in events:
        runner.handle(event, NOW)
    # Then every other shot's events finish while shot 1 waits
    deadline = threading.Event()
    for _ in range(200):
        if len(callback.order) == 10:
            break
        deadline.wait(0.02)
    assert sorted(i for _, i in callback.order) == [2, 3, 5, 6, 7, 8, 9, 10, 11, 12]
    # And the saved watermark stays before the held event, done ids above it
    saved = store.positions[runner.key]
    assert saved.last_id == 0 and saved.done == {2, 3, 5, 6, 7, 8, 9, 10, 11, 12}
    assert runner.progress()["in_flight"] == 2
    # When the shot is released
    gate.set()
    assert runner.drain(10)
    runner.close(10)
    # Then shot 1 ran in id order and the watermark reached the end
    assert [i for shot, i in callback.order if shot == 1] == [1, 4]
    assert (store.positions[runner.key].last_id, store.positions[runner.key].done) == (12, set())
    for shot in (2, 3, 4):
        ids = [i for s, i in callback.order if s == shot]
        assert ids == sorted(ids)


def test_restart_from_the_saved_watermark_reruns_only_unfinished_events() -> None:
    # Given a concurrent plugin stopped while shot 1's event 1 was still running
    callback = _Recorder()
    callback.hold[1] = threading.Event()
    store = FakeStore()
    runner = _runner(_plugin(callback), store, Cursor(0))
    for event_id in range(1, 9):
        runner.handle(_shot(event_id, 1 if event_id == 1 else event_id), NOW)
    for _ in range(200):
        if len(callback.order) == 7:
            break
        threading.Event().wait(0.02)
    saved = store.positions[runner.key].copy()  # what a kill -9 leaves on disk
    callback.hold[1].set()
    assert runner.drain(10)
    runner.close(10)
    # When a new runner starts from that state and reads 1..8 again
    again = _Recorder()
    second = _runner(_plugin(again), FakeStore(), saved)
    for event_id in range(1, 9):
        second.handle(_shot(event_id, 1 if event_id == 1 else event_id), NOW)
    assert second.drain(10)
    second.close(10)
    # Then only event 1 (in flight at the kill) runs again
    assert [i for _, i in again.order] == [1]


def test_concurrency_really_overlaps_and_stop_on_error_switches_the_plugin_off() -> None:
    # Given a plugin whose callback fails on event 3 with stopOnError
    seen: list[int] = []
    lock = threading.Lock()

    def callback(sg: Any, logger: Any, event: Event, args: Any) -> None:
        if event["id"] == 3:
            raise RuntimeError("boom")
        with lock:
            seen.append(event["id"])

    plugin = FakePlugin("fast")
    plugin.callbacks.append(FakeCallback("cb", callback))
    store = FakeStore()
    runner = _runner(plugin, store, Cursor(0))
    for event_id in (1, 2, 3):
        runner.handle(_shot(event_id, event_id), NOW)
    for _ in range(200):
        if not plugin.active and not runner.progress()["in_flight"]:
            break
        threading.Event().wait(0.02)
    # When the next event arrives
    outcome = runner.handle(_shot(4, 4), NOW)
    # Then the failure is reported once, the cursor reads again from before event 3
    assert outcome is not None and outcome.value == "failed"
    assert not plugin.active
    assert runner.cursor.last_id == 2
    assert store.positions[runner.key].last_id == 2
    runner.close(5)


def test_two_keys_run_at_the_same_time() -> None:
    # Given a callback that only returns once two events are inside it together
    barrier = threading.Barrier(2, timeout=10)

    def callback(sg: Any, logger: Any, event: Event, args: Any) -> None:
        barrier.wait()

    plugin = FakePlugin("fast")
    plugin.callbacks.append(FakeCallback("cb", callback))
    store = FakeStore()
    runner = _runner(plugin, store, Cursor(0), concurrency=2)
    # When two events of different shots are handed out
    runner.handle(_shot(1, 1), NOW)
    runner.handle(_shot(2, 2), NOW)
    assert runner.drain(15)
    runner.close(15)
    # Then both finished (the barrier would have broken without overlap)
    assert not barrier.broken
    assert store.positions[runner.key].last_id == 2


def test_a_reload_lets_old_code_events_finish_before_new_code_starts() -> None:
    # Given a keyed pool with an event of shot 1 running (held) on generation 0
    callback = _Recorder()
    gate = callback.hold[1] = threading.Event()
    plugin = _plugin(callback)
    plugin.generation = 0  # type: ignore[attr-defined]
    store = FakeStore()
    runner = _runner(plugin, store, Cursor(0))
    runner.handle(_shot(1, 1), NOW)
    for _ in range(200):
        if runner._dispatcher.in_flight.running():
            break
        threading.Event().wait(0.01)
    # When the plugin is reloaded (same concurrency) and an event of another shot arrives
    plugin.generation = 1  # type: ignore[attr-defined]
    runner.handle(_shot(2, 2), NOW)
    threading.Event().wait(0.2)
    # Then the new event waits for the old-code one
    assert callback.order == []
    gate.set()
    assert runner.drain(10)
    assert [i for _, i in callback.order] == [1, 2]
    runner.close(5)


def test_a_reload_that_changes_concurrency_swaps_the_executor_once_idle() -> None:
    # Given a plugin at concurrency 4 that has handled events 1..3
    callback = _Recorder()
    plugin = _plugin(callback)
    plugin.generation = 0  # type: ignore[attr-defined]
    plugin.concurrency = 4  # type: ignore[attr-defined]
    store = FakeStore()
    runner = _choosing_runner(plugin, store)
    for event_id in (1, 2, 3):
        runner.handle(_shot(event_id, event_id), NOW)
    assert runner.spec.kind == POOL
    # When the reloaded plugin asks for strict order
    plugin.concurrency = 1  # type: ignore[attr-defined]
    plugin.generation = 1  # type: ignore[attr-defined]
    runner.handle(_shot(4, 4), NOW)
    # Then the events in flight finished first, and it goes on in strict order
    assert runner.spec.kind == INLINE
    assert sorted(i for _, i in callback.order) == [1, 2, 3, 4]
    assert store.positions[runner.key].last_id == 4
    runner.close(5)


def test_a_late_delivery_is_taken_only_by_a_plugin_that_waits_for_that_event() -> None:
    # Given a plugin at event 2 (rewound, or behind the read) and one waiting for event 5
    behind_cb, waiting_cb = _Recorder(), _Recorder()
    store = FakeStore()
    behind = _runner(_plugin(behind_cb), store, Cursor(2))
    waiting = _runner(_plugin(waiting_cb), store, Cursor(6, {5: NOW}))
    # When event 5, read by id for the backlog, is handed to both as a late event
    assert behind.handle(_shot(5, 1), NOW, late=True) is None
    assert waiting.handle(_shot(5, 1), NOW, late=True) is not None
    assert behind.drain(10) and waiting.drain(10)
    # Then only the waiting plugin ran it; the other's position did not pass over 3 and 4
    assert [i for _, i in waiting_cb.order] == [5]
    assert behind_cb.order == []
    assert (behind.cursor.last_id, dict(behind.cursor.backlog)) == (2, {})
    # And read in order afterwards, the other plugin gets 3, 4, 5 once each
    for event_id in (3, 4, 5):
        behind.handle(_shot(event_id, 1), NOW)
    assert behind.drain(10)
    assert [i for _, i in behind_cb.order] == [3, 4, 5]
    behind.close(5)
    waiting.close(5)


def test_a_reload_after_a_failure_reads_again_from_the_failed_event_not_past_it() -> None:
    # Given a concurrent plugin whose event 2 failed (switching it off) after 1..3 were handed
    # out, with no event since
    ran: list[int] = []

    def callback(sg: Any, logger: Any, event: Event, args: Any) -> None:
        if event["id"] == 2 and not ran.count(2):
            ran.append(2)
            raise RuntimeError("boom on 2")
        ran.append(int(event["id"]))

    plugin = FakePlugin("fixed")
    plugin.callbacks.append(FakeCallback("cb", callback))
    plugin.concurrency = 4
    store = FakeStore()
    runner = _choosing_runner(plugin, store)
    for event_id in (1, 2, 3):
        runner.handle(_shot(event_id, event_id), NOW)
    assert runner.drain(10)
    assert not plugin.active
    # When the fixed plugin is reloaded, asking for another concurrency, and event 10 comes
    plugin.concurrency = 2
    plugin.generation = 1
    plugin.active = True
    assert runner.handle(_shot(10, 1), NOW) is None
    # Then event 10 is not taken: the plugin reads again from 2, with no ids passed over
    assert (runner.cursor.last_id, dict(runner.cursor.backlog)) == (1, {})
    assert store.positions[runner.key].last_id == 1
    runner.close(5)
