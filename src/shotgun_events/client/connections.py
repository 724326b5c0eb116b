"""Lazy ``shotgun_api3`` connections: a pool of HTTP connections per script credential.

Each thread gets its own ``Shotgun`` object per credential (the session uuid
is set on it before each callback), and the objects of one credential borrow
an HTTP connection from one pool for each call and share one ``info`` call
(see pool.py). Objects are
created with ``connect=False`` so nothing touches the network until a
callback really uses its connection (the original opened one per callback,
eagerly, each sending ``info``). With a gate (limits.py: the ceiling on a
plugin's site calls), each call of the plugins' objects waits for its turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from shotgun_api3.shotgun import Shotgun

from shotgun_events.client.fastdecode import FastDecodeShotgun
from shotgun_events.client.limits import Gate, GatedShotgun
from shotgun_events.client.pool import CredentialPool, PooledShotgun
from shotgun_events.config.model import DEFAULTS, Config


class ConnectionFactory:
    """Build ``Shotgun`` objects for one site with the configured timeout, proxy and CA bundle."""

    def __init__(
        self,
        *,
        server: str,
        timeout: float,
        proxy: str | None = None,
        ca_certs: str | None = None,
        on_create: Callable[[str], None] | None = None,
    ) -> None:
        self._server = server
        self._timeout = timeout
        self._proxy = proxy
        self._ca_certs = ca_certs
        self._on_create = on_create

    def create(
        self,
        script_name: str,
        script_key: str,
        *,
        fast_decode: bool = False,
        pool: CredentialPool | None = None,
        gate: Gate | None = None,
    ) -> Shotgun:
        """Return a new, not yet connected ``Shotgun`` for these credentials.

        ``fast_decode``: the engine's own event reads use a client with a faster,
        equivalent decoding of replies (see fastdecode.py). ``pool``: borrow HTTP
        connections from this credential's pool for each call (plugins' ``sg``).
        ``gate``: run before each call (plugins' ``sg``, see limits.py).
        """
        options: dict[str, object] = {
            "connect": False,
            "http_proxy": self._proxy,
            "ca_certs": self._ca_certs,
        }
        sg: Shotgun
        if pool is not None:
            sg = PooledShotgun(
                self._server, script_name, script_key, pool=pool, gate=gate, **options
            )
        elif gate is not None:
            sg = GatedShotgun(self._server, script_name, script_key, gate=gate, **options)
        elif fast_decode:
            sg = FastDecodeShotgun(self._server, script_name, script_key, **options)  # type: ignore[arg-type]
        else:
            sg = Shotgun(self._server, script_name, script_key, **options)  # type: ignore[arg-type]
        # The client reads timeout_secs when it opens its HTTP connection, which
        # connect=False has not done yet; without it a hung site blocks forever.
        sg.config.timeout_secs = self._timeout
        if self._on_create is not None:
            self._on_create(script_name)
        return sg


def factory_for(config: Config) -> ConnectionFactory:
    """The connection factory for the configured site (timeout, proxy, CA bundle)."""
    return ConnectionFactory(
        server=config.server,
        timeout=config.request_timeout,
        proxy=config.proxy_server,
        ca_certs=config.ca_certs,
    )


class ConnectionPool:
    """Hand out one ``Shotgun`` per (script name, key, thread); one pool per credential.

    ``gate``: what each call of these objects waits for first (the plugins' call
    ceiling, see limits.py); None: calls go at once.
    """

    def __init__(
        self,
        factory: ConnectionFactory,
        max_per_script: int = DEFAULTS.integer("daemon", "max_connections_per_script"),
        *,
        gate: Gate | None = None,
    ) -> None:
        self._factory = factory
        self._max_per_script = max_per_script
        self._gate = gate
        self._lock = threading.Lock()
        self._connections: dict[tuple[str, str, int], Shotgun] = {}
        self._links: dict[tuple[str, str], CredentialPool] = {}

    def get(self, script_name: str, script_key: str) -> Shotgun:
        """Return the calling thread's connection for these credentials, creating it once."""
        key = (script_name, script_key, threading.get_ident())
        sg = self._connections.get(key)
        if sg is None:
            with self._lock:
                sg = self._connections.get(key)
                if sg is None:
                    link = self._links.get((script_name, script_key))
                    if link is None:
                        link = CredentialPool(self._max_per_script)
                        self._links[(script_name, script_key)] = link
                    sg = self._factory.create(script_name, script_key, pool=link, gate=self._gate)
                    self._connections[key] = sg
        return sg

    @property
    def opened(self) -> int:
        """Number of HTTP connections opened so far, over every credential."""
        with self._lock:
            links = list(self._links.values())
        return sum(link.opened for link in links)

    @property
    def peak_busy(self) -> int:
        """The most connections lent out at once on any one credential."""
        with self._lock:
            links = list(self._links.values())
        return max((link.peak_busy for link in links), default=0)

    def credential(self, script_name: str, script_key: str) -> CredentialPool | None:
        """The connection pool of one credential (None until it was first used)."""
        with self._lock:
            return self._links.get((script_name, script_key))

    @property
    def open_links(self) -> int:
        """HTTP connections of plugins' ``sg`` open right now, over every credential's pool."""
        with self._lock:
            links = list(self._links.values())
        return sum(link.open_count for link in links)

    def close(self) -> None:
        """Close every idle connection (objects reconnect by themselves if used again)."""
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
            links = list(self._links.values())
        for sg in connections:
            sg.close()
        for link in links:
            link.close_idle()
