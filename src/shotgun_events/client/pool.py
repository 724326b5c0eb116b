"""A pool of HTTP connections per script credential, shared by the plugins' ``Shotgun`` objects.

Each thread calling the site takes a connection of its own for the length of
one call and gives it back afterwards, so plugins on one credential really
call the site in parallel (one connection under a lock made them queue).
Connections open lazily, only when every open one is busy, up to
``max_connections_per_script``; callers beyond that wait for one to come back.
Idle connections are reused (most recently used first, so the rest age out)
and closed after ``idle_timeout``; a connection that raised is closed and
dropped, never handed out again. The server's capabilities (one ``info``
call) are read once per credential. Per-object state such as the session
uuid stays on each ``Shotgun`` object and never travels with a connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shotgun_api3.lib.httplib2 import Http
from shotgun_api3.shotgun import ServerCapabilities, Shotgun

from shotgun_events.client.limits import GatedShotgun
from shotgun_events.config.model import DEFAULTS

log = logging.getLogger("client.pool")

#: Seconds an unused connection stays open before the pool closes it.
IDLE_TIMEOUT = 60.0


def close_http(http: Http) -> None:
    """Close every socket of one httplib2 connection object (never raises)."""
    for conn in list(http.connections.values()):
        try:
            conn.close()
        except Exception:  # a socket that will not close is gone anyway
            log.debug("closing a pooled connection failed", exc_info=True)
    http.connections.clear()


class CredentialPool:
    """The connections and server capabilities of one (script name, key); thread-safe."""

    def __init__(
        self,
        max_size: int = DEFAULTS.integer("daemon", "max_connections_per_script"),
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Allow at most ``max_size`` connections open at once."""
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self._idle_timeout = idle_timeout
        self._monotonic = monotonic
        self._cond = threading.Condition(threading.Lock())
        self._idle: list[tuple[Http, float]] = []
        self._busy: set[int] = set()
        self._open = 0
        self._caps_lock = threading.Lock()
        self.caps: ServerCapabilities | None = None
        #: Connections opened / dropped after a failure / closed idle, since start.
        self.opened = 0
        self.dropped = 0
        self.expired = 0
        #: The most connections lent out at once.
        self.peak_busy = 0

    def acquire(self, create: Callable[[], Http]) -> Http:
        """Lend a connection to the caller: an idle one, a new one if all are busy, or wait."""
        with self._cond:
            while True:
                self._expire_idle()
                if self._idle:
                    http, _ = self._idle.pop()
                    self._lend(http)
                    return http
                if self._open < self.max_size:
                    self._open += 1
                    break
                self._cond.wait()
        try:
            http = create()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise
        with self._cond:
            self.opened += 1
            self._lend(http)
        return http

    def release(self, http: Http) -> None:
        """Take back a connection that served its call well."""
        with self._cond:
            if id(http) not in self._busy:
                return  # already dropped (or never ours): nothing to give back
            self._busy.discard(id(http))
            self._idle.append((http, self._monotonic()))
            self._cond.notify()

    def discard(self, http: Http) -> None:
        """Close and forget a connection that failed; a new one opens when needed."""
        with self._cond:
            if id(http) not in self._busy:
                return
            self._busy.discard(id(http))
            self._open -= 1
            self.dropped += 1
            self._cond.notify()
        close_http(http)

    def server_caps(self, read: Callable[[], ServerCapabilities]) -> ServerCapabilities:
        """The server's capabilities, read once for the credential (by the first caller)."""
        caps = self.caps
        if caps is not None:
            return caps
        with self._caps_lock:
            if self.caps is None:
                self.caps = read()
            return self.caps

    @property
    def lent(self) -> int:
        """Connections lent out now."""
        with self._cond:
            return len(self._busy)

    @property
    def open_count(self) -> int:
        """Connections open now (idle + lent out + being opened)."""
        with self._cond:
            return self._open

    def close_idle(self) -> None:
        """Close every idle connection; lent ones come back and stay usable."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for http, _ in idle:
            close_http(http)

    def _lend(self, http: Http) -> None:
        self._busy.add(id(http))
        self.peak_busy = max(self.peak_busy, len(self._busy))

    def _expire_idle(self) -> None:
        """Close connections idle for longer than the timeout (called with the lock held)."""
        if not self._idle:
            return
        cutoff = self._monotonic() - self._idle_timeout
        # the list is ordered by return time: the oldest come first
        stale = 0
        while stale < len(self._idle) and self._idle[stale][1] < cutoff:
            stale += 1
        if stale:
            old = [http for http, _ in self._idle[:stale]]
            del self._idle[:stale]
            self._open -= stale
            self.expired += stale
            for http in old:
                close_http(http)


class PooledShotgun(GatedShotgun):
    """A ``Shotgun`` that borrows an HTTP connection from a ``CredentialPool`` for each call.

    The object itself (config, session uuid, ...) belongs to one thread, as
    the plugins' ``sg`` always did; only the connection under it is pooled.
    With a ``gate`` (limits.py), each call first waits for its turn.
    """

    def __init__(self, *args: Any, pool: CredentialPool, **kwargs: Any) -> None:
        self._pool = pool
        super().__init__(*args, **kwargs)

    def _get_connection(self) -> Http:
        http = self._connection
        if http is None:
            http = self._pool.acquire(self._new_http)
            self._connection = http
        return http

    def _new_http(self) -> Http:
        self._connection = None
        http = Shotgun._get_connection(self)
        self._connection = None
        return http

    def _close_connection(self) -> None:
        # The client closes its connection when a request on it fails: drop it.
        http, self._connection = self._connection, None
        if http is not None:
            self._pool.discard(http)

    def _call_ended(self) -> None:
        http, self._connection = self._connection, None
        if http is not None:
            self._pool.release(http)

    @property
    def server_caps(self) -> ServerCapabilities:
        """The server's capabilities, read once per credential."""
        caps = self._pool.server_caps(
            lambda: Shotgun.server_caps.fget(self)  # type: ignore[attr-defined,no-any-return]
        )
        self._server_caps = caps
        return caps
