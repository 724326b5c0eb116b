"""Retry site calls in bursts with backoff, as the original did but without tight loops.

The original tried ``max_conn_retries`` times back to back, then logged an
ERROR (which emails) and slept ``conn_retry_sleep``. We keep the burst and the
ERROR, and wait with exponential backoff between the attempts of a burst.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from shotgun_events.client.outage import Outage, is_unavailable
from shotgun_events.errors import SiteAuthError, SiteError

log = logging.getLogger("engine.source")

T = TypeVar("T")


class SiteRetry:
    """Run a site call until it succeeds or a stop is requested."""

    def __init__(
        self,
        *,
        max_attempts: int,
        burst_sleep: float,
        wait: Callable[[float], bool],
        first_delay: float = 1.0,
        config_hint: str = "the [shotgun] section of the config file",
        outage: Outage | None = None,
    ) -> None:
        self._max_attempts = max(1, max_attempts)
        self._burst_sleep = burst_sleep
        self._wait = wait
        self._first_delay = first_delay
        self._config_hint = config_hint
        #: Told when a read fails because the site is unavailable, and when one succeeds.
        self.outage = outage
        self.failures = 0

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th consecutive failure of a burst."""
        if attempt >= self._max_attempts:
            return self._burst_sleep
        return float(min(self._first_delay * 2.0 ** (attempt - 1), self._burst_sleep))

    def call(self, what: str, fn: Callable[[], T]) -> T | None:
        """Return ``fn()``, retrying on site errors; None when a stop was requested meanwhile."""
        attempt = 0
        while True:
            try:
                result = fn()
            except SiteAuthError as exc:
                self.failures += 1
                log.critical(
                    "%s: %s; fix the script name and key in %s (the script must exist on "
                    "the site and be active); retrying in %.1f s",
                    what,
                    exc,
                    self._config_hint,
                    self._burst_sleep,
                )
                delay = self._burst_sleep
                attempt = 0
            except SiteError as exc:
                self.failures += 1
                attempt += 1
                outage = self.outage is not None and is_unavailable(exc)
                if outage:
                    assert self.outage is not None
                    self.outage.report(exc)  # logged (and mailed) once per outage, there
                delay = self.delay_after(attempt)
                if attempt >= self._max_attempts:
                    # An outage is mailed once when it starts (outage.py), not at every burst.
                    log.log(
                        logging.WARNING if outage else logging.ERROR,
                        "%s failed %d times in a row (%s); retrying in %.1f s",
                        what,
                        attempt,
                        exc,
                        delay,
                    )
                    attempt = 0
                else:
                    log.warning(
                        "%s failed (%s); attempt %d of %d, retrying in %.1f s",
                        what,
                        exc,
                        attempt,
                        self._max_attempts,
                        delay,
                    )
            else:
                if self.outage is not None:
                    self.outage.answered()
                return result
            if self._wait(delay):
                return None
