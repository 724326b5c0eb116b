#!/opt/shotgun_events/venv/bin/python
"""The image's health check: ask the daemon's /livez (or /readyz), or ping a Celery worker.

Usage: shotgun-events-healthcheck [livez|readyz|worker]

``livez`` (the default, the image's HEALTHCHECK) and ``readyz`` read the
config the daemon reads ($SHOTGUN_EVENTS_CONFIG) for its ``[http] listen``
address and token, so a config mounted over the image's is probed where it
listens. ``worker`` sends a Celery ping and waits for the workers of this
container (their node names hold its host name). Exit 0 when healthy, else 1
with the reason on one line.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from shotgun_events.config.http_section import WILDCARDS
from shotgun_events.config.load import find_config_path, load_config
from shotgun_events.config.model import Config
from shotgun_events.errors import ShotgunEventsError

#: Seconds one probe may take; the HEALTHCHECK's own timeout is longer.
TIMEOUT = 5.0


def probe(config: Config, path: str) -> tuple[bool, str]:
    """GET ``path`` on the daemon's [http] listener: (healthy, its one-line answer)."""
    http = config.http
    if not http.enabled:
        return False, (
            f"{config.path}: [http] listen is empty, so there is no {path} to ask; "
            "set listen (e.g. 127.0.0.1:9464) or turn this health check off"
        )
    host = http.host or ""
    if host in WILDCARDS:
        host = "::1" if ":" in host else "127.0.0.1"
    netloc = f"[{host}]:{http.port}" if ":" in host else f"{host}:{http.port}"
    request = urllib.request.Request(f"http://{netloc}{path}")
    if http.token:
        request.add_header("Authorization", f"Bearer {http.token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return True, answer.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return False, f"{path}: {exc.code} {exc.read().decode(errors='replace').strip()}"
    except OSError as exc:
        return False, f"{path}: no answer from {netloc} ({exc})"


def ping_workers(config: Config) -> tuple[bool, str]:
    """Celery ping; healthy when a worker of this container (by host name) answers."""
    from shotgun_events.delivery.celery.app import make_app

    app = make_app(config.celery)
    me = socket.gethostname()
    try:
        replies = app.control.ping(timeout=TIMEOUT / 2)
    except Exception as exc:  # the broker is down or refuses us: unhealthy, say why
        return False, f"cannot ping the workers through {config.celery.safe_broker}: {exc}"
    names = [name for reply in replies for name in reply]
    mine = [name for name in names if name.partition("@")[2].rpartition(".")[0] == me]
    if mine:
        return True, f"worker {', '.join(mine)} answered"
    return False, f"no worker of host {me} answered a ping ({len(names)} other(s) did)"


def main(argv: list[str]) -> int:
    """Run the check named by ``argv`` and return the exit code."""
    what = argv[0] if argv else "livez"
    if what not in ("livez", "readyz", "worker"):
        print(f"usage: {Path(sys.argv[0]).name} [livez|readyz|worker]", file=sys.stderr)
        return 2
    try:
        config = load_config(find_config_path(None, os.environ))
    except ShotgunEventsError as exc:
        print(f"unhealthy: {exc}")
        return 1
    healthy, reason = ping_workers(config) if what == "worker" else probe(config, f"/{what}")
    print(reason if healthy else f"unhealthy: {reason}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
