"""Stop and reload requests from signals, turned into flags the loop acts on."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

#: Signals that ask the daemon to stop; the second one forces an immediate exit.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGBREAK") if hasattr(signal, name)
)
#: Signals that ask the daemon to reload its plugins (POSIX only).
RELOAD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGHUP",) if hasattr(signal, name))

log = logging.getLogger("engine.signals")


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Python-level handler: the real work happens in the watcher thread."""


class StopFlag:
    """Flags set by SIGTERM/SIGINT (stop) and SIGHUP (reload); the loop acts on them.

    Signal handlers never touch locks: ``threading.Event.set()`` from a Python
    signal handler can deadlock when the signal lands while the main thread is
    inside ``Event.wait()``. Instead the C-level handler writes the signal number
    to a socket (``signal.set_wakeup_fd``) and a small daemon thread reads it and
    sets the events. That thread also performs the forced exit on a second stop
    signal, so it works even while the main thread is stuck in a long callback.
    """

    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        #: Name of the signal that requested the stop ("SIGTERM"), or a reason given
        #: to :meth:`request_stop`; for the loop's log message.
        self.stop_reason: str | None = None
        self._stop_signals_seen = 0
        self._installed = False
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._previous_wakeup_fd = -1

    def install(self) -> None:
        """Install the handlers; call once, from the main thread."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("StopFlag.install() must be called from the main thread")
        if self._installed:
            return
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)  # set_wakeup_fd requires a non-blocking fd
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._writer.fileno())
        for signum in STOP_SIGNALS + RELOAD_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, _ignore)
        self._installed = True
        threading.Thread(
            target=self._watch, args=(self._reader,), name="signal-watcher", daemon=True
        ).start()

    def uninstall(self) -> None:
        """Restore the previous handlers (main thread only); mostly for tests."""
        if not self._installed:
            return
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        self._previous_handlers.clear()
        self._installed = False
        if self._writer is not None:
            self._writer.close()  # the watcher sees EOF and ends
            self._writer = None

    def _watch(self, reader: socket.socket) -> None:
        with reader:
            while True:
                try:
                    data = reader.recv(64)
                except OSError:
                    return
                if not data:
                    return
                for signum in data:
                    self._on_signal(signum)

    def _on_signal(self, signum: int) -> None:
        # This runs in the watcher thread, not in a signal handler: logging is safe here.
        name = signal.Signals(signum).name
        if signum in STOP_SIGNALS:
            self._stop_signals_seen += 1
            if self._stop_signals_seen > 1:
                self._force_exit(signum)
            log.info(
                "%s received; stopping after the current event (send it again to force the exit)",
                name,
            )
            self.request_stop(name)
        elif signum in RELOAD_SIGNALS:
            log.info(
                "%s received; reloading the configuration and plugins at the next safe point", name
            )
            self.reload_requested.set()

    @staticmethod
    def _force_exit(signum: int) -> None:
        # Cleanup cannot run safely while the main thread is in the middle of work,
        # so skip it: the pid file is recognised as stale at the next start.
        with contextlib.suppress(OSError):
            os.write(
                2,
                f"shotgunEventDaemon: second {signal.Signals(signum).name}; forced exit\n".encode(),
            )
        os._exit(128 + signum)

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop at its next safe point (also used without a signal)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_requested.set()

    def take_reload(self) -> bool:
        """Whether a reload was requested since the last call; clears the request."""
        if self.reload_requested.is_set():
            self.reload_requested.clear()
            return True
        return False

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a stop request; True if one was made."""
        return self.stop_requested.wait(timeout)
