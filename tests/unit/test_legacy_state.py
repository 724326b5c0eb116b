"""Import of the original daemon's pickled state: formats, safety, backup."""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shotgun_events.cursor import Cursor
from shotgun_events.errors import StateError
from shotgun_events.state.legacy import ANY_PLUGIN, parse_legacy
from shotgun_events.state.store import StateStore, read_positions

# 2024-01-02 03:04:05 as Python's datetime pickles its state (10 bytes).
_DT_STATE = b"\x07\xe8\x01\x02\x03\x04\x05\x00\x00\x00"
_ESCAPED = "".join(f"\\x{b:02x}" for b in _DT_STATE).encode()

# What Python 2's pickle.dumps(state, 0) wrote for
# {'/plugins': {'logArgs.py': (1234, {1230: datetime(2024, 1, 2, 3, 4, 5)})}}
PY2_PROTOCOL_0 = (
    b"(dp0\nS'/plugins'\np1\n(dp2\nS'logArgs.py'\np3\n(I1234\n(dp4\nI1230\n"
    b"cdatetime\ndatetime\np5\n(S'" + _ESCAPED + b"'\np6\ntp7\nRp8\nstp9\nss."
)
# ... and pickle.dumps(state, 2), as the original writes it.
PY2_PROTOCOL_2 = (
    b"\x80\x02}q\x00U\x08/pluginsq\x01}q\x02U\nlogArgs.pyq\x03M\xd2\x04}q\x04M\xce\x04"
    b"cdatetime\ndatetime\nq\x05U\n" + _DT_STATE + b"q\x06\x85q\x07Rq\x08s\x86q\tss."
)


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the local time zone UTC-5 in January, so naive-local conversion is visible."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


EXPECTED_EXPIRY = datetime(2024, 1, 2, 8, 4, 5, tzinfo=UTC)  # 03:04:05 in New York


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize("data", [PY2_PROTOCOL_0, PY2_PROTOCOL_2], ids=["py2-proto0", "py2-proto2"])
def test_python2_pickles_load_with_local_expiry_as_utc(data: bytes, tmp_path: Path) -> None:
    # Given a state file written by the original daemon under Python 2
    # When it is parsed
    positions = parse_legacy(data, tmp_path / "state")
    # Then the name loses ".py" and the naive local expiry becomes aware UTC
    assert positions == {("/plugins", "logArgs"): Cursor(1234, {1230: EXPECTED_EXPIRY})}


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize("protocol", [0, 1, 2, pickle.HIGHEST_PROTOCOL])
def test_python3_pickles_of_the_original_shape_load(protocol: int, tmp_path: Path) -> None:
    # Given the original's shape pickled by Python 3, names with and without ".py"
    original = {
        "/a": {"one.py": (10, {8: datetime(2024, 1, 2, 3, 4, 5)}), "two": (20, {})},
        "/b/é": {"three.py": 30},
    }
    data = pickle.dumps(original, protocol=protocol)
    # When it is parsed
    positions = parse_legacy(data, tmp_path / "state")
    # Then every plugin has its cursor, keyed by (folder, name without .py)
    assert positions == {
        ("/a", "one"): Cursor(10, {8: EXPECTED_EXPIRY}),
        ("/a", "two"): Cursor(20),
        ("/b/é", "three"): Cursor(30),
    }


def test_python2_utf8_folder_names_decode(tmp_path: Path) -> None:
    # Given a Python 2 protocol-2 pickle whose folder is a UTF-8 byte string
    folder = "/plugins/é".encode()
    data = b"\x80\x02}q\x00U" + bytes([len(folder)]) + folder + b"}U\x04p.pyK\x07}\x86ss."
    # When it is parsed, Then the folder reads back as text, not mojibake
    assert parse_legacy(data, tmp_path / "state") == {("/plugins/é", "p"): Cursor(7)}


@pytest.mark.parametrize(
    "data", [b"I4242\n.", b"L4242L\n.", pickle.dumps(4242, protocol=2)], ids=["int", "long", "py3"]
)
def test_bare_integer_applies_to_every_plugin(data: bytes, tmp_path: Path) -> None:
    # Given the oldest format, a bare integer
    # When it is parsed, Then it becomes the position of the ANY_PLUGIN marker
    assert parse_legacy(data, tmp_path / "state") == {ANY_PLUGIN: Cursor(4242)}


class _RunsShell:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {_MARKER}",))


class _RunsPython:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(_MARKER)!r}, 'w').close()",))


_MARKER = Path("/tmp/shotgun_events_legacy_marker_must_not_exist")


@pytest.mark.parametrize("payload", [_RunsShell(), _RunsPython()], ids=["os.system", "exec"])
@pytest.mark.parametrize("protocol", [0, 2])
def test_malicious_pickle_is_refused_without_running(
    payload: object, protocol: int, tmp_path: Path
) -> None:
    # Given a "state file" whose unpickling would run code
    _MARKER.unlink(missing_ok=True)
    path = tmp_path / "state"
    path.write_bytes(pickle.dumps({"/p": {"x": (1, {})}, "evil": payload}, protocol=protocol))
    # When the daemon loads it
    with pytest.raises(StateError, match=r"not plain data: refusing to load \w+\.(system|exec)"):
        StateStore(path).load()
    # Then the code never ran and the file is untouched
    assert not _MARKER.exists()
    assert path.exists()


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (pickle.dumps({"/p": {"x": (1, {})}}, protocol=2)[:-7], "not a readable legacy pickle"),
        (pickle.dumps(["a", "list"], protocol=2), "not in a known legacy layout"),
        (pickle.dumps({"/p": {"x": ("1", {})}}, protocol=2), "last id is a str"),
    ],
    ids=["empty", "blank", "truncated", "list", "bad-id"],
)
def test_unusable_legacy_file_is_corrupt_with_recovery(
    data: bytes, what: str, tmp_path: Path
) -> None:
    # Given an empty, truncated or oddly shaped legacy file (the original crashed on these)
    path = tmp_path / "state"
    path.write_bytes(data)
    # When the daemon loads it
    with pytest.raises(StateError) as caught:
        StateStore(path, config_path=Path("/etc/sg.conf")).load()
    # Then one line names the file, the problem and the exact recovery command
    message = str(caught.value)
    assert f"state file {path} is corrupt" in message and what in message
    assert message.endswith("shotgunEventDaemon -c /etc/sg.conf reset --all --to latest")
    assert "\n" not in message
    # And the file is kept as it was
    assert path.read_bytes() == data


@pytest.mark.usefixtures("new_york")
def test_store_imports_once_to_json_and_keeps_a_backup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the original's pickle at eventIdFile
    path = tmp_path / "shotgunEventDaemon.id"
    path.write_bytes(PY2_PROTOCOL_2)
    # When the daemon loads it
    with caplog.at_level(logging.INFO, logger="engine.state"):
        positions = StateStore(path).load()
    # Then the positions are imported, logged at INFO, and the original is kept
    assert positions == {("/plugins", "logArgs"): Cursor(1234, {1230: EXPECTED_EXPIRY})}
    assert "imported legacy state" in caplog.text and "1 plugin positions" in caplog.text
    backup = tmp_path / "shotgunEventDaemon.id.legacy.pickle"
    assert backup.read_bytes() == PY2_PROTOCOL_2
    # And eventIdFile now holds our JSON, which the next start reads without importing
    doc = json.loads(path.read_text())
    assert doc["plugins"]["/plugins"]["logArgs"] == {
        "last_id": 1234,
        "backlog": {"1230": "2024-01-02T08:04:05+00:00"},
    }
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="engine.state"):
        assert StateStore(path).load() == positions
    assert "imported" not in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shotgunEventDaemon.id",
        "shotgunEventDaemon.id.journal",
        "shotgunEventDaemon.id.legacy.pickle",
    ]


def test_integer_import_persists_marker_until_forgotten(tmp_path: Path) -> None:
    # Given an integer legacy file imported by the daemon
    path = tmp_path / "state"
    path.write_bytes(b"I99\n.")
    assert StateStore(path).load() == {ANY_PLUGIN: Cursor(99)}
    # When the engine applies it to its plugins, then forgets the marker
    store = StateStore(path)
    assert store.load() == {ANY_PLUGIN: Cursor(99)}  # survives a restart before that
    store.record(("/p", "a"), Cursor(99))
    store.forget(ANY_PLUGIN)
    store.close()
    # Then only real plugins remain
    assert StateStore(path).load() == {("/p", "a"): Cursor(99)}


def test_an_earlier_different_backup_is_not_overwritten(tmp_path: Path) -> None:
    # Given a backup from an earlier import, and a different pickle to import now
    path = tmp_path / "state"
    (tmp_path / "state.legacy.pickle").write_bytes(b"I1\n.")
    path.write_bytes(b"I2\n.")
    # When it is imported
    StateStore(path).load()
    # Then both originals are kept
    assert (tmp_path / "state.legacy.pickle").read_bytes() == b"I1\n."
    assert (tmp_path / "state.legacy.1.pickle").read_bytes() == b"I2\n."


def test_read_positions_decodes_a_pickle_without_writing(tmp_path: Path) -> None:
    # Given a legacy pickle
    path = tmp_path / "state"
    path.write_bytes(b"I7\n.")
    # When status reads it, Then it sees the positions and nothing is written
    assert read_positions(path) == {ANY_PLUGIN: Cursor(7)}
    assert [p.name for p in tmp_path.iterdir()] == ["state"]
