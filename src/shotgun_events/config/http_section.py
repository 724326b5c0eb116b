"""The ``[http]`` section: where the metrics, health probes and status page listen, if at all.

Off unless ``listen = HOST:PORT`` is set. A loopback address is always
accepted. Any other address must be named explicitly (an interface's address
or a host name; a wildcard such as ``0.0.0.0`` or an empty host is not), and
then a warning is logged unless a ``token`` is set; with a token any address
is accepted and every request must carry it as ``Authorization: Bearer``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from shotgun_events.config.ini import IniReader

#: ``[http]`` keys and their defaults (merged into the one defaults table in model.py).
HTTP_DEFAULTS: dict[tuple[str, str], str] = {
    ("http", "listen"): "",
    ("http", "token"): "",
    ("http", "live_timeout"): "",
}
#: Wildcard hosts: every interface of the machine, never an explicit choice.
WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class HttpSettings:
    """The ``[http]`` section; ``host`` None means the server is off."""

    host: str | None = None
    port: int = 0
    token: str | None = field(default=None, repr=False)
    #: Seconds without an engine heartbeat before /livez fails; None: derived (see live_timeout).
    live_timeout: float | None = None

    @property
    def enabled(self) -> bool:
        """Whether the HTTP server runs."""
        return self.host is not None

    @property
    def address(self) -> str:
        """``HOST:PORT`` as configured, IPv6 in brackets."""
        host = self.host or ""
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_http(ini: IniReader) -> HttpSettings:
    """Read ``[http]``; refuse a wildcard address without a token; warn on an open one."""
    listen = ini.text("http", "listen")
    token = ini.text("http", "token") or None
    raw_timeout = ini.text("http", "live_timeout")
    live_timeout = ini.seconds("http", "live_timeout", positive=True) if raw_timeout else None
    if not listen:
        return HttpSettings(live_timeout=live_timeout)
    host, port = _split(ini, listen)
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ini.fail(
            "http",
            "token",
            f"at least {MIN_TOKEN_LENGTH} characters",
            token,
            "use a long random value, e.g. from 'openssl rand -hex 24'",
        )
    if host in WILDCARDS and token is None:
        raise ini.fail(
            "http",
            "listen",
            "a loopback or explicit address when no token is set",
            listen,
            "write e.g. 127.0.0.1:9464, name the interface's own address, or set [http] token",
        )
    if not is_loopback(host) and token is None:
        ini.warnings.append(
            f"{ini.source}: [http] listen = {listen}: metrics, probes and the status page "
            "are open to anyone who can reach this address; set [http] token to require "
            "a bearer token"
        )
    return HttpSettings(
        host="0.0.0.0" if host == "*" else host,
        port=port,
        token=token,
        live_timeout=live_timeout,
    )


def _split(ini: IniReader, listen: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) or raise the one-line error."""
    fix = "write HOST:PORT, e.g. 127.0.0.1:9464 (IPv6 as [::1]:9464)"
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ini.fail("http", "listen", "HOST:PORT", listen, fix)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ini.fail("http", "listen", "HOST:PORT", listen, fix)
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ini.fail("http", "listen", "a port between 1 and 65535", listen, fix)
    return host, port
