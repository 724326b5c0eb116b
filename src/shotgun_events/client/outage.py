"""Whether the site is unavailable: which errors say so, since when, and the wait for its return.

An outage starts when the daemon's own read or a plugin's site call fails
because the site cannot answer: the connection is refused, reset or times
out, the site's name does not resolve, TLS breaks off, or the site answers
HTTP 5xx or 429 (too busy). That is not the plugin's failure: its event is
held and run again once the site answers, without using a retry, writing a
dead letter or switching the plugin off. A ``Fault`` (the site refused the
request: an unknown field, a permission) is the request's problem, and any
other exception of a plugin is the plugin's, unless it was raised while
handling one of those errors (its cause or context is one).

The outage ends when a probe gets an answer: the daemon's own read of the
newest event id, sent 1 s after the outage starts, then twice as long after
each failure, up to ``conn_retry_sleep``. A successful read of the engine's
ends it too. Each outage is logged once at ERROR when it starts (so it is
mailed once, not once per plugin) and once when it ends.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from xmlrpc.client import ProtocolError

from shotgun_api3.lib.httplib2 import HttpLib2Error

log = logging.getLogger("engine.site")

#: Errors of the network or the connection: the site could not be asked or did not answer.
_CONNECTION_ERRORS = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    socket.gaierror,
    ssl.SSLError,
    http.client.HTTPException,
    HttpLib2Error,
)
#: HTTP answers that mean the site cannot serve now, whatever the request.
_BUSY_STATUSES = (429, 500, 502, 503, 504)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from or while handling) means the site
    could not answer: a connection error, a timeout, or an HTTP 5xx or 429 answer."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ProtocolError):
            return current.errcode in _BUSY_STATUSES or current.errcode >= 500
        if isinstance(current, _CONNECTION_ERRORS):
            return True
        current = current.__cause__ or current.__context__
    return False


class Outage:
    """The site's availability as the daemon sees it, shared by its reads and its plugins."""

    def __init__(
        self,
        probe: Callable[[], object],
        *,
        max_wait: float = 60.0,
        first_wait: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._probe = probe
        self._max_wait = max(first_wait, max_wait)
        self._first_wait = first_wait
        self._clock = clock
        self._cond = threading.Condition()
        self._closed = False
        self._prober: threading.Thread | None = None
        #: Wall time the outage started, None while the site answers.
        self.since: float | None = None
        #: What the first failure of the outage said.
        self.reason = ""
        #: Outages so far, and events held (callbacks that met one) in all of them.
        self.count = 0
        self.held = 0

    @property
    def down(self) -> bool:
        """Whether the site is unavailable now."""
        return self.since is not None

    def describe(self) -> str | None:
        """``site unavailable since HH:MM:SS UTC (reason)``, or None while it answers."""
        since = self.since
        if since is None:
            return None
        when = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"site unavailable since {when} ({self.reason})"

    def report(self, error: BaseException | str, *, held: bool = False) -> None:
        """A read or a call failed because the site could not answer: an outage goes on or
        starts (logged once, probed until the site answers). ``held``: an event waits for it."""
        with self._cond:
            if held:
                self.held += 1
            if self.since is not None or self._closed:
                return
            self.since = self._clock()
            self.reason = _one_line(error)
            self.count += 1
            self._prober = threading.Thread(
                target=self._probe_until_up, name="site-probe", daemon=True
            )
            self._prober.start()
        log.error(
            "the site is unavailable (%s); holding every event that could call it, and asking "
            "the site again with growing waits until it answers",
            self.reason,
        )

    def answered(self) -> None:
        """A read or a call got an answer: an outage, if any, is over."""
        if self.since is None:
            return
        with self._cond:
            since, self.since = self.since, None
            self._cond.notify_all()
        if since is not None:
            log.warning(
                "the site answers again after %.0f s of outage; the held events run now",
                self._clock() - since,
            )

    def wait(self, stop: Callable[[float], bool], step: float = 0.25) -> bool:
        """Wait until the site answers; False when ``stop(seconds)`` (a stop-aware wait, the
        heartbeat's) says a stop was requested first, or the daemon is closing."""
        while self.since is not None and not self._closed:
            if stop(step):
                return False
        return self.since is None

    def close(self) -> None:
        """Stop probing (the daemon stops)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._prober is not None:
            self._prober.join(5.0)

    def _probe_until_up(self) -> None:
        delay = self._first_wait
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self.since is None, timeout=delay)
                if self._closed or self.since is None:
                    return
            try:
                self._probe()
            except Exception as exc:
                log.debug("site probe failed (%s); asking again in %.0f s", _one_line(exc), delay)
                delay = min(delay * 2, self._max_wait)
                continue
            self.answered()
            return


def _one_line(error: BaseException | str) -> str:
    if isinstance(error, str):
        text = error
    elif isinstance(error, ProtocolError):
        text = f"HTTP {error.errcode} {error.errmsg}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:200]
