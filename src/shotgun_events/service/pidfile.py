"""The daemon's pid file and the process it names: atomic creation, stale detection, status."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shotgun_events.errors import ControlError

log = logging.getLogger("engine.service")

NAME = "shotgunEventDaemon"

#: Words one of which appears in the command line of every shotgunEventDaemon process
#: (the console script, ``python -m shotgun_events`` or an import of the package).
DAEMON_MARKERS = (b"shotgunEventDaemon", b"shotgun_events")

_PROC = Path("/proc")


class AlreadyRunning(ControlError):  # noqa: N818 - the name the engine and CLI use
    """Another shotgunEventDaemon holds the pid file and is alive."""

    def __init__(self, pid: int, pid_file: Path, config_path: Path | None = None) -> None:
        self.pid = pid
        self.pid_file = pid_file
        conf = f" -c {config_path}" if config_path is not None else ""
        super().__init__(
            f"shotgunEventDaemon is already running as pid {pid} (pid file {pid_file}); "
            f"stop it first with: shotgunEventDaemon{conf} stop"
        )


def _proc_available() -> bool:
    return (_PROC / "self" / "stat").exists()


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if unavailable."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text(errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or ")".
    return raw[raw.rfind(")") + 2 :].split()


def is_alive(pid: int) -> bool:
    """Whether a process with this pid exists and has not exited (zombies count as exited)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_is_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to another user
    except OSError:
        return False
    if _proc_available():
        fields = _proc_stat_fields(pid)
        # A zombie has exited; only its parent has not collected the status yet.
        return fields is not None and fields[0] not in ("Z", "X")
    return True


def _windows_is_alive(pid: int) -> bool:
    # On Windows os.kill(pid, 0) would terminate the process, so ask the kernel instead.
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def is_daemon_process(pid: int) -> bool:
    """Whether the live process ``pid`` is a shotgunEventDaemon (by its command line)."""
    if not is_alive(pid):
        return False
    if not _proc_available():
        # Without /proc there is no portable, dependency-free way to tell; trust the pid.
        return True
    try:
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
    except PermissionError:
        return True  # hidepid or similar: cannot tell, so do not call it stale
    except OSError:
        return False
    return any(marker in cmdline for marker in DAEMON_MARKERS)


def process_uptime(pid: int, fallback_start: float | None = None) -> float | None:
    """Seconds since ``pid`` started, from /proc; else since ``fallback_start`` (epoch)."""
    fields = _proc_stat_fields(pid) if _proc_available() else None
    if fields is not None and len(fields) > 19:
        try:
            ticks = int(fields[19])  # field 22 (starttime) of proc(5), in clock ticks
            since_boot = float((_PROC / "uptime").read_text().split()[0])
            return max(0.0, since_boot - ticks / os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError, IndexError):
            pass
    if fallback_start is None:
        return None
    return max(0.0, time.time() - fallback_start)


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Serialise starters that race for the same pid file (best effort, POSIX only)."""
    try:
        import fcntl
    except ImportError:  # Windows: no detached mode there anyway
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


class PidFile:
    """A pid file that is created atomically, owner-only, and never trusted when stale."""

    def __init__(self, path: Path, *, config_path: Path | None = None) -> None:
        self.path = Path(path)
        self.config_path = config_path
        #: The pid named by a stale pid file that :meth:`acquire` replaced, if any.
        self.stale_pid: int | None = None

    def __repr__(self) -> str:
        return f"PidFile({str(self.path)!r})"

    def read(self) -> int | None:
        """The pid in the file; None if the file is missing, empty or not a pid."""
        try:
            return self._read_strict()
        except OSError:
            return None

    def _read_strict(self) -> int | None:
        try:
            text = self.path.read_text(encoding="ascii", errors="replace").strip()
        except FileNotFoundError:
            return None
        try:
            pid = int(text)
        except ValueError:
            return None
        return pid if pid > 0 else None

    def running_pid(self) -> int | None:
        """The pid in the file if that process is alive and is a shotgunEventDaemon."""
        pid = self.read()
        if pid is None or not is_daemon_process(pid):
            return None
        return pid

    def exists(self) -> bool:
        """Whether the pid file is present (whatever it holds)."""
        return self.path.exists() or self.path.is_symlink()

    def acquire(self) -> None:
        """Write this process's pid; raise AlreadyRunning if a live daemon holds the file.

        A stale file (its process is dead, or is some other program that reused
        the pid) is replaced, and its pid kept in :attr:`stale_pid`.
        """
        me = os.getpid()
        self.stale_pid = None
        folder = self.path.parent
        temp = folder / f".{self.path.name}.{me}.tmp"
        self._write_temp(temp, me)
        try:
            with _folder_lock(folder):
                self._install(temp, me)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _write_temp(self, temp: Path, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # left over from a crash of an earlier process with our pid
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # exact mode whatever the umask
            os.write(fd, f"{pid}\n".encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _install(self, temp: Path, me: int) -> None:
        for _ in range(5):
            try:
                # link() fails if the name exists: the same guarantee as O_EXCL, but
                # readers never see a half-written file.
                os.link(temp, self.path)
                return
            except FileExistsError:
                pass
            pid = self.read()
            if pid is not None and pid != me and is_daemon_process(pid):
                raise AlreadyRunning(pid, self.path, self.config_path)
            if not self.exists():
                continue  # removed meanwhile by a stopping daemon; try the link again
            # Our own pid can be in the file after a container restart; that is stale too.
            self.stale_pid = pid
            log.warning(
                "removing stale pid file %s (pid %s is not running)",
                self.path,
                pid if pid is not None else "unknown",
            )
            os.replace(temp, self.path)
            return
        raise ControlError(f"could not create the pid file {self.path}; it keeps changing")

    def release(self) -> None:
        """Remove the pid file, but only if it still names this process."""
        if self.read() != os.getpid():
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def remove_stale(self) -> None:
        """Remove the file if it does not name a live daemon (used after stop or kill)."""
        with _folder_lock(self.path.parent):
            if self.running_pid() is None:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()

    def still_ours(self) -> bool:
        """Whether the file still exists and names this process; cheap enough for every loop."""
        try:
            return self._read_strict() == os.getpid()
        except OSError as exc:
            # A transient read error is no reason to stop a healthy daemon.
            log.debug("could not read pid file %s: %s", self.path, exc)
            return True


@dataclass(frozen=True)
class ProcessStatus:
    """Whether the daemon named by the pid file runs, with the LSB status exit code."""

    pid_file: Path
    pid: int | None
    running: bool
    uptime: float | None = None
    pid_file_exists: bool = False

    @property
    def exit_code(self) -> int:
        """LSB: 0 running, 1 dead but pid file exists, 3 not running."""
        if self.running:
            return 0
        return 1 if self.pid_file_exists else 3

    def describe(self) -> str:
        """One line for the operator."""
        if self.running:
            up = f", up {_duration(self.uptime)}" if self.uptime is not None else ""
            return f"{NAME} is running (pid {self.pid}{up})"
        if self.pid_file_exists:
            return (
                f"{NAME} is not running, but its pid file {self.pid_file} remains "
                f"(pid {self.pid} is gone); the next start replaces it"
            )
        return f"{NAME} is not running"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def status_process(*, pid_file: Path) -> ProcessStatus:
    """Inspect the pid file and its process (no signals sent)."""
    pidfile = PidFile(pid_file)
    pid = pidfile.read()
    exists = pidfile.exists()
    if pid is None or not is_daemon_process(pid):
        return ProcessStatus(pid_file, pid, running=False, pid_file_exists=exists)
    try:
        started = pid_file.stat().st_mtime
    except OSError:
        started = None
    return ProcessStatus(
        pid_file, pid, running=True, uptime=process_uptime(pid, started), pid_file_exists=exists
    )
