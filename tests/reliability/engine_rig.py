"""An Engine wired to the unit-test fakes, with a hand-moved wall clock and monotonic clock."""

from __future__ import annotations

import threading
from datetime import timedelta

from shotgun_events.client.retry import SiteRetry
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.settings import Settings
from tests.unit.fakes import Clock, FakeConnections, FakeLoader, FakePlugin, FakeSource, FakeStore

TIMEOUT = timedelta(seconds=300)
POLL = 5.0


class SteppedEngine(Engine):
    """run_once also waits for the plugin workers (parallel mode) to finish what they got."""

    def run_once(self) -> bool:
        full = super().run_once()
        assert self.drain(timeout=10.0), "plugin workers did not finish"
        return full


def build(
    source: FakeSource,
    plugins: list[FakePlugin],
    *,
    dispatch: str,
    clock: Clock | None = None,
    start_from_id: int | None = None,
) -> tuple[SteppedEngine, FakeStore, Clock]:
    """Return a started engine, its store and its clock."""
    store = FakeStore()
    clock = clock or Clock()
    stop = threading.Event()
    engine = SteppedEngine(
        source=source,
        retry=SiteRetry(max_attempts=3, burst_sleep=0, wait=lambda s: stop.is_set()),
        loader=FakeLoader(plugins),
        store=store,
        dispatcher=Dispatcher(connections=FakeConnections(), use_session_uuid=True),
        settings=Settings(
            batch_size=500,
            backlog_timeout=TIMEOUT,
            backlog_poll_interval=POLL,
            start_from_id=start_from_id,
            dispatch=dispatch,
            state_retry_interval=0.01,
        ),
        stop=stop,
        clock=clock,
        monotonic=clock.monotonic,
    )
    assert engine.start()
    return engine, store, clock
