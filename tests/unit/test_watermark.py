"""The watermark rules of plugins whose events finish out of id order, and their state file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shotgun_events.cursor import Cursor
from shotgun_events.delivery.watermark import FRESH, LATE, SEEN, Watermark
from shotgun_events.state.store import StateStore

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
WAIT = timedelta(minutes=5)


def _take(mark: Watermark, *ids: int) -> None:
    for event_id in ids:
        kind = mark.classify(event_id)
        assert kind is not None
        mark.take(event_id, kind, NOW, NOW, WAIT)


def test_out_of_order_completion_moves_the_watermark_only_over_a_handled_prefix() -> None:
    # Given events 1..5 handed out
    mark = Watermark(Cursor(0))
    _take(mark, 1, 2, 3, 4, 5)
    # When 3 and 5 finish first
    mark.finish(3, True)
    mark.finish(5, True)
    # Then the watermark stays before 1 and remembers 3 and 5 as done
    assert (mark.last_id, mark.done) == (0, {3, 5})
    # When 1 then 2 finish
    mark.finish(1, True)
    assert (mark.last_id, mark.done) == (1, {3, 5})
    mark.finish(2, True)
    # Then it moves over the done 3 and stops before the open 4
    assert (mark.last_id, mark.done) == (3, {5})
    mark.finish(4, True)
    assert (mark.last_id, mark.done, mark.read.last_id) == (5, set(), 5)


def test_gap_goes_to_the_backlog_and_the_watermark_passes_it() -> None:
    # Given a plugin after event 10 that reads 12 and 13 (11 not visible yet)
    mark = Watermark(Cursor(10))
    _take(mark, 12, 13)
    # Then 11 waits in the backlog, with its expiry from the revealing event
    assert mark.read.backlog == {11: NOW + WAIT}
    # When both finish out of order
    mark.finish(13, True)
    mark.finish(12, True)
    # Then the watermark is 13 and 11 stays awaited
    assert mark.last_id == 13
    assert mark.saved().backlog == {11: NOW + WAIT}


def test_late_id_runs_once_and_settles_without_moving_the_watermark() -> None:
    # Given 11 awaited below the watermark
    mark = Watermark(Cursor(13, {11: NOW + WAIT}))
    # When it turns up
    assert mark.classify(11) == LATE
    mark.take(11, LATE, NOW, NOW, WAIT)
    # Then while in flight it is not handed out again, nor settled
    assert mark.classify(11) is None
    assert 11 in mark.read.backlog
    # When it finishes, it leaves the backlog and the watermark stays
    assert mark.finish(11, True) == ([], True)
    assert (mark.last_id, mark.read.backlog) == (13, {})


def test_expiry_drops_due_backlog_ids_only() -> None:
    # Given two awaited ids with different deadlines
    mark = Watermark(Cursor(20, {11: NOW, 15: NOW + WAIT}))
    # When time passes the first deadline
    expired = mark.read.expire(NOW + timedelta(seconds=1))
    # Then only that one is given up, in the saved form too
    assert expired == [11]
    assert mark.saved().backlog == {15: NOW + WAIT}


def test_restart_skips_done_ids_and_reruns_only_those_in_flight() -> None:
    # Given 1..6 handed out, 2, 4, 5 done, 1, 3, 6 in flight when the daemon dies
    mark = Watermark(Cursor(0))
    _take(mark, 1, 2, 3, 4, 5, 6)
    for event_id in (2, 4, 5):
        mark.finish(event_id, True)
    saved = mark.saved().copy()
    assert (saved.last_id, saved.done) == (0, {2, 4, 5})
    # When a new run starts from the saved watermark and reads 1..6 again
    again = Watermark(saved)
    kinds = {event_id: again.classify(event_id) for event_id in range(1, 7)}
    # Then only the ones in flight run again
    assert [i for i, kind in kinds.items() if kind == FRESH] == [1, 3, 6]
    assert [i for i, kind in kinds.items() if kind == SEEN] == [2, 4, 5]


def test_failure_keeps_the_event_open_and_rewind_reads_again_from_the_watermark() -> None:
    # Given 1..4 handed out, 12 revealing a gap above the watermark
    mark = Watermark(Cursor(0))
    _take(mark, 1, 2, 4)
    mark.finish(1, True)
    mark.finish(4, True)
    # When 2 fails (stopOnError switched the plugin off)
    mark.finish(2, False)
    # Then the watermark stays before it and the read cursor goes back there
    assert mark.last_id == 1 and mark.stuck == {2}
    dropped = mark.rewind()
    assert dropped == [3]
    assert (mark.read.last_id, mark.done, mark.read.backlog) == (1, {4}, {})
    assert mark.classify(2) == FRESH and mark.classify(4) == SEEN


def test_replayed_old_ids_are_neither_fresh_nor_awaited() -> None:
    # Given a watermark at 50 with 52 done above it
    mark = Watermark(Cursor(50, {}, {52}))
    # Then ids at or below the watermark are not the plugin's to run again (replay is
    # an operator's explicit request, outside the watermark), nor is the done 52
    assert mark.classify(40) is None
    assert mark.classify(50) is None
    assert mark.classify(52) == SEEN


def test_state_file_keeps_the_done_set_across_journal_and_snapshot(tmp_path: Path) -> None:
    # Given a store with a concurrent plugin's watermark and done ids, as journal deltas
    path = tmp_path / "state.json"
    key = ("/plugins", "fast")
    store = StateStore(path, fsync="never")
    store.load()
    store.record(key, Cursor(10))
    store.record(key, Cursor(10, {}, {12}), ({}, set()), [12])
    store.record(key, Cursor(10, {}, {12, 14}), ({}, set()), [14])
    store.record(key, Cursor(12, {}, {14}), ({}, set()), [])
    # When read back without closing (as after kill -9)
    again = StateStore(path).load()
    # Then the watermark and the done ids above it are there
    assert again is not None
    assert (again[key].last_id, again[key].done) == (12, {14})
    # And after compaction the snapshot holds them
    store.close()
    doc = json.loads(path.read_text())
    assert doc["plugins"]["/plugins"]["fast"] == {"last_id": 12, "backlog": {}, "done": [14]}


def test_strict_order_plugins_write_exactly_the_old_layout(tmp_path: Path) -> None:
    # Given a plugin with concurrency 1 and an old state file without any done set
    path = tmp_path / "state.json"
    key = ("/plugins", "slow")
    store = StateStore(path, fsync="never")
    store.load()
    store.record(key, Cursor(5))
    store.record(key, Cursor(7, {6: NOW}))
    store.close()
    # Then no new field appears in the snapshot or the journal
    entry = json.loads(path.read_text())["plugins"]["/plugins"]["slow"]
    assert sorted(entry) == ["backlog", "last_id"]
    assert "done" not in path.with_name("state.json.journal").read_text()
    # And the file loads unchanged
    loaded = StateStore(path).load()
    assert loaded is not None and loaded[key] == Cursor(7, {6: NOW})
