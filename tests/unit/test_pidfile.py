"""PidFile: atomic owner-only creation, stale detection with real processes, release rules."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shotgun_events.errors import ControlError
from shotgun_events.service.pidfile import (
    AlreadyRunning,
    PidFile,
    is_alive,
    is_daemon_process,
    process_uptime,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")


def _spawn(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been collected."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def foreign_pid() -> Iterator[int]:
    """A live process that is not a shotgunEventDaemon (a pid reused by another program)."""
    proc = _spawn("sleep", "30")
    yield proc.pid
    proc.kill()
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]


@pytest.fixture
def daemon_pid() -> Iterator[int]:
    """A live process whose command line says shotgunEventDaemon."""
    proc = _spawn(sys.executable, "-c", "import time; time.sleep(30)", "shotgunEventDaemon")
    yield proc.pid
    proc.kill()
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]


@pytest.fixture
def pid_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "shotgunEventDaemon.pid"


@pytest.fixture(autouse=True)
def _run_folder(pid_path: Path) -> None:
    pid_path.parent.mkdir()


def test_read_returns_none_for_missing_empty_or_garbage(pid_path: Path) -> None:
    # Given a pid file that is missing, then empty, then garbage, then valid
    pid_file = PidFile(pid_path)
    # When / Then
    assert pid_file.read() is None
    pid_path.write_text("")
    assert pid_file.read() is None
    pid_path.write_text("not a pid\n")
    assert pid_file.read() is None
    pid_path.write_text("-4\n")
    assert pid_file.read() is None
    pid_path.write_text("1234\n")
    assert pid_file.read() == 1234


def test_acquire_creates_an_owner_only_file_with_our_pid(pid_path: Path) -> None:
    # Given a permissive umask, which must not widen the pid file's mode
    old_umask = os.umask(0)
    try:
        # When the pid file is acquired
        PidFile(pid_path).acquire()
    finally:
        os.umask(old_umask)
    # Then it holds our pid and a newline, is 0600, and no temporary file is left
    assert pid_path.read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE(pid_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in pid_path.parent.iterdir()) == [pid_path.name]


def test_stale_pid_file_of_a_dead_process_is_replaced(
    pid_path: Path, dead_pid: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a pid file left behind by a process that is gone
    pid_path.write_text(f"{dead_pid}\n")
    pid_file = PidFile(pid_path)
    assert pid_file.running_pid() is None
    # When it is acquired
    with caplog.at_level(logging.WARNING, logger="engine.service"):
        pid_file.acquire()
    # Then it now names us, and the replacement was reported
    assert pid_file.read() == os.getpid()
    assert pid_file.stale_pid == dead_pid
    assert f"removing stale pid file {pid_path} (pid {dead_pid} is not running)" in caplog.text


def test_pid_reused_by_a_foreign_process_is_stale(pid_path: Path, foreign_pid: int) -> None:
    # Given a pid file naming a live process that is not the daemon
    pid_path.write_text(f"{foreign_pid}\n")
    pid_file = PidFile(pid_path)
    assert is_alive(foreign_pid)
    assert not is_daemon_process(foreign_pid)
    # When it is acquired
    pid_file.acquire()
    # Then it is replaced and the foreign process is left alone
    assert pid_file.read() == os.getpid()
    assert pid_file.stale_pid == foreign_pid
    assert is_alive(foreign_pid)


def test_live_daemon_refuses_a_second_start(pid_path: Path, daemon_pid: int) -> None:
    # Given a pid file naming a live shotgunEventDaemon
    pid_path.write_text(f"{daemon_pid}\n")
    pid_file = PidFile(pid_path, config_path=Path("/etc/shotgunEventDaemon.conf"))
    assert pid_file.running_pid() == daemon_pid
    # When another start tries to acquire it
    with pytest.raises(AlreadyRunning) as info:
        pid_file.acquire()
    # Then it is refused with a message naming the pid, the file and the fix
    assert str(info.value) == (
        f"shotgunEventDaemon is already running as pid {daemon_pid} (pid file {pid_path}); "
        "stop it first with: shotgunEventDaemon -c /etc/shotgunEventDaemon.conf stop"
    )
    assert isinstance(info.value, ControlError) and info.value.exit_code == 1
    assert pid_path.read_text() == f"{daemon_pid}\n"
    assert sorted(p.name for p in pid_path.parent.iterdir()) == [pid_path.name]


def test_our_own_pid_in_an_old_file_is_not_another_daemon(pid_path: Path) -> None:
    # Given a pid file that names our pid (a container restarted with the same pid)
    pid_path.write_text(f"{os.getpid()}\n")
    # When it is acquired
    PidFile(pid_path).acquire()
    # Then start-up is not refused
    assert PidFile(pid_path).read() == os.getpid()


def test_garbage_pid_file_is_replaced(pid_path: Path) -> None:
    # Given a pid file with garbage in it
    pid_path.write_text("garbage")
    # When it is acquired
    PidFile(pid_path).acquire()
    # Then it names us
    assert pid_path.read_text() == f"{os.getpid()}\n"


_RACER = """
import sys, time
from pathlib import Path
from shotgun_events.service.pidfile import AlreadyRunning, PidFile
try:
    PidFile(Path(sys.argv[1])).acquire()
except AlreadyRunning:
    print("lost", flush=True)
    sys.exit(1)
print("won", flush=True)
time.sleep(30)
"""


def test_only_one_of_several_racing_starters_wins(pid_path: Path) -> None:
    # Given several daemons starting at the same moment
    racers = [_spawn(sys.executable, "-c", _RACER, str(pid_path)) for _ in range(6)]
    try:
        # When each tries to acquire the same pid file
        results = {proc.pid: proc.stdout.readline().strip() for proc in racers}  # type: ignore[union-attr]
        # Then exactly one wins, and the file names the winner
        winners = [pid for pid, result in results.items() if result == b"won"]
        assert len(winners) == 1, results
        assert sorted(results.values()).count(b"lost") == 5
        assert PidFile(pid_path).read() == winners[0]
    finally:
        for proc in racers:
            proc.kill()
            proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]


def test_release_removes_only_our_own_pid_file(pid_path: Path, daemon_pid: int) -> None:
    # Given a pid file that now names another daemon
    pid_path.write_text(f"{daemon_pid}\n")
    # When we release
    PidFile(pid_path).release()
    # Then it is kept
    assert pid_path.exists()
    # Given our own pid file, when released, then it is gone
    pid_path.unlink()
    pid_file = PidFile(pid_path)
    pid_file.acquire()
    pid_file.release()
    assert not pid_path.exists()
    pid_file.release()  # and releasing twice is harmless


def test_still_ours_turns_false_when_the_file_is_deleted_or_taken(pid_path: Path) -> None:
    # Given an acquired pid file
    pid_file = PidFile(pid_path)
    pid_file.acquire()
    assert pid_file.still_ours()
    # When an admin overwrites it, then it is no longer ours
    pid_path.write_text("1\n")
    assert not pid_file.still_ours()
    # When an admin deletes it, then it is no longer ours
    pid_path.unlink()
    assert not pid_file.still_ours()


def test_running_pid_only_names_live_daemons(
    pid_path: Path, dead_pid: int, foreign_pid: int, daemon_pid: int
) -> None:
    # Given pid files naming a dead process, a foreign one and a daemon
    pid_file = PidFile(pid_path)
    # When / Then
    for pid, expected in ((dead_pid, None), (foreign_pid, None), (daemon_pid, daemon_pid)):
        pid_path.write_text(f"{pid}\n")
        assert pid_file.running_pid() == expected


def test_zombie_counts_as_exited() -> None:
    # Given a child that exited but was not collected yet (a zombie)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    # When / Then
    assert not is_alive(proc.pid)
    proc.wait()


def test_uptime_of_a_live_process_is_known() -> None:
    # Given this process, when its uptime is read, then it is a sane number of seconds
    uptime = process_uptime(os.getpid())
    assert uptime is not None and 0 <= uptime < 24 * 3600
