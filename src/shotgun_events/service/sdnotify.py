"""Readiness reporting: systemd's sd_notify protocol, and the pipe that `start` waits on."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from typing import Protocol

log = logging.getLogger("engine.service")


class ReadyReporter(Protocol):
    """What the engine calls once start-up is over: after its first successful fetch."""

    def ready(self) -> None:
        """Start-up succeeded; the daemon is doing its job."""

    def failed(self, message: str, exit_code: int = 1) -> None:
        """Start-up failed with this one-line message; the daemon is about to exit."""


class NullReporter:
    """A reporter that ignores everything (when nobody waits for readiness)."""

    def ready(self) -> None:
        """Do nothing."""

    def failed(self, message: str, exit_code: int = 1) -> None:
        """Do nothing."""


class Reporters:
    """Fans one readiness report out to several reporters (the start pipe and sd_notify)."""

    def __init__(self, *reporters: ReadyReporter) -> None:
        self.reporters = reporters

    def ready(self) -> None:
        """Report readiness to every reporter."""
        for reporter in self.reporters:
            reporter.ready()

    def failed(self, message: str, exit_code: int = 1) -> None:
        """Report the failure to every reporter."""
        for reporter in self.reporters:
            reporter.failed(message, exit_code)


class ReadinessPipe:
    """The detached daemon's side of the pipe that `start` waits on.

    Lines: ``PID <n>``, ``NOTE <text>``, then one of ``READY`` or
    ``ERROR <exit code> <text>``. The first final report closes the pipe; later
    calls do nothing, so the engine may call ``failed`` at any time.
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @property
    def reported(self) -> bool:
        """Whether READY or ERROR was already sent."""
        return self._fd is None

    def started(self, pid: int) -> None:
        """Tell the waiting `start` the daemon's pid."""
        self._write(f"PID {pid}")

    def note(self, text: str) -> None:
        """Have the waiting `start` print a line for the operator."""
        self._write(f"NOTE {_one_line(text)}")

    def ready(self) -> None:
        """Start-up succeeded; `start` exits 0."""
        self._write("READY")
        self.close()

    def failed(self, message: str, exit_code: int = 1) -> None:
        """Start-up failed; `start` prints the message and exits with ``exit_code``."""
        self._write(f"ERROR {exit_code or 1} {_one_line(message)}")
        self.close()

    def close(self) -> None:
        """Close the pipe (idempotent)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _write(self, line: str) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, (line + "\n").encode("utf-8", "replace"))
        except OSError as exc:  # `start` gave up waiting and exited (EPIPE)
            log.debug("readiness pipe closed: %s", exc)
            self.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Notifier:
    """Sends sd_notify datagrams to ``$NOTIFY_SOCKET``; every method is a no-op without it.

    It also fits the service's ready-reporter interface (``ready()`` / ``failed()``),
    so the engine can hand it readiness the same way it hands the start pipe.
    """

    def __init__(
        self,
        address: str | None,
        *,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
    ) -> None:
        self.address = address
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """Build a notifier from NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID."""
        return cls(
            environ.get("NOTIFY_SOCKET") or None,
            watchdog_usec=_positive_int(environ.get("WATCHDOG_USEC")),
            watchdog_pid=_positive_int(environ.get("WATCHDOG_PID")),
        )

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given (that is, systemd is listening)."""
        return self.address is not None

    def ready(self, status: str | None = None) -> None:
        """Tell systemd that start-up finished (Type=notify)."""
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def failed(self, message: str, exit_code: int = 1) -> None:
        """Show why start-up failed in ``systemctl status``."""
        self.status(f"failed: {message}")

    def stopping(self) -> None:
        """Tell systemd that a stop is in progress."""
        self._send("STOPPING=1")

    def reloading(self) -> None:
        """Tell systemd that plugins are being reloaded; follow with :meth:`ready`."""
        self._send("RELOADING=1")

    def status(self, text: str) -> None:
        """Set the one-line status shown by ``systemctl status``."""
        self._send("STATUS=" + " ".join(text.splitlines()))

    def watchdog_interval(self) -> float | None:
        """Seconds between :meth:`watchdog` pings (half of WatchdogSec), or None if off."""
        if not self.enabled or self._watchdog_usec is None:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != os.getpid():
            return None  # the watchdog is meant for another process (e.g. our parent)
        return self._watchdog_usec / 2 / 1_000_000

    def watchdog(self) -> None:
        """Tell systemd the main loop is alive (WatchdogSec)."""
        self._send("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket; later messages open a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, message: str) -> None:
        if self.address is None:
            return
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]  # Linux abstract namespace
        elif not address.startswith("/"):
            log.debug("unsupported NOTIFY_SOCKET %r; not notifying systemd", self.address)
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)  # never let systemd stall the loop
            self._sock.sendto(message.encode(), address)
        except (OSError, AttributeError) as exc:  # AttributeError: no AF_UNIX (Windows)
            log.debug("sd_notify %r to %s failed: %s", message, self.address, exc)


def _positive_int(value: str | None) -> int | None:
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number is not None and number > 0 else None
