"""Restartable processes, the record of every process life, and a supervisor that restarts.

Each process the run starts (site, redis-server, workers, daemon) is a
``Managed``: started and killed by the driver, its lives recorded in
``Lives`` (pid, start, end, how it ended). The ``Supervisor`` plays
systemd's ``Restart=always``: a process that exits by itself is noted as an
``Incident`` (the report decides whether anything excuses it) and started
again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Life:
    """One run of one process."""

    role: str
    pid: int
    started: float
    ended: float | None = None
    #: "sigkill" (by the driver), "sigterm exit N", "exit N" (by itself).
    how: str | None = None


@dataclass(frozen=True)
class Incident:
    """A process that exited without being told to."""

    at: float
    role: str
    pid: int
    code: int
    tail: str


class Lives:
    """Every process life of the run; thread-safe."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self.all: list[Life] = []
        self.incidents: list[Incident] = []

    def begin(self, role: str, pid: int) -> Life:
        """Record a process start."""
        life = Life(role, pid, time.time())
        with self._lock:
            self.all.append(life)
        return life

    def end(self, life: Life, how: str) -> None:
        """Record how a process ended."""
        with self._lock:
            if life.ended is None:
                life.ended, life.how = time.time(), how

    def incident(self, item: Incident) -> None:
        """Note a process that exited by itself."""
        with self._lock:
            self.incidents.append(item)


class Managed:
    """One restartable process: ``wanted`` says whether it should be running."""

    def __init__(
        self,
        role: str,
        lives: Lives,
        command: Callable[[], Sequence[str]],
        *,
        env: dict[str, str] | None = None,
        output: Path,
        cwd: Path | None = None,
    ) -> None:
        """Describe the process; nothing starts yet."""
        self.role = role
        self.lives = lives
        self._command = command
        self._env = env
        self.output = output
        self._cwd = cwd
        self.lock = threading.RLock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.life: Life | None = None
        self.wanted = False

    @property
    def pid(self) -> int:
        """The running process's pid."""
        assert self.proc is not None, f"{self.role} never started"
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process runs now."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start it (it must not be running) and mark it wanted."""
        with self.lock:
            assert not self.alive(), f"{self.role} is already running"
            with open(self.output, "ab") as out:
                out.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
                out.flush()
                # Own session: a kill reaches the whole group, nothing outlives the test.
                self.proc = subprocess.Popen(
                    list(self._command()),
                    env=self._env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self._cwd,
                    start_new_session=True,
                )
            self.life = self.lives.begin(self.role, self.proc.pid)
            self.wanted = True

    def send(self, sig: int) -> bool:
        """Send a signal to the process; False when it is not running."""
        with self.lock:
            if not self.alive():
                return False
            assert self.proc is not None
            self.proc.send_signal(sig)
            return True

    def kill(self) -> None:
        """SIGKILL the process group and wait for it; it stays down until started."""
        with self.lock:
            self.wanted = False
            if self.proc is None:
                return
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
                if self.life is not None:
                    self.lives.end(self.life, "sigkill")
            self._note_exit()

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM and wait up to ``timeout``; the exit code, or None if it did not exit."""
        with self.lock:
            self.wanted = False
            if not self.alive():
                return self._note_exit()
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            if self.life is not None:
                self.lives.end(self.life, f"sigterm exit {code}")
            return code

    def _note_exit(self) -> int | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        code = self.proc.returncode
        if self.life is not None:
            self.lives.end(self.life, f"exit {code}")
        return code

    def exited_by_itself(self) -> int | None:
        """The exit code if it was wanted up and exited on its own (recorded once), else None."""
        with self.lock:
            if not self.wanted or self.proc is None or self.proc.poll() is None:
                return None
            code = self.proc.returncode
            assert self.life is not None
            if self.life.ended is not None:
                return None
            self.lives.end(self.life, f"exit {code}")
            self.lives.incident(Incident(time.time(), self.role, self.proc.pid, code, self.tail()))
            return code

    def tail(self, size: int = 1500) -> str:
        """The end of the process's output."""
        try:
            data = self.output.read_bytes()[-size:]
        except OSError:
            return ""
        return data.decode(errors="replace")

    def close(self) -> None:
        """Kill whatever is left of it (cleanup, even after a failure)."""
        with self.lock:
            self.wanted = False
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(30)
            if self.proc is not None:
                # Children left in its group (none expected) go too.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)


@dataclass
class Supervisor:
    """Restarts processes that exit by themselves, as ``Restart=always`` would."""

    processes: list[Managed]
    delay: float = 1.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching."""
        self._thread = threading.Thread(target=self._loop, name="chaos-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the final stop, so a clean exit is not restarted)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            for process in self.processes:
                if process.exited_by_itself() is None:
                    continue
                if self._stop.wait(self.delay):
                    return
                with process.lock:
                    if process.wanted and not process.alive():
                        process.start()
