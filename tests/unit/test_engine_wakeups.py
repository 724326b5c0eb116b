"""The engine between reads: wake-ups for new events read soon, for passed events not at all."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from shotgun_events.client.retry import SiteRetry
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.settings import Settings
from shotgun_events.engine.wakeup import WakeUps

from .fakes import FakeConnections, FakeLoader, FakeSource, FakeStore, recording_plugin


def build(source: FakeSource, wake: WakeUps) -> tuple[Engine, threading.Event]:
    stop = threading.Event()
    engine = Engine(
        source=source,
        retry=SiteRetry(max_attempts=3, burst_sleep=0, wait=lambda s: stop.is_set()),
        loader=FakeLoader([recording_plugin("a")]),
        store=FakeStore(),
        dispatcher=Dispatcher(connections=FakeConnections(), use_session_uuid=True),
        # Polls 60 s apart: any read within the test is one a wake-up asked for.
        settings=Settings(
            fetch_interval=60.0,
            active_fetch_interval=60.0,
            backlog_timeout=timedelta(seconds=300),
            dispatch="serial",
        ),
        stop=stop,
        wake=wake,
    )
    assert engine.start()
    return engine, stop


def idle_wait_outcome(engine: Engine, stop: threading.Event) -> str:
    """'read' when the wait ended because a read is due, 'stopped' when the stop came first."""
    timer = threading.Timer(2.0, stop.set)  # a bound, not a timing: no wake-up, no read
    timer.start()
    try:
        return "stopped" if engine._idle_wait() else "read"
    finally:
        timer.cancel()


def test_a_wakeup_for_a_new_event_makes_the_next_read_due() -> None:
    # Given a caught-up engine polling every 60 s, with a wake-up mailbox
    source = FakeSource()
    source.add(1, 2, 3)
    wake = WakeUps()
    engine, stop = build(source, wake)
    engine.run_once()
    # When a webhook names event 4, which the engine has not read
    wake.notify([4])
    # Then the wait ends with a read due long before the 60 s poll
    assert idle_wait_outcome(engine, stop) == "read"
    assert engine.stats.wakeups_wanted == 1


def test_wakeups_for_events_already_passed_cause_no_read() -> None:
    # Given a caught-up engine at event 3
    source = FakeSource()
    source.add(1, 2, 3)
    wake = WakeUps()
    engine, stop = build(source, wake)
    engine.run_once()
    assert engine.passed(3) and not engine.passed(4)
    # When many webhooks name events 1 to 3
    for event_id in (1, 2, 3, 3, 2):
        wake.notify([event_id])
    # Then the wait runs on until the stop: no read was made due
    assert idle_wait_outcome(engine, stop) == "stopped"
    assert engine.stats.wakeups == 1 and engine.stats.wakeups_wanted == 0


def test_an_id_in_a_backlog_is_not_passed() -> None:
    # Given an engine started at event 1 that then saw 3, so 2 is awaited in the backlog
    source = FakeSource()
    now = datetime.now(UTC)
    source.add(1, created_at=now)
    wake = WakeUps()
    engine, _ = build(source, wake)
    source.add(2, 3, created_at=now)
    source.hidden.add(2)
    engine.run_once()
    # Then a webhook for 2 counts as news (it may be the late event arriving)
    assert not engine.passed(2)
    assert engine.passed(3)
