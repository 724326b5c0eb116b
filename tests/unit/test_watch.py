"""The callback time limit: a stuck callback's stack is logged once per stuck event."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from shotgun_events.client.retry import SiteRetry
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.inflight import CallbackWatch, InFlight
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.settings import Settings
from tests.unit.fakes import DISPATCH_MODES

from .fakes import Clock, FakeConnections, FakeLoader, FakeSource, FakeStore, recording_plugin


def test_reports_once_per_stuck_event_and_again_for_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a callback of plugin "slow" running in this thread, and a 10 s limit
    clock = Clock()
    registry = InFlight(clock.monotonic)
    watch = CallbackWatch(registry, 10)
    plugin = recording_plugin("slow")
    key = registry.start(plugin, 1)  # type: ignore[arg-type]
    clock.advance(5)
    assert watch.check() == []
    # When it runs past the limit, it is reported once, with this thread's stack
    clock.advance(6)
    assert watch.check() == ["slow"]
    clock.advance(19)
    assert watch.check() == []
    assert "test_reports_once_per_stuck_event" in caplog.text  # the stack names this frame
    # And the next event starts counting from zero and can be reported again
    registry.end(key)
    registry.start(plugin, 2)  # type: ignore[arg-type]
    clock.advance(1)
    assert watch.check() == []
    clock.advance(11)
    assert watch.check() == ["slow"]


def test_no_limit_reports_nothing() -> None:
    registry = InFlight()
    registry.start(recording_plugin("x"), 1)  # type: ignore[arg-type]
    assert CallbackWatch(registry, 0).check() == []


def test_a_celery_task_has_no_stack_and_is_left_to_the_executor() -> None:
    clock = Clock()
    registry = InFlight(clock.monotonic)
    registry.start(recording_plugin("remote"), 1, task=("celery", "remote", 1))  # type: ignore[arg-type]
    clock.advance(100)
    assert CallbackWatch(registry, 10).check() == []


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
