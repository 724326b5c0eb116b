"""Running as a service: start (detached, with readiness), foreground, stop, restart, status."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from shotgun_events.errors import ControlError, ShotgunEventsError
from shotgun_events.service.pidfile import (
    NAME,
    AlreadyRunning,
    PidFile,
    ProcessStatus,
    is_alive,
    is_daemon_process,
    status_process,
)
from shotgun_events.service.sdnotify import (
    Notifier,
    NullReporter,
    ReadinessPipe,
    ReadyReporter,
    Reporters,
)

log = logging.getLogger("engine.service")

__all__ = [
    "LaunchOptions",
    "NullReporter",
    "ProcessStatus",
    "ReadinessPipe",
    "ReadyReporter",
    "Reporters",
    "daemonize",
    "foreground",
    "restart",
    "start",
    "status_process",
    "stop",
]


#: The engine's main function: runs until stopped, returns the process exit code.
Run = Callable[[ReadyReporter], int]
#: Foreground checks (config, plugin folders, state file) that return the main function.
Prepare = Callable[[], Run]


def _daemon_signal_map() -> dict[int, object]:
    # Terminal job-control signals are ignored; SIGTERM raises SystemExit until the
    # engine installs its own StopFlag, so an early stop still releases the pid file.
    names = {"SIGTSTP": None, "SIGTTIN": None, "SIGTTOU": None, "SIGTERM": "terminate"}
    return {
        getattr(signal, name): action for name, action in names.items() if hasattr(signal, name)
    }


@contextlib.contextmanager
def daemonize(
    *,
    pid_file: Path,
    working_directory: Path,
    preserve_fds: Sequence[int],
    umask: int = 0o027,
    detach: bool = True,
    config_path: Path | None = None,
) -> Iterator[PidFile]:
    """Become a daemon (python-daemon), then hold our own pid file until the block ends."""
    import daemon  # only the detached path needs it

    context = daemon.DaemonContext(
        detach_process=detach,
        working_directory=str(working_directory),
        umask=umask,
        files_preserve=list(preserve_fds),
        pidfile=None,  # ours: atomic, owner-only, stale-aware
        signal_map=_daemon_signal_map(),
    )
    pidfile = PidFile(pid_file, config_path=config_path)
    with context:
        pidfile.acquire()
        try:
            yield pidfile
        finally:
            pidfile.release()


def _prepare(prepare: Prepare, err: TextIO) -> Run | int:
    try:
        return prepare()
    except ShotgunEventsError as exc:
        print(f"{NAME}: {exc}", file=err)
        return exc.exit_code


@dataclass(frozen=True)
class LaunchOptions:
    """How ``start`` and ``restart`` detach the daemon."""

    pid_file: Path
    working_directory: Path = Path("/")
    preserve_fds: Sequence[int] = ()
    umask: int = 0o027
    ready_timeout: float = 30.0
    config_path: Path | None = None


def start(
    *,
    prepare: Prepare,
    launch: LaunchOptions,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Check in the foreground, detach, and return 0 only once the daemon reports ready.

    ``prepare`` runs first, in this process, so configuration errors reach the
    terminal with their exit code. It must not start threads or open sockets
    (they do not survive the fork); the returned ``run`` does that in the daemon.
    """
    pid = PidFile(launch.pid_file, config_path=launch.config_path).running_pid()
    if pid is not None:
        print(f"{NAME}: {AlreadyRunning(pid, launch.pid_file, launch.config_path)}", file=err)
        return AlreadyRunning.exit_code
    run = _prepare(prepare, err)
    if isinstance(run, int):
        return run
    return _launch(run, launch, out=out, err=err)


def restart(
    *,
    prepare: Prepare,
    launch: LaunchOptions,
    stop_timeout: float = 30.0,
    force: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Check the new configuration first, then stop the running daemon, then start again.

    A broken configuration therefore leaves the running daemon alone.
    """
    run = _prepare(prepare, err)
    if isinstance(run, int):
        print(f"{NAME}: not restarted; the running daemon (if any) was left alone", file=err)
        return run
    code = stop(pid_file=launch.pid_file, timeout=stop_timeout, force=force, out=out)
    if code != 0:
        return code
    return _launch(run, launch, out=out, err=err)


def _launch(run: Run, launch: LaunchOptions, *, out: TextIO, err: TextIO) -> int:
    if not hasattr(os, "fork"):
        print(
            f"{NAME}: start needs a POSIX system; on Windows run "
            f"'{NAME} foreground' under a service manager",
            file=err,
        )
        return ControlError.exit_code
    # Buffered output would otherwise be written twice, once by each process.
    for stream in (out, err, sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked process
        code = 1
        try:
            os.close(read_fd)
            code = _daemon_main(
                run,
                ReadinessPipe(write_fd),
                pid_file=launch.pid_file,
                working_directory=launch.working_directory,
                preserve_fds=[write_fd, *launch.preserve_fds],
                umask=launch.umask,
                config_path=launch.config_path,
            )
        finally:
            os._exit(code)  # never return into the caller's stack in the daemon
    os.close(write_fd)
    try:
        return _await_readiness(
            read_fd, launch.ready_timeout, pid_file=launch.pid_file, out=out, err=err
        )
    finally:
        os.close(read_fd)
        # The first child exits as soon as it has forked the daemon; collect it.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, os.WNOHANG)


def _daemon_main(
    run: Run,
    reporter: ReadinessPipe,
    *,
    pid_file: Path,
    working_directory: Path,
    preserve_fds: Sequence[int],
    umask: int,
    config_path: Path | None,
) -> int:
    try:
        with daemonize(
            pid_file=pid_file,
            working_directory=working_directory,
            preserve_fds=preserve_fds,
            umask=umask,
            config_path=config_path,
        ) as pidfile:
            reporter.started(os.getpid())
            if pidfile.stale_pid is not None:
                reporter.note(
                    f"removed stale pid file {pid_file} (pid {pidfile.stale_pid} was not running)"
                )
            code = run(reporter)
        reporter.failed(f"the daemon stopped before it was ready (exit code {code})", code)
        return code
    except ShotgunEventsError as exc:
        reporter.failed(str(exc), exc.exit_code)
        return exc.exit_code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        reporter.failed(f"the daemon stopped before it was ready ({exc})", code)
        return code
    except BaseException as exc:
        log.exception("the daemon failed")
        reporter.failed(f"unexpected error: {exc!r}; see the log", 1)
        return 1
    finally:
        reporter.close()


def _await_readiness(fd: int, timeout: float, *, pid_file: Path, out: TextIO, err: TextIO) -> int:
    deadline = time.monotonic() + timeout
    pending = b""
    pid: int | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            where = f"pid {pid}" if pid is not None else f"see {pid_file}"
            print(
                f"{NAME}: not ready after {timeout:g} s; it may still be starting ({where}); "
                "check its log, and stop it with the stop command if needed",
                file=err,
            )
            return 1
        if not select.select([fd], [], [], remaining)[0]:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            print(f"{NAME}: the daemon exited before it was ready; see its log", file=err)
            return 1
        pending += chunk
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            word, _, rest = raw.decode("utf-8", "replace").partition(" ")
            if word == "PID":
                pid = int(rest)
            elif word == "NOTE":
                print(f"{NAME}: {rest}", file=out)
            elif word == "READY":
                print(f"{NAME} started (pid {pid})", file=out)
                return 0
            elif word == "ERROR":
                code, _, message = rest.partition(" ")
                print(f"{NAME}: {message}", file=err)
                return int(code) if code.isdigit() and int(code) else 1


def foreground(
    *,
    pid_file: Path | None,
    prepare: Prepare,
    config_path: Path | None = None,
    reporter: ReadyReporter | None = None,
    err: TextIO = sys.stderr,
) -> int:
    """Run in this process (systemd Type=notify, containers, Windows); readiness via sd_notify."""
    run = _prepare(prepare, err)
    if isinstance(run, int):
        return run
    pidfile = PidFile(pid_file, config_path=config_path) if pid_file is not None else None
    if pidfile is not None:
        try:
            pidfile.acquire()
        except ShotgunEventsError as exc:
            print(f"{NAME}: {exc}", file=err)
            return exc.exit_code
        if pidfile.stale_pid is not None:
            print(
                f"{NAME}: removed stale pid file {pid_file} "
                f"(pid {pidfile.stale_pid} was not running)",
                file=err,
            )
    report = reporter if reporter is not None else Notifier.from_environ()
    try:
        return run(report)
    except ShotgunEventsError as exc:
        print(f"{NAME}: {exc}", file=err)
        report.failed(str(exc), exc.exit_code)
        return exc.exit_code
    finally:
        if pidfile is not None:
            pidfile.release()


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` exits or ``timeout`` passes; True if it exited."""
    deadline = time.monotonic() + timeout
    pidfd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(pid)  # Linux: readable the moment the process exits
    try:
        while is_alive(pid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if pidfd is not None:
                if select.select([pidfd], [], [], remaining)[0]:
                    return True
            else:
                time.sleep(min(remaining, 0.05))  # no pidfd: short polls keep stop prompt
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def stop(
    *, pid_file: Path, timeout: float = 30.0, force: bool = False, out: TextIO = sys.stdout
) -> int:
    """SIGTERM the daemon and wait up to ``timeout`` s; with ``force``, SIGKILL after that."""
    pidfile = PidFile(pid_file)
    pid = pidfile.read()
    if pid is None or not is_daemon_process(pid):
        if pidfile.exists():
            pidfile.remove_stale()
            print(f"{NAME} is not running (removed stale pid file {pid_file})", file=out)
        else:
            print(f"{NAME} is not running", file=out)
        return 0  # LSB: stopping a stopped service succeeds
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        print(f"{NAME}: not allowed to signal pid {pid}; run stop as the daemon's user", file=out)
        return 4  # LSB: insufficient privilege
    if _wait_for_exit(pid, timeout):
        pidfile.remove_stale()
        print(f"{NAME} stopped (pid {pid})", file=out)
        return 0
    if not force:
        print(
            f"{NAME} (pid {pid}) still running after {timeout:g} s; "
            "wait for the current event to finish, or use --force",
            file=out,
        )
        return 1
    with contextlib.suppress(ProcessLookupError):
        # Windows has no SIGKILL; there os.kill() terminates the process for any signal.
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    _wait_for_exit(pid, 10.0)
    pidfile.remove_stale()
    print(f"{NAME} killed (pid {pid}) after {timeout:g} s; removed pid file {pid_file}", file=out)
    return 0
