"""The callback time limit: a stuck callback's stack is logged once per stuck event."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from shotgun_events.client.retry import SiteRetry
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.watch import CallbackWatch
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.settings import Settings
from tests.unit.fakes import DISPATCH_MODES

from .fakes import Clock, FakeConnections, FakeLoader, FakeSource, FakeStore, recording_plugin


class FakeRunner:
    def __init__(self, name: str) -> None:
        self.plugin = recording_plugin(name)


def test_reports_once_per_stuck_event_and_again_for_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = CallbackWatch(10)
    runner = FakeRunner("slow")
    ident = threading.get_ident()
    assert watch.check([(runner, 5.0, ident)]) == []  # type: ignore[list-item]
    assert watch.check([(runner, 11.0, ident)]) == ["slow"]  # type: ignore[list-item]
    assert watch.check([(runner, 30.0, ident)]) == []  # type: ignore[list-item]
    # A new event starts counting from zero
    assert watch.check([(runner, 1.0, ident)]) == []  # type: ignore[list-item]
    assert watch.check([(runner, 12.0, ident)]) == ["slow"]  # type: ignore[list-item]
    assert "test_reports_once_per_stuck_event" in caplog.text  # the stack names this frame


def test_no_limit_reports_nothing() -> None:
    assert CallbackWatch(0).check([(FakeRunner("x"), 1e6, None)]) == []  # type: ignore[list-item]


@pytest.mark.parametrize("dispatch", DISPATCH_MODES)
def test_a_callback_stuck_in_the_engine_is_reported_from_the_watch_thread(
    dispatch: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a plugin whose callback blocks, and a 1 s callback_timeout
    release = threading.Event()
    reported = threading.Event()

    class Flag(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "has been handling one event" in record.getMessage():
                reported.set()

    flag = Flag()
    logging.getLogger("engine.watch").addHandler(flag)
    source = FakeSource()
    source.add(1)
    stuck = recording_plugin("stuck")
    inner = stuck.callbacks[0].func
    stuck.callbacks[0].func = lambda *a: (release.wait(30), inner(*a))
    stop = threading.Event()
    engine = Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: stop.is_set()),
        loader=FakeLoader([stuck]),
        store=FakeStore(),
        dispatcher=Dispatcher(connections=FakeConnections(), use_session_uuid=False),
        settings=Settings(dispatch=dispatch, callback_timeout=1, fetch_interval=0.05),
        stop=stop,
        clock=Clock(),
    )
    assert engine.start()
    source.add(2)
    runner: Any = threading.Thread(target=engine.run, daemon=True)
    try:
        runner.start()
        # When the callback stays stuck past the limit
        assert reported.wait(15), "no stack was logged for the stuck callback"
    finally:
        release.set()
        stop.set()
        runner.join(15)
        logging.getLogger("engine.watch").removeHandler(flag)
    # Then the log names the plugin and shows where it waits
    assert "stuck" in caplog.text and "release.wait" in caplog.text
    assert stuck.received == [2]
