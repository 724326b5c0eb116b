"""The idle step: the wait between reads, cut short by stop, reload, wake-up or plugin edit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shotgun_events.engine.pacing import Pacing
from shotgun_events.engine.settings import Stats
from shotgun_events.engine.wakeup import WakeUps
from shotgun_events.plugins.protocols import WatcherLike

log = logging.getLogger("engine")


class IdleWait:
    """Wait until the next read is due, serving operator requests and plugin edits meanwhile."""

    def __init__(
        self,
        *,
        pacing: Pacing,
        stop: threading.Event,
        reload: threading.Event,
        wake: WakeUps | None,
        watcher: WatcherLike | None,
        monotonic: Callable[[], float],
        stats: Stats,
        state_retry_interval: float,
        passed: Callable[[int], bool],
        serve_requests: Callable[[], None],
        refresh_plugins: Callable[[], None],
    ) -> None:
        self._pacing = pacing
        self._stop = stop
        self._reload = reload
        self._wake = wake
        self._watcher = watcher
        self._monotonic = monotonic
        self._stats = stats
        self._state_retry_interval = state_retry_interval
        self._passed = passed
        self._serve_requests = serve_requests
        self._refresh_plugins = refresh_plugins

    def wait(self, *, unsaved: bool) -> bool:
        """Wait before the next poll; True when a stop or reload was requested meanwhile.

        The pacing rule (pacing.py) says when: sooner while events keep coming
        or a wake-up names an event not read yet, ``fetch_interval`` when idle;
        ``state_retry_interval`` when a plugin's position is ``unsaved``.
        """
        state_retry: float | None = None
        if unsaved:
            state_retry = self._monotonic() + self._state_retry_interval
        while True:
            self.take_wakeups()
            deadline = state_retry or self._pacing.next_read(self._monotonic())
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return False
            # Wake often enough that a reload request or an edited plugin is seen promptly.
            step = 1.0 if self._watcher is None and self._wake is None else 0.1
            if self._wake is not None:
                self._wake.wait(min(remaining, step))
                if self._stop.is_set() or self._reload.is_set():
                    return True
            elif self._stop.wait(min(remaining, step)) or self._reload.is_set():
                return True
            self._serve_requests()
            if self._watcher is not None and self._watcher.changed.is_set():
                self._refresh_plugins()

    def take_wakeups(self) -> None:
        """Turn pending wake-ups into an early read when they name an event not read yet."""
        if self._wake is None:
            return
        highest = self._wake.take()
        if highest is None:
            return
        self._stats.wakeups += 1
        if highest and self._passed(highest):
            log.debug("wake-up for event %d: every plugin is past it; no read", highest)
            return
        self._stats.wakeups_wanted += 1
        log.debug("wake-up for event %d: reading the event log soon", highest)
        self._pacing.wake(highest)
