"""The [webhooks] section and [daemon] active_fetch_interval: read and checked in one place."""

from __future__ import annotations

from shotgun_events.config.ini import IniReader
from shotgun_events.config.model import WebhookConfig

SECTION = "webhooks"


def read_active_interval(ini: IniReader) -> float:
    """Read [daemon] active_fetch_interval (> 0; at or above fetch_interval: no adapting)."""
    return ini.seconds("daemon", "active_fetch_interval", positive=True)


def read_webhooks(ini: IniReader) -> WebhookConfig:
    """Read [webhooks]; an empty ``listen`` switches the receiver off and ignores the rest."""
    listen = ini.text(SECTION, "listen")
    if not listen:
        # Unused settings must not stop the daemon (e.g. an unset %(SG_ED_WEBHOOK_SECRET)s).
        ini.ignore(SECTION)
        return WebhookConfig()
    host, port = _address(ini, listen)
    secret = ini.text(SECTION, "secret")
    if not secret:
        raise ini.fail(
            SECTION,
            "secret",
            "the webhook's secret token because listen is set",
            ini.raw(SECTION, "secret") or None,
            "set secret = %(SG_ED_WEBHOOK_SECRET)s and export that variable with the token "
            "given on the site's Webhooks page, or remove listen",
        )
    path = ini.text(SECTION, "path")
    if not path.startswith("/") or any(c in path for c in " ?#"):
        raise ini.fail(
            SECTION, "path", "a URL path starting with /", path, "e.g. path = /sg-webhook"
        )
    return WebhookConfig(host=host, port=port, secret=secret, path=path)


def _address(ini: IniReader, listen: str) -> tuple[str, int]:
    """Split HOST:PORT (or [IPv6]:PORT); the port must be a number from 1 to 65535."""
    host, sep, port_text = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text) if port_text.isdigit() else 0
    if not sep or not host or not 0 < port <= 65535:
        raise ini.fail(
            SECTION,
            "listen",
            "HOST:PORT with a port from 1 to 65535",
            listen,
            "e.g. listen = 127.0.0.1:8090 (behind a TLS reverse proxy)",
        )
    return host, port
