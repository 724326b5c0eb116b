"""Liveness: has the engine loop made progress recently, whatever the site does.

The engine's heartbeat (once per loop, and every second or so while it waits
between site or callback retries) calls ``beat()`` and pings the systemd
watchdog. ``/livez`` answers from ``check()``; under a watchdog its limit is
WatchdogSec (``live_timeout``), so a probe and systemd call a hang at the
same moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Liveness:
    """The time of the engine loop's last heartbeat, and whether it is recent enough."""

    def __init__(self, timeout: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._monotonic = monotonic
        self._last = monotonic()

    def beat(self) -> None:
        """The engine loop is making progress now."""
        self._last = self._monotonic()

    def age(self) -> float:
        """Seconds since the last heartbeat."""
        return max(0.0, self._monotonic() - self._last)

    def check(self) -> tuple[bool, str]:
        """(alive, one-line reason) for ``/livez`` and the watchdog."""
        age = self.age()
        if age <= self.timeout:
            return True, f"alive: the engine loop ran {age:.1f} s ago"
        return False, (
            f"stuck: the engine loop has not run for {age:.0f} s (limit {self.timeout:.0f} s); "
            "a callback or a site call may hang"
        )


def live_timeout(
    configured: float | None,
    *,
    fetch_interval: float,
    request_timeout: float,
    watchdog_interval: float | None,
) -> float:
    """Seconds without a heartbeat after which the daemon counts as hung.

    Configured wins. Under a systemd watchdog it is WatchdogSec (twice the ping
    interval), so /livez fails exactly when systemd would stop getting pings.
    Otherwise long enough for an idle wait plus one site call that times out.
    """
    if configured is not None:
        return configured
    if watchdog_interval is not None:
        return watchdog_interval * 2
    return max(60.0, 2 * (fetch_interval + request_timeout))
