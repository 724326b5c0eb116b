"""StateStore: snapshot + journal persistence, crash safety, write failures."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.cursor import Cursor
from shotgun_events.errors import StateError, StateWriteError
from shotgun_events.state import store as state_module
from shotgun_events.state.store import StateStore, read_positions, read_state

A = ("/plugins", "alpha")
B = ("/plugins", "beta")
C = ("/other plugins/é", "gamma")
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
RESET = "shotgunEventDaemon -c <conf> reset --all --to latest"


def crash_image(folder: Path, into: Path) -> Path:
    """Copy the state files as a crash at this instant would leave them; return the copy."""
    into.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        if item.is_file():
            shutil.copyfile(item, into / item.name)
    return into / "state.json"


def journal_lines(path: Path) -> list[str]:
    return path.with_name(path.name + ".journal").read_text().splitlines()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    folder = tmp_path / "live"
    folder.mkdir()
    return folder / "state.json"


def test_no_files_means_no_state(path: Path) -> None:
    # Given an empty folder, When loading, Then there is no state and nothing is created
    assert StateStore(path).load() is None
    assert read_positions(path) is None
    assert list(path.parent.iterdir()) == []


def test_round_trip_with_backlog_and_extras(path: Path) -> None:
    # Given positions with backlogs and an extra section, recorded and closed
    store = StateStore(path)
    assert store.load() is None
    store.record(A, Cursor(10, {7: T0, 8: T0 + timedelta(seconds=1)}))
    store.record(C, Cursor(5))
    store.set_extra("disabled", ["/plugins/beta.py"])
    store.close()
    # When a new store loads the file
    again = StateStore(path)
    positions = again.load()
    # Then everything reads back equal, and the snapshot is the documented JSON
    assert positions == {A: Cursor(10, {7: T0, 8: T0 + timedelta(seconds=1)}), C: Cursor(5)}
    assert again.extras() == {"disabled": ["/plugins/beta.py"]}
    doc = json.loads(path.read_text())
    assert doc["format"] == "shotgun_events.state" and doc["version"] == 1
    assert doc["plugins"]["/plugins"]["alpha"] == {
        "last_id": 10,
        "backlog": {"7": "2024-05-01T10:00:00+00:00", "8": "2024-05-01T10:00:01+00:00"},
    }


def test_records_survive_a_crash_without_compaction(path: Path, tmp_path: Path) -> None:
    # Given a store that recorded a few events and never compacted after opening
    store = StateStore(path, fsync="never")
    store.load()
    for event_id in range(1, 6):
        store.record(A, Cursor(event_id))
    store.record(B, Cursor(3, {2: T0}))
    store.record(B, Cursor(4))  # the late event 2 arrived
    # When the process dies now (files as they are)
    image = crash_image(path.parent, tmp_path / "crash")
    # Then the journal holds the changes, one short line each, and load replays them
    lines = journal_lines(image)
    assert len(lines) == 1 + 7 and lines[1] == '{"k":["/plugins","alpha"],"l":1}'
    assert StateStore(image).load() == {A: Cursor(5), B: Cursor(4)}
    store.close()


def test_backlog_changes_are_journaled_as_deltas(path: Path) -> None:
    # Given a plugin with a long backlog
    store = StateStore(path)
    store.load()
    backlog = {i: T0 for i in range(100, 200)}
    store.record(A, Cursor(200, dict(backlog)))
    # When one late event settles
    del backlog[150]
    store.record(A, Cursor(200, dict(backlog)))
    # Then the line carries the removal only, and replay gives the same backlog
    assert journal_lines(path)[-1] == '{"k":["/plugins","alpha"],"l":200,"r":[150]}'
    assert read_positions(path) == {A: Cursor(200, backlog)}
    store.close()


def test_compaction_every_n_records_keeps_the_journal_short(path: Path) -> None:
    # Given a store compacting every 5 records
    store = StateStore(path, compact_every=5)
    store.load()
    # When 12 records are made
    for event_id in range(1, 13):
        store.record(A, Cursor(event_id))
    # Then the snapshot holds 10 and the journal only the 2 since
    assert json.loads(path.read_text())["plugins"]["/plugins"]["alpha"]["last_id"] == 10
    assert len(journal_lines(path)) == 1 + 2
    assert read_positions(path) == {A: Cursor(12)}
    store.close()
    assert len(journal_lines(path)) == 1 and read_positions(path) == {A: Cursor(12)}


def test_torn_last_line_is_ignored_with_a_warning(
    path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a crash in the middle of writing the last journal line
    store = StateStore(path)
    store.load()
    store.record(A, Cursor(1))
    store.record(A, Cursor(2))
    image = crash_image(path.parent, tmp_path / "crash")
    with image.with_name("state.json.journal").open("ab") as journal:
        journal.write(b'{"k":["/plugins","alpha"],"l":3')
    store.close()
    # When the daemon restarts
    restarted = StateStore(image)
    with caplog.at_level(logging.WARNING, logger="engine.state"):
        assert restarted.load() == {A: Cursor(2)}
    # Then it said so, and new records are not written after the torn bytes
    assert "torn last line 4" in caplog.text
    restarted.record(A, Cursor(4))
    restarted.record(B, Cursor(1))
    assert StateStore(image).load() == {A: Cursor(4), B: Cursor(1)}
    restarted.close()


def test_a_garbled_complete_last_line_is_torn_too(path: Path) -> None:
    # Given a power cut that left zeros in place of the last line
    store = StateStore(path)
    store.load()
    store.record(A, Cursor(1))
    store.close()
    with path.with_name("state.json.journal").open("ab") as journal:
        journal.write(b'{"k":["/plugins","alpha"],"l":2}\n\0\0\0\0\n')
    # When loading, Then the position is the last good one
    assert StateStore(path).load() == {A: Cursor(2)}


def test_corrupt_middle_line_raises_with_recovery(path: Path) -> None:
    # Given a journal with garbage between good lines
    store = StateStore(path)
    store.load()
    store.record(A, Cursor(1))
    store.close()
    journal = path.with_name("state.json.journal")
    with journal.open("ab") as handle:
        handle.write(
            b'{"k":["/plugins","alpha"],"l":2}\nnot json\n{"k":["/plugins","alpha"],"l":3}\n'
        )
    before = journal.read_bytes()
    # When loading, Then the error names the journal, the line and the command
    with pytest.raises(StateError) as caught:
        StateStore(path).load()
    assert str(caught.value).startswith(f"state journal {journal} is corrupt (line 3 is unreadable")
    assert str(caught.value).endswith(RESET)
    # And nothing was deleted or rewritten
    assert journal.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"", "empty file"),
        (b'{"format": "shotgun_events.state", "version": 1, "plu', "not JSON, truncated?"),
        (b"{not json at all", "not JSON"),
        (b'{"plugins": {}}', 'wrong schema: no "format"'),
        (
            b'{"format": "shotgun_events.state", "version": 1, "journal_generation": 1,'
            b' "plugins": {"/p": {"a": {"last_id": "12"}}}}',
            "wrong schema: plugins./p.a.last_id is not an integer",
        ),
        (
            b'{"format": "shotgun_events.state", "version": 2, "journal_generation": 1,'
            b' "plugins": {}}',
            "wrong schema: version 2, this daemon reads 1",
        ),
    ],
    ids=["empty", "truncated", "not-json", "no-format", "bad-id", "version"],
)
def test_bad_snapshot_raises_one_line_with_recovery(path: Path, content: bytes, what: str) -> None:
    # Given an unusable snapshot
    path.write_bytes(content)
    # When loading (daemon or status)
    for load in (
        StateStore(path, config_path=Path("/etc/sg.conf")).load,
        lambda: read_positions(path),
    ):
        with pytest.raises(StateError) as caught:
            load()
        # Then one line names the file, what is wrong, and the recovery command
        message = str(caught.value)
        assert message.startswith(f"state file {path} is corrupt ({what}")
        assert "reset --all --to latest" in message and "\n" not in message
    assert "-c /etc/sg.conf reset" in str(
        _error(StateStore(path, config_path=Path("/etc/sg.conf")).load)
    )
    # And the file is left as it was
    assert path.read_bytes() == content


def _error(call: Callable[[], Any]) -> StateError:
    with pytest.raises(StateError) as caught:
        call()
    return caught.value


def test_journal_without_snapshot_is_not_silently_ignored(path: Path) -> None:
    # Given a journal whose snapshot was deleted
    store = StateStore(path)
    store.load()
    store.record(A, Cursor(1))
    store.close()
    path.unlink()
    # When loading, Then it refuses to start over silently
    assert "missing, but its journal" in str(_error(StateStore(path).load))


def test_crash_at_every_step_of_compaction_keeps_the_position(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given journaled records, and every file-system step of a compaction observed
    store = StateStore(path)
    store.load()
    for event_id in range(1, 4):
        store.record(A, Cursor(event_id, {event_id + 10: T0}))
    store.forget(B)
    store.set_extra("audit", [1])
    images: list[Path] = []
    real_replace, real_write = os.replace, os.write

    def snap() -> None:
        images.append(crash_image(path.parent, tmp_path / f"step{len(images)}"))

    def replace(src: Any, dst: Any) -> None:
        snap()
        real_replace(src, dst)
        snap()

    def write(fd: int, data: Any) -> int:
        # A crash halfway through writing a temp file
        half = real_write(fd, bytes(data)[: max(1, len(data) // 2)])
        snap()
        return half

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "write", write)
    # When compacting
    store.compact()
    monkeypatch.undo()
    # Then a crash at any of those instants loads the last recorded position
    assert len(images) >= 6
    for image in images:
        reopened = StateStore(image)
        assert reopened.load() == {A: Cursor(3, {13: T0})}, image
        assert reopened.extras() == {"audit": [1]}
    store.close()


def test_stale_journal_is_not_replayed_over_a_newer_snapshot(path: Path) -> None:
    # Given a crash after snapshot G+1 was written but before the journal was replaced:
    # the old journal (G) says 3, the newer snapshot says 10
    path.write_text(
        json.dumps(
            {
                "format": "shotgun_events.state",
                "version": 1,
                "journal_generation": 5,
                "plugins": {"/plugins": {"alpha": {"last_id": 10, "backlog": {}}}},
                "extras": {},
            }
        )
    )
    path.with_name("state.json.journal").write_text(
        '{"format": "shotgun_events.journal", "generation": 4}\n'
        '{"k":["/plugins","alpha"],"l":3}\n{"forget":["/plugins","alpha"]}\n'
    )
    # When loading, Then the snapshot wins
    assert StateStore(path).load() == {A: Cursor(10)}


def test_journal_newer_than_snapshot_is_an_error(path: Path) -> None:
    # Given a snapshot restored from an older copy next to a newer journal
    path.write_text(
        '{"format": "shotgun_events.state", "version": 1, "journal_generation": 2, "plugins": {}}'
    )
    path.with_name("state.json.journal").write_text(
        '{"format": "shotgun_events.journal", "generation": 3}\n'
    )
    # When loading, Then it says so instead of mixing them
    assert "generation is newer than the snapshot" in str(_error(StateStore(path).load))


def test_concurrent_records_from_many_threads(path: Path) -> None:
    # Given 8 worker threads recording their own plugin, with compactions in between
    store = StateStore(path, compact_every=300)
    store.load()
    keys = [("/plugins", f"p{n}") for n in range(8)]

    def work(key: tuple[str, str]) -> None:
        for event_id in range(1, 1001):
            backlog = {event_id + 1000: T0} if event_id % 7 else {}
            store.record(key, Cursor(event_id, backlog))

    threads = [threading.Thread(target=work, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # When reading without closing (crash) and after closing
    # Then every plugin is at its last record, and every journal line is whole
    expected = {key: Cursor(1000, {2000: T0}) for key in keys}  # 1000 % 7 != 0
    assert read_positions(path) == expected
    assert all(json.loads(line) for line in journal_lines(path))
    store.close()
    assert StateStore(path).load() == expected


def _fail_with(code: int) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


def test_disk_full_on_record_raises_then_recovers(
    path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a store with a recorded position
    store = StateStore(path)
    store.load()
    store.record(A, Cursor(1))
    # When the disk is full: one write gets half a line through, later ones nothing
    real_write = os.write
    calls = {"n": 0}

    def full(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StateWriteError, match="No space left on device"):
        store.record(A, Cursor(2))
    with pytest.raises(StateWriteError, match=f"cannot write state file {path}"):
        store.record(A, Cursor(2))  # the retry needs a compaction, which fails too
    # Then the files on disk still load, at the last saved position, with no temp left over
    assert StateStore(crash_image(path.parent, tmp_path / "c1")).load() == {A: Cursor(1)}
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json", "state.json.journal"]
    # And once space returns, the next record succeeds and nothing is torn
    monkeypatch.undo()
    store.record(A, Cursor(2))
    store.record(A, Cursor(3))
    assert StateStore(crash_image(path.parent, tmp_path / "c2")).load() == {A: Cursor(3)}
    store.close()


def test_read_only_folder_raises_write_error_and_breaks_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a recorded position (we run as root, so "read-only" is simulated)
    store = StateStore(path)
    store.load()
    store.record(A, Cursor(1))
    before = path.read_bytes(), path.with_name("state.json.journal").read_bytes()
    real_open = os.open

    def read_only_open(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    # When compaction needs a new file, Then StateWriteError, files unchanged
    with pytest.raises(StateWriteError, match="Read-only file system"):
        store.compact()
    assert (path.read_bytes(), path.with_name("state.json.journal").read_bytes()) == before
    # And appending to the open journal still works, and a later compaction succeeds
    store.record(A, Cursor(2))
    monkeypatch.undo()
    store.close()
    assert StateStore(path).load() == {A: Cursor(2)}


def test_read_positions_while_a_writer_is_active(path: Path) -> None:
    # Given a writer recording and compacting continuously
    store = StateStore(path, compact_every=50)
    store.load()
    store.record(A, Cursor(0))
    stop = threading.Event()

    def write() -> None:
        event_id = 0
        while not stop.is_set():
            event_id += 1
            store.record(A, Cursor(event_id))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        # When status reads many times meanwhile
        seen = []
        for _ in range(200):
            positions = read_positions(path)
            assert positions is not None
            seen.append(positions[A].last_id)
    finally:
        stop.set()
        writer.join()
    # Then every read succeeds and positions never go backwards
    assert seen == sorted(seen) and seen[-1] > 0
    store.close()


def test_extras_survive_compaction_and_reload(path: Path) -> None:
    # Given extras set before and after a compaction
    store = StateStore(path, compact_every=2)
    store.load()
    store.set_extra("dead_letters", [{"event": 5, "plugin": "alpha"}])
    store.record(A, Cursor(1))  # second change: compaction
    store.set_extra("audit", {"reset": "all"})
    # When reloading (journal replay) and after close (snapshot only)
    # Then both are there
    expected = {"dead_letters": [{"event": 5, "plugin": "alpha"}], "audit": {"reset": "all"}}
    assert StateStore(path).extras() == expected
    store.close()
    assert json.loads(path.read_text())["extras"] == expected
    # And values that are not JSON are refused up front
    with pytest.raises(TypeError):
        store.set_extra("bad", {1, 2})



def test_a_list_section_grows_by_one_short_line_per_item_and_keeps_the_newest(
    path: Path, tmp_path: Path
) -> None:
    # Given a list section already holding 300 long items
    store = StateStore(path, compact_every=10_000)
    store.load()
    store.set_extra("dead_letters", [{"n": i, "error": "x" * 400} for i in range(300)])
    before = len(journal_lines(path))
    size = path.with_name(path.name + ".journal").stat().st_size
    # When one more item is added, keeping 300
    store.add_extra("dead_letters", {"n": 300, "error": "y"}, keep=300)
    # Then the journal got one line holding that item alone, not the list again
    lines = journal_lines(path)
    assert len(lines) == before + 1
    assert path.with_name(path.name + ".journal").stat().st_size - size < 100
    # And the section, as this writer, a crash image and a compacted file read it, ends
    # with the new item and holds the newest 300
    crashed = StateStore(crash_image(path.parent, tmp_path / "crash")).extras()["dead_letters"]
    for letters in (store.extras()["dead_letters"], crashed):
        assert len(letters) == 300 and letters[0]["n"] == 1 and letters[-1]["n"] == 300
    store.close()
    saved = json.loads(path.read_text())["extras"]["dead_letters"]
    assert [x["n"] for x in saved] == list(range(1, 301))
def test_forget_drops_a_position(path: Path) -> None:
    # Given two plugins, When one is forgotten (operator reset), Then it is gone after reload
    store = StateStore(path)
    store.load()
    store.record(A, Cursor(1))
    store.record(B, Cursor(2))
    store.forget(A)
    assert read_positions(path) == {B: Cursor(2)}
    store.close()
    assert StateStore(path).load() == {B: Cursor(2)}


@pytest.mark.parametrize(("policy", "syncs"), [("always", 4), ("interval", 2), ("never", 0)])
def test_fsync_policies(
    path: Path, monkeypatch: pytest.MonkeyPatch, policy: str, syncs: int
) -> None:
    # Given a store with a fake clock, and fsync calls on the journal counted
    now = [0.0]
    store = StateStore(path, fsync=policy, fsync_interval=1.0, clock=lambda: now[0])
    store.load()
    store.record(A, Cursor(0))  # opens the journal
    count = [0]
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        count[0] += 1
        real_fsync(fd)

    monkeypatch.setattr(state_module.os, "fsync", counting)
    # When 4 records are made, the clock passing 1 s twice
    for event_id, moment in enumerate([0.1, 1.2, 1.3, 2.5], start=1):
        now[0] = moment
        store.record(A, Cursor(event_id))
    # Then the journal was synced as the policy says
    assert count[0] == syncs
    store.close()


def test_unchanged_record_writes_nothing(path: Path) -> None:
    # Given a recorded position, When the same cursor is recorded again, Then no line is added
    store = StateStore(path)
    store.load()
    store.record(A, Cursor(3, {2: T0}))
    size = len(journal_lines(path))
    store.record(A, Cursor(3, {2: T0}))
    assert len(journal_lines(path)) == size
    store.close()


def test_unknown_fsync_policy_is_refused(path: Path) -> None:
    with pytest.raises(ValueError, match="fsync must be one of"):
        StateStore(path, fsync="sometimes")


def test_read_state_shows_positions_and_extras_of_a_running_writer(path: Path) -> None:
    # Given a running writer with a position and an extra section, not compacted since
    store = StateStore(path)
    store.load()
    store.record(A, Cursor(4))
    store.set_extra("plugins", {"alpha": "active"})
    # When status reads the state, Then it sees both, and writes nothing
    before = sorted((p.name, p.stat().st_mtime_ns) for p in path.parent.iterdir())
    saved = read_state(path)
    assert saved is not None
    assert saved.positions == {A: Cursor(4)} and saved.extras == {"plugins": {"alpha": "active"}}
    assert sorted((p.name, p.stat().st_mtime_ns) for p in path.parent.iterdir()) == before
    store.close()


def test_recording_backlog_changes_as_a_delta_reads_back_the_same(tmp_path: Path) -> None:
    # Given a plugin with a large backlog recorded whole once
    from datetime import UTC, datetime, timedelta

    from shotgun_events.cursor import Cursor

    expiry = datetime(2026, 1, 1, tzinfo=UTC)
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.load()
    key = ("/plugins", "p")
    cursor = Cursor(100, {i: expiry for i in range(1, 5001)})
    store.record(key, cursor)
    # When late ids settle and a new gap appears, recorded only as what changed
    del cursor.backlog[7]
    del cursor.backlog[8]
    cursor.backlog[200] = expiry + timedelta(seconds=5)
    cursor.last_id = 201
    store.record(key, cursor, ({200: expiry + timedelta(seconds=5)}, {7, 8}))
    journal_tail = store.journal_path.read_text().splitlines()[-1]
    store.close()
    # Then the journal line is small and the state reads back exactly
    assert len(journal_tail) < 200
    again = StateStore(path).load()
    assert again is not None
    assert again[key].last_id == 201
    assert again[key].backlog == cursor.backlog
