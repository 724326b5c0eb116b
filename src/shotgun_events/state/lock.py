"""One owner per state file: an exclusive ``fcntl.lockf`` lock on ``<eventIdFile>.lock``.

The daemon takes the lock before it reads the state and holds it for its whole
life (SIGHUP reloads included); operator commands that edit the state offline
take it for the length of the command. The holder writes ``<pid> <role>`` into
the file so that whoever is refused can name it. The kernel drops the lock
when its holder dies (even by SIGKILL), so the file left behind never blocks a
restart; it is never deleted (deleting a lock file lets two processes lock two
different inodes).

``lockf`` locks belong to the process: a fork does not inherit them, and
closing any descriptor of the file in the holding process releases them, so
only this module opens the lock file. On NFS they work only through lockd
(``rpcinfo -p SERVER | grep nlockmgr``) and not at all on a ``nolock`` mount:
``honoured()`` probes from a child process and ``mount_warning()`` reads
/proc/mounts.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shotgun_events.errors import ShotgunEventsError, StateWriteError

try:
    import fcntl
except ImportError:  # Windows: msvcrt byte-range locks, also dropped when the holder dies
    fcntl = None  # type: ignore[assignment]
    import msvcrt

log = logging.getLogger("engine.state")

DAEMON = "daemon"
_PAUSE = threading.Event()  # never set: a short wait without a bare sleep
#: Seconds a daemon waits for an operator command that holds the lock.
OPERATOR_WAIT = 60.0
_PROBE = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR)\n"
    "try:\n"
    "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    "except OSError:\n"
    "    sys.exit(3)\n"
)


class StateLockedError(ShotgunEventsError):
    """Another process owns the state file."""

    exit_code = 75  # EX_TEMPFAIL: try again once the other owner is gone


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its lock file says."""

    pid: int | None
    role: str

    @property
    def is_daemon(self) -> bool:
        return self.role == DAEMON

    def describe(self) -> str:
        pid = f"pid {self.pid}" if self.pid is not None else "pid unknown"
        what = "shotgunEventDaemon" if self.is_daemon else f"operator command '{self.role}'"
        return f"{what} ({pid})"


def lock_path(state_path: Path) -> Path:
    """The lock file beside a state file."""
    return state_path.with_name(state_path.name + ".lock")


class StateLock:
    """The exclusive lock on one state file; ``acquire`` raises StateLockedError if taken."""

    def __init__(
        self,
        state_path: Path,
        *,
        role: str = DAEMON,
        config_path: Path | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        daemon_advice: str | None = None,
    ) -> None:
        self._daemon_advice = daemon_advice
        self.state_path = Path(state_path)
        self.path = lock_path(self.state_path)
        self.role = role
        self._config_path = config_path
        self._monotonic = monotonic
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(
        self,
        *,
        wait_for_operator: float = 0.0,
        stop: threading.Event | None = None,
        on_wait: Callable[[Holder], None] | None = None,
    ) -> None:
        """Take the lock now; wait up to ``wait_for_operator`` s while a command holds it."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateWriteError(
                f"cannot open the state lock file {self.path}: {exc.strerror or exc}; "
                f"the daemon's user must be able to create files in {self.path.parent}"
            ) from None
        start = self._monotonic()
        told = False
        try:
            while not _try_lock(fd):
                holder = self.holder(fd)
                # A holder named in the file but dead is a short-lived child that took
                # the lock as its parent died (the probe of honoured()): it lets go at once.
                waited = self._monotonic() - start
                limit = wait_for_operator if _alive(holder.pid) else max(wait_for_operator, 5.0)
                if (holder.is_daemon and _alive(holder.pid)) or waited >= limit:
                    raise self._refusal(holder)
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                # A short poll: lockf has no timed wait, and an operator command is brief.
                if (stop or threading.Event()).wait(0.05):
                    raise self._refusal(holder)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()} {self.role}\n".encode())
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (the file stays: see the module docstring)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the lock

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def holder(self, fd: int | None = None) -> Holder:
        """Read who holds the lock from its file (retrying while the holder writes it)."""
        text = ""
        for _ in range(20):
            try:
                if fd is not None:
                    os.lseek(fd, 0, os.SEEK_SET)
                    text = os.read(fd, 200).decode(errors="replace")
                else:
                    text = self.path.read_text(errors="replace")
            except OSError:
                text = ""
            if text.strip():
                break
            _PAUSE.wait(0.01)  # the holder truncates, then writes: a brief empty window
        parts = text.split()
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        role = parts[1] if len(parts) > 1 else DAEMON
        return Holder(pid, role)

    def honoured(self) -> bool | None:
        """While held: True if a child process is refused the lock, False if it got it too.

        None when no child could be started to ask.
        """
        if self._fd is None or not sys.executable:
            return None
        try:
            done = subprocess.run(
                [sys.executable, "-c", _PROBE, str(self.path)],
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode == 3:
            return True
        if done.returncode == 0:
            return False
        return None

    def _refusal(self, holder: Holder) -> StateLockedError:
        conf = f" -c {self._config_path}" if self._config_path is not None else ""
        if holder.is_daemon and self._daemon_advice is not None:
            advice = self._daemon_advice
        elif holder.is_daemon:
            advice = (
                f"stop it first (shotgunEventDaemon{conf} stop), or give this one its own "
                "eventIdFile"
            )
        else:
            advice = "run this again when that command has finished"
        return StateLockedError(
            f"state file {self.state_path} is in use by {holder.describe()} "
            f"(lock {self.path}); {advice}"
        )


def _alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (unknown counts as alive: refuse, never guess)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows only
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def mount_warning(folder: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """A warning when ``folder`` is on NFS mounted without locks; a note for NFS with locks."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(folder)
    best: tuple[str, str, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[2], fields[3])
    if best is None or not best[1].startswith("nfs"):
        return None
    point, kind, options = best
    if "nolock" in options.split(",") or "local_lock=all" in options.split(","):
        return (
            f"state folder {folder} is on {kind} mount {point} with '{options}': file locks "
            "are not shared between hosts, so a second daemon on another host is not fenced "
            "off; mount it with 'lock' or keep the state on a local disk"
        )
    return None


def warn_if_unfenced(lock: StateLock) -> list[str]:
    """Warnings about a held lock that other processes may not see (for the daemon's log)."""
    notes = []
    mount = mount_warning(lock.path.parent)
    if mount is not None:
        notes.append(mount)
    if lock.honoured() is False:
        notes.append(
            f"the lock {lock.path} is not honoured by this file system (a second process "
            "took it too): a second daemon on this state file would not be refused; keep "
            "the state on a local disk, or on NFS with lockd running"
        )
    return notes
