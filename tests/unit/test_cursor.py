"""Rules of the per-plugin cursor and its backlog of missing ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from shotgun_events.cursor import Cursor

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WAIT = timedelta(seconds=300)


def test_advancing_without_gap_leaves_backlog_empty() -> None:
    # Given a cursor at 10
    cursor = Cursor(10)
    # When event 11 is handled
    report = cursor.advance(11, T0, T0, WAIT)
    # Then the cursor moves and nothing is awaited
    assert cursor.last_id == 11
    assert cursor.backlog == {}
    assert report.waiting == () and report.abandoned == ()


def test_gap_puts_missing_ids_in_backlog_with_expiry_from_revealing_event() -> None:
    # Given a cursor at 10
    cursor = Cursor(10)
    # When event 14 arrives, created a minute ago
    created = T0 - timedelta(seconds=60)
    report = cursor.advance(14, created, T0, WAIT)
    # Then 11..13 wait until 300 s after event 14 was created
    assert cursor.last_id == 14
    assert cursor.backlog == {11: created + WAIT, 12: created + WAIT, 13: created + WAIT}
    assert report.waiting == (11, 12, 13)


def test_gap_in_old_events_is_abandoned_not_awaited() -> None:
    # Given a cursor catching up on events older than the backlog timeout
    cursor = Cursor(10)
    # When event 13 from an hour ago reveals a gap
    report = cursor.advance(13, T0 - timedelta(hours=1), T0, WAIT)
    # Then the gap is reported as abandoned and nothing waits
    assert report.abandoned == (11, 12)
    assert cursor.backlog == {}
    assert cursor.last_id == 13


def test_late_event_settles_without_moving_cursor_backwards() -> None:
    # Given a cursor that skipped 11 and is now at 20
    cursor = Cursor(10)
    cursor.advance(12, T0, T0, WAIT)
    cursor.advance(20, T0, T0, WAIT)
    assert cursor.is_awaited(11)
    # When the late event 11 is delivered
    settled = cursor.settle_late(11)
    # Then it leaves the backlog and the cursor stays at 20
    assert settled
    assert cursor.last_id == 20
    assert not cursor.is_awaited(11)
    assert not cursor.is_fresh(11)
    # And settling it again does nothing
    assert not cursor.settle_late(11)


def test_old_event_is_neither_fresh_nor_awaited() -> None:
    # Given a cursor at 20 with 15 awaited
    cursor = Cursor(20, {15: T0 + WAIT})
    # Then 14 and 20 are done, 15 is awaited and 21 is fresh
    assert not cursor.is_fresh(14) and not cursor.is_awaited(14)
    assert not cursor.is_fresh(20)
    assert cursor.is_awaited(15)
    assert cursor.is_fresh(21)


def test_advance_to_an_older_id_changes_nothing() -> None:
    # Given a cursor at 20
    cursor = Cursor(20)
    # When an older id is advanced to
    report = cursor.advance(5, T0, T0, WAIT)
    # Then the cursor is unchanged
    assert cursor.last_id == 20
    assert report.waiting == ()


def test_expire_drops_only_due_ids() -> None:
    # Given two awaited ids with different expiries
    cursor = Cursor(30, {11: T0, 12: T0 + timedelta(seconds=10)})
    # When the clock reaches the first expiry
    expired = cursor.expire(T0)
    # Then only that id is dropped
    assert expired == [11]
    assert list(cursor.backlog) == [12]


def test_expiry_compares_across_time_zones() -> None:
    # Given an event stamped in another time zone (UTC+2)
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2026, 1, 1, 14, 0, tzinfo=plus_two)  # 12:00 UTC
    cursor = Cursor(1)
    # When it reveals a gap, judged at 12:04 UTC
    cursor.advance(3, created, T0 + timedelta(minutes=4), WAIT)
    # Then id 2 waits until 12:05 UTC and expires then, not two hours off
    assert cursor.expire(T0 + timedelta(minutes=4, seconds=59)) == []
    assert cursor.expire(T0 + timedelta(minutes=5)) == [2]


def test_naive_times_are_taken_as_utc() -> None:
    # Given a naive created_at (legacy data)
    cursor = Cursor(1)
    cursor.advance(3, datetime(2026, 1, 1, 12, 0), T0, WAIT)
    # Then the expiry is aware and comparable
    assert cursor.backlog[2] == T0 + WAIT


def test_missing_created_at_uses_now() -> None:
    cursor = Cursor(1)
    cursor.advance(3, None, T0, WAIT)
    assert cursor.backlog[2] == T0 + WAIT


def test_jump_to_resets_backlog() -> None:
    cursor = Cursor(10, {5: T0})
    cursor.jump_to(100)
    assert cursor.last_id == 100 and cursor.backlog == {}


def test_copy_is_independent() -> None:
    a = Cursor(10, {3: T0})
    b = a.copy()
    b.backlog.clear()
    b.last_id = 99
    assert a.last_id == 10 and 3 in a.backlog
