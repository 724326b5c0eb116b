"""``Shotgun`` objects that share one HTTP connection per script credential across threads.

Each plugin worker thread gets its own ``Shotgun`` object, so per-call state
that the client keeps on the object (the session uuid set before each
callback) never leaks from one plugin to another. The HTTP connection and the
server's capabilities behind them are shared per (script name, key): one
connection and one ``info`` call per credential, however many plugins use it.
Calls on one credential are serialized by a lock, since the underlying
connection is not thread-safe; plugins on different credentials never wait
for each other.
"""

from __future__ import annotations

import threading
from typing import Any

from shotgun_api3.lib.httplib2 import Http
from shotgun_api3.shotgun import ServerCapabilities, Shotgun


class SharedLink:
    """The connection and capabilities that the objects of one credential share."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.http: Http | None = None
        self.caps: ServerCapabilities | None = None
        self.opened = 0


class SharedShotgun(Shotgun):
    """A ``Shotgun`` whose HTTP connection and server capabilities live in a ``SharedLink``."""

    def __init__(self, *args: Any, link: SharedLink, **kwargs: Any) -> None:
        self._link = link
        super().__init__(*args, **kwargs)

    def _get_connection(self) -> Http:
        link = self._link
        with link.lock:
            if link.http is None:
                self._connection = None
                link.http = super()._get_connection()
                link.opened += 1
            self._connection = link.http
            return link.http

    def _close_connection(self) -> None:
        link = self._link
        with link.lock:
            self._connection = link.http
            super()._close_connection()
            link.http = None

    @property
    def server_caps(self) -> ServerCapabilities:
        """The server's capabilities, read once per credential."""
        link = self._link
        with link.lock:
            if link.caps is None:
                link.caps = Shotgun.server_caps.fget(self)  # type: ignore[attr-defined]
            self._server_caps = link.caps
            return link.caps

    def _call_rpc(self, *args: Any, **kwargs: Any) -> Any:
        # One request at a time on the shared connection; the object's own
        # config (session uuid, timeout) still applies to its calls.
        with self._link.lock:
            return super()._call_rpc(*args, **kwargs)
