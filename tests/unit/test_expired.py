"""Positions the site's log no longer reaches: reported once, counted, never waited for."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest

from shotgun_events.client.retry import SiteRetry
from shotgun_events.cursor import Cursor
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.settings import Settings
from tests.unit.fakes import (
    DISPATCH_MODES,
    Clock,
    FakeConnections,
    FakeLoader,
    FakeSource,
    FakeStore,
    recording_plugin,
)


def engine_for(source: FakeSource, store: FakeStore, dispatch: str, *names: str) -> Engine:
    clock = Clock()
    return Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: False),
        loader=FakeLoader([recording_plugin(name) for name in names]),
        store=store,
        dispatcher=Dispatcher(connections=FakeConnections(), use_session_uuid=False),
        settings=Settings(dispatch=dispatch, batch_size=10, backlog_timeout=timedelta(hours=1)),
        stop=threading.Event(),
        clock=clock,
        monotonic=clock.monotonic,
    )


@pytest.mark.parametrize("dispatch", DISPATCH_MODES)
def test_a_saved_position_older_than_the_site_keeps_is_reported_once_and_skipped(
    dispatch: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given two plugins saved at event 100, and a site that now keeps events from 1,000 on
    source = FakeSource()
    source.add(*range(1000, 1021))
    store = FakeStore({("/plugins", name): Cursor(100) for name in ("a", "b")})
    engine = engine_for(source, store, dispatch, "a", "b")
    caplog.set_level(logging.INFO)
    # When the daemon starts and reads on
    assert engine.start()
    for _ in range(4):
        engine.run_once()
    assert engine.drain(5)
    # Then each plugin said once, as one ERROR, which events it lost, and went on from there
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sorted(errors) == [
        f"events 101..999 of plugin {name} are no longer in the site's event log; they cannot "
        "be delivered (the site keeps events from 1000 on); going on from there"
        for name in ("a", "b")
    ]
    for runner in engine.runners:
        assert runner.expired == 899
        assert runner.plugin.received == list(range(1000, 1021))  # type: ignore[attr-defined]
        assert runner.awaited() == set()  # nothing below 1,000 waited for
    engine.close()


def test_a_jump_of_a_few_ids_is_a_gap_not_an_expiry(caplog: pytest.LogCaptureFixture) -> None:
    # Given a plugin at 100 and a site whose next events start at 105 (ids 101-104 missing)
    source = FakeSource()
    source.add(1, *range(105, 110))
    store = FakeStore({("/plugins", "a"): Cursor(100)})
    engine = engine_for(source, store, "auto", "a")
    assert engine.start()
    engine.run_once()
    assert engine.drain(5)
    # Then those are gaps waited for as always, nothing reported as expired
    [runner] = engine.runners
    assert runner.expired == 0 and runner.awaited() == {101, 102, 103, 104}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    engine.close()


def test_a_plugin_far_behind_finds_out_when_its_read_jumps(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a running engine with a plugin at 5, and a site that then drops its old events
    source = FakeSource()
    source.add(*range(1, 6))
    engine = engine_for(source, FakeStore(), "serial", "a")
    assert engine.start()
    source.add(*range(6, 200))
    for event_id in range(1, 150):
        source.events.pop(event_id, None)
    # When it reads on: the read jumps from 5 to 150
    engine.run_once()
    assert engine.drain(5)
    # Then the engine asked for the oldest event, reported the range, and went on
    [runner] = engine.runners
    assert ("oldest", None) in source.calls
    assert runner.expired == 144
    assert any("events 6..149 of plugin a" in r.getMessage() for r in caplog.records)
    engine.close()
