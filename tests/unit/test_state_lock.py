"""The state lock: one holder, who it is, release on death, and file systems that ignore it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shotgun_events.state.lock import (
    StateLock,
    StateLockedError,
    lock_path,
    mount_warning,
)

HOLD = """
import sys, time
from pathlib import Path
from shotgun_events.state.lock import StateLock
lock = StateLock(Path(sys.argv[1]), role=sys.argv[2])
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def hold_in_child(state: Path, role: str = "daemon") -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state), role], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_process_is_refused_with_the_holders_pid_and_gets_it_after_a_kill(
    tmp_path: Path,
) -> None:
    # Given another process holding the lock of a state file as a daemon
    state = tmp_path / "state.json"
    child = hold_in_child(state)
    try:
        # When this process asks for it
        lock = StateLock(state, config_path=tmp_path / "a.conf")
        with pytest.raises(StateLockedError) as refused:
            lock.acquire(wait_for_operator=5)  # a daemon holder is never waited for
        # Then the one-line refusal names the state file, the holder's pid, the fix; exit 75
        text = str(refused.value)
        assert "\n" not in text and str(state) in text and f"pid {child.pid}" in text
        assert "shotgunEventDaemon -c " in text and refused.value.exit_code == 75
        assert oct(lock_path(state).stat().st_mode & 0o777) == "0o600"
    finally:
        # When the holder is killed with SIGKILL
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    # Then the lock is free at once, and this process's pid is written in it
    lock.acquire()
    # (Read from a child: opening and closing the file here would drop our own lock.)
    content = subprocess.run(["cat", str(lock_path(state))], capture_output=True, text=True)
    assert content.stdout.split() == [str(os.getpid()), "daemon"]
    assert lock.honoured() is True  # a local file system: a child is refused
    lock.release()
    assert lock_path(state).read_text() == ""


def test_an_operator_holder_is_waited_for_only_as_long_as_asked(tmp_path: Path) -> None:
    # Given an operator command holding the lock
    state = tmp_path / "state.json"
    child = hold_in_child(state, role="reset")
    waited: list[str] = []
    try:
        lock = StateLock(state)
        # When a daemon waits for it a short while
        with pytest.raises(StateLockedError) as refused:
            lock.acquire(wait_for_operator=0.2, on_wait=lambda h: waited.append(h.describe()))
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    # Then it said once whom it waited for, and then gave up naming the command
    assert waited == [f"operator command 'reset' (pid {child.pid})"]
    assert "operator command 'reset'" in str(refused.value)


def test_nfs_mounts_without_locks_are_warned_about(tmp_path: Path) -> None:
    # Given a /proc/mounts with the state folder on NFS, once with nolock
    mounts = tmp_path / "mounts"
    lines = [
        "/dev/sda1 / ext4 rw,relatime 0 0",
        "srv:/export /mnt/state nfs4 rw,vers=4.2,{opts} 0 0",
    ]
    for opts, warned in (("nolock", True), ("local_lock=all", True), ("hard,proto=tcp", False)):
        mounts.write_text("\n".join(lines).format(opts=opts) + "\n")
        # When the daemon looks at it
        found = mount_warning(Path("/mnt/state/site"), mounts=mounts)
        # Then only a mount that keeps locks local is warned about, naming the fix
        assert (found is not None) == warned, (opts, found)
        if found:
            assert "/mnt/state" in found and "local disk" in found
    # And a local folder is never warned about
    assert mount_warning(Path("/var/lib/x"), mounts=mounts) is None
