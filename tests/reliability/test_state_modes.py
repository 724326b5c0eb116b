"""The state store creates its snapshot, journal and legacy backup owner-only."""

from __future__ import annotations

import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shotgun_events.cursor import Cursor
from shotgun_events.state.store import StateStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_snapshot_and_journal_are_owner_only_whatever_the_umask(
    tmp_path: Path, open_umask: None
) -> None:
    # Given a permissive umask
    store = StateStore(tmp_path / "state.json")
    # When positions are recorded and compacted
    store.load()
    store.record(("/plugins", "a"), Cursor(5))
    store.compact()
    store.close()
    # Then both files are 0600
    assert _mode(tmp_path / "state.json") == 0o600
    assert _mode(tmp_path / "state.json.journal") == 0o600


def test_legacy_backup_is_owner_only(tmp_path: Path, open_umask: None) -> None:
    # Given the original's pickle state
    path = tmp_path / "state.json"
    path.write_bytes(pickle.dumps({"/plugins": {"a.py": (7, {})}}, protocol=2))
    # When it is imported
    store = StateStore(path)
    store.load()
    store.close()
    # Then the kept copy and the new files are owner-only
    for file in tmp_path.iterdir():
        assert _mode(file) == 0o600, file.name


@pytest.mark.parametrize(
    ("data", "is_pickle"),
    [
        (b"hello, world\n", False),
        (b"not json at all", False),
        (pickle.dumps({"/p": {"a": (1, {})}}, protocol=0), True),
        (pickle.dumps({"/p": {"a": (1, {})}}, protocol=1), True),
        (pickle.dumps({"/p": {"a": (1, {})}}, protocol=2), True),
        (pickle.dumps(1234, protocol=0), True),
        (pickle.dumps(1234, protocol=1), True),
        (b'{"format": "shotgun_events.state"}', False),
    ],
)
def test_only_pickles_are_taken_for_legacy_state(data: bytes, is_pickle: bool) -> None:
    # Given state bytes, When classified, Then only real pickles go to the legacy importer
    from shotgun_events.state.legacy import looks_like_pickle

    assert looks_like_pickle(data) is is_pickle
