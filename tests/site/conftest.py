"""Fixtures: a seeded local site per test and real shotgun_api3 clients that get closed."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite

SCRIPT = "shotgun_events"
KEY = "local"
EVENT_FIELDS = ["id", "event_type", "attribute_name", "meta", "entity", "user", "project",
                "session_uuid", "created_at", "description"]

MakeClient = Callable[..., shotgun_api3.Shotgun]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[LocalSite]:
    """A started local site with the demo production, on a file in tmp_path."""
    with LocalSite(tmp_path / "site.sqlite3", seed=True) as s:
        yield s


@pytest.fixture
def make_sg(site: LocalSite) -> Iterator[MakeClient]:
    """Build real clients for ``site`` (any Shotgun() keyword); all are closed afterwards."""
    clients: list[shotgun_api3.Shotgun] = []

    def make(script: str = SCRIPT, key: str = KEY, **kwargs: Any) -> shotgun_api3.Shotgun:
        sg = shotgun_api3.Shotgun(site.url, script, key, **kwargs)
        # 502/504 are retried after BACKOFF * attempt seconds; keep tests quick
        sg.BACKOFF = 0.01
        sg.config.rpc_attempt_interval = 10
        clients.append(sg)
        return sg

    yield make
    for sg in clients:
        sg.close()


@pytest.fixture
def sg(make_sg: MakeClient) -> shotgun_api3.Shotgun:
    """One connected client using the default script."""
    return make_sg()


def post(url: str, path: str, body: bytes, method: str = "POST") -> tuple[int, Any]:
    """Send a raw request to the site; returns (status, decoded JSON body)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def control(url: str, action: str, **kwargs: Any) -> Any:
    """Call a /_local/<action> endpoint like a test in another process would."""
    status, body = post(url, f"/_local/{action}", json.dumps(kwargs).encode())
    assert status == 200, body
    return body["result"]


def shot(sg: shotgun_api3.Shotgun, code: str) -> dict[str, Any]:
    """The seeded Shot with this code."""
    found = sg.find_one("Shot", [["code", "is", code]], ["code", "project"])
    assert found is not None
    return found
