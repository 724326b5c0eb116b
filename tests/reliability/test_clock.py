"""Backlog expiry under wall-clock jumps, DST and site timestamps in other time zones."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest

from tests.unit.fakes import (
    DISPATCH_MODES,
    T0,
    Clock,
    FakePlugin,
    FakeSource,
    FakeStore,
    recording_plugin,
)

from .engine_rig import POLL, SteppedEngine, build


@pytest.fixture(params=DISPATCH_MODES)
def dispatch(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engines() -> Iterator[list[SteppedEngine]]:
    made: list[SteppedEngine] = []
    yield made
    for engine in made:
        engine.close()


class Scene(NamedTuple):
    """A gap being waited for: events 1..3 and 5 delivered, 4 not committed yet."""

    source: FakeSource
    engine: SteppedEngine
    plugin: FakePlugin
    store: FakeStore
    clock: Clock

    def awaited(self) -> set[int]:
        return set(self.store.positions[self.plugin.key].backlog)


def _gap_scene(dispatch: str, engines: list[SteppedEngine], created_at: datetime = T0) -> Scene:
    source = FakeSource()
    source.add(1, 2, 3, created_at=created_at)
    plugin = recording_plugin("a")
    engine, store, clock = build(source, [plugin], dispatch=dispatch, start_from_id=1)
    engines.append(engine)
    engine.run_once()
    source.add(4, 5, created_at=created_at)
    source.hidden.add(4)
    engine.run_once()
    scene = Scene(source, engine, plugin, store, clock)
    assert scene.awaited() == {4}
    return scene


def test_site_timestamps_with_an_offset_expire_at_the_same_instant(
    dispatch: str, engines: list[SteppedEngine]
) -> None:
    # Given events dated in +09:00 (the same instant as T0 in UTC) revealing a gap
    tokyo = T0.astimezone(timezone(timedelta(hours=9)))
    scene = _gap_scene(dispatch, engines, tokyo)
    # When the timeout is nearly over, Then the id is still awaited
    scene.clock.advance(299)
    scene.engine.run_once()
    assert 4 in scene.awaited()
    # When it is over, Then it is given up
    scene.clock.advance(2)
    scene.engine.run_once()
    assert 4 not in scene.awaited()


def test_dst_fall_back_does_not_confuse_expiry(dispatch: str, engines: list[SteppedEngine]) -> None:
    # Given the site's events dated in Paris time on the night clocks go back (02:30 twice)
    paris = ZoneInfo("Europe/Paris")
    first = datetime(2026, 10, 25, 2, 30, tzinfo=paris, fold=0)  # 00:30 UTC
    second = datetime(2026, 10, 25, 2, 20, tzinfo=paris, fold=1)  # 01:20 UTC, later
    source = FakeSource()
    source.add(1, created_at=first)
    plugin = recording_plugin("a")
    engine, store, clock = build(source, [plugin], dispatch=dispatch, start_from_id=1)
    engines.append(engine)
    clock.now = second.astimezone(UTC)
    engine.run_once()
    # When a gap appears in an event dated after the fall-back
    source.add(3, created_at=second)
    engine.run_once()
    # Then its wait runs from that event's real instant
    backlog = store.positions[plugin.key].backlog
    assert backlog == {2: second.astimezone(UTC) + timedelta(seconds=300)}
    assert plugin.received == [1, 3]


def test_wall_clock_stepping_back_does_not_stretch_the_wait(
    dispatch: str, engines: list[SteppedEngine]
) -> None:
    # Given a gap being waited for
    scene = _gap_scene(dispatch, engines)
    # When the wall clock steps back an hour (NTP step) and then the timeout passes
    scene.clock.now -= timedelta(hours=1)
    scene.clock.advance(301)
    scene.engine.run_once()
    # Then the id is given up after the timeout, not an hour later
    assert 4 not in scene.awaited()


def test_wall_clock_stepping_forward_does_not_drop_a_gap_early(
    dispatch: str, engines: list[SteppedEngine]
) -> None:
    # Given a gap being waited for
    scene = _gap_scene(dispatch, engines)
    # When the wall clock steps forward an hour, a poll passes, and then the id commits
    scene.clock.now += timedelta(hours=1)
    scene.clock.mono += POLL + 1
    scene.engine.run_once()
    scene.source.hidden.clear()
    scene.clock.advance(POLL + 1)
    scene.engine.run_once()
    # Then it is delivered: only seconds passed, far less than the timeout
    assert 4 in scene.plugin.received


def test_daemon_clock_ahead_of_the_site_still_waits_for_new_gaps(
    dispatch: str, engines: list[SteppedEngine]
) -> None:
    # Given a daemon whose clock runs 10 minutes ahead of the site's
    source = FakeSource()
    source.add(1, created_at=T0)
    plugin = recording_plugin("a")
    engine, _, clock = build(source, [plugin], dispatch=dispatch, start_from_id=1)
    engines.append(engine)
    clock.now = T0 + timedelta(minutes=10)
    engine.run_once()
    # When the site writes 3 now (its clock: T0) while 2 is not committed yet
    source.add(2, 3, created_at=T0)
    source.hidden.add(2)
    engine.run_once()
    source.hidden.clear()
    clock.advance(POLL + 1)
    engine.run_once()
    # Then 2 is awaited and delivered, not abandoned as "older than the timeout"
    assert plugin.received == [1, 3, 2]


def test_cursor_expiry_from_a_local_time_at_dst_fall_back_is_utc_arithmetic() -> None:
    # Given an event dated 02:20 local time after clocks went back (01:20 UTC)
    from shotgun_events.cursor import Cursor

    revealed = datetime(2026, 10, 25, 2, 20, tzinfo=ZoneInfo("Europe/Paris"), fold=1)
    cursor = Cursor(1)
    # When it reveals a gap, seen at 01:21 UTC with a 5 minute timeout
    report = cursor.advance(
        3, revealed, datetime(2026, 10, 25, 1, 21, tzinfo=UTC), timedelta(minutes=5)
    )
    # Then the id waits until 01:25 UTC (wall-time arithmetic would say 00:25 UTC: dropped)
    assert report.waiting == (2,)
    assert cursor.backlog == {2: datetime(2026, 10, 25, 1, 25, tzinfo=UTC)}
