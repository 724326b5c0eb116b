"""State folder full at write time: no advance past what was saved, CRITICAL, recovery."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shotgun_events.state.store import read_state
from tests.integration.conftest import wait_for

from .conftest import Rig
from .summary import SUMMARY

CRITICAL = "cannot write the state file"


def _mount(target: Path, options: str) -> None:
    target.mkdir(exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the state files."""
    target = tmp_path / "statefs"
    _mount(target, "size=1m,mode=0700")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def _fill(folder: Path) -> Path:
    """Write a filler file until the file system is full."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


def test_full_state_disk_pauses_delivery_and_recovers(rig: Rig, small_fs: Path) -> None:
    # Given a daemon whose state lives on a small file system
    rig.write_config(batch=100, state=small_fs / "state.json")
    rig.add_recorder("rec", sleep=0.001)
    rig.start()
    rig.wait_ready()
    base = rig.site.newest_event_id()
    # When the file system fills up while events arrive
    filler = _fill(small_fs)
    SUMMARY.fault("disk full")
    _, last = rig.site.append_events(2000)
    wait_for(lambda: rig.log_text().count(CRITICAL) >= 2, timeout=60, what="CRITICAL, twice")
    # Then it says so at CRITICAL, keeps running, and has not delivered past what it saved
    assert rig.alive()
    saved = read_state(rig.state_file)  # and what is on disk is readable, not torn
    assert saved is not None
    position = saved.positions[(str(rig.plugins), "rec")].last_id
    delivered = max(rig.ids_for("rec"), default=base)
    assert delivered <= position + 1, (delivered, position)
    assert not list(small_fs.glob(".*.tmp")), "a temporary state file was left behind"
    # When space returns
    filler.unlink()
    # Then delivery resumes by itself and every event arrives (the one in hand at most twice)
    rig.wait_delivered(["rec"], last, timeout=120)
    report = rig.check(base, ["rec"], allowed_duplicates=1)
    assert report.lost_count == 0 and report.duplicate_count() <= 1, report.describe()
    assert "can be written again" in rig.log_text()
    assert rig.stop() == 0
    assert read_state(rig.state_file) is not None


def test_read_only_state_folder_at_start_is_a_clear_error(rig: Rig, tmp_path: Path) -> None:
    # Given a state folder on a read-only file system (root cannot write there either)
    folder = tmp_path / "rofs"
    _mount(folder, "size=64k,ro")
    try:
        rig.write_config(state=folder / "state.json")
        # When the daemon starts
        result = rig.run_cli("foreground")
        # Then it refuses with EX_CONFIG naming the key and the place
        assert result.returncode == 78, result.stderr
        assert "eventIdFile" in result.stderr
        SUMMARY.answered("disk", "state folder read-only at start", f"exit 78: {result.stderr}")
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
