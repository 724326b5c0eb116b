"""The local site's webhook sender: signed single and batched deliveries, controls, no blocking."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite

SECRET = "site-secret"


class Collector(ThreadingHTTPServer):
    """A bare receiver on 127.0.0.1 that keeps every request (and can hold them)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, bytes]] = []
        self.release = threading.Event()
        self.release.set()
        self.changed = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    def wait(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.requests) >= count, timeout=30)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Collector

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.release.wait(30)
        with self.server.changed:
            self.server.requests.append((self.headers.get("X-SG-SIGNATURE", ""), body))
            self.server.changed.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def settled(site: LocalSite) -> dict[str, Any]:
    """The sender's counters once it has nothing left in hand (answers counted)."""
    deadline = time.monotonic() + 30
    while not site.webhooks.idle():
        assert time.monotonic() < deadline, "the webhook sender never went idle"
        time.sleep(0.01)
    return site.webhook_stats()


def signed(signature: str, body: bytes, secret: str = SECRET) -> bool:
    expected = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected, signature)


def test_each_committed_change_is_sent_signed_with_its_event(collector: Collector) -> None:
    # Given a site sending webhooks (single format)
    with LocalSite(webhook_url=collector.url, webhook_secret=SECRET) as site:
        sg = shotgun_api3.Shotgun(site.url, "shotgun_events", "local")
        # When a shot is created through the API
        shot = sg.create("Shot", {"code": "SH010"})
        sg.close()
        newest = site.newest_event_id()
        collector.wait(newest)
    # Then one signed delivery per event arrives, naming the event and its entity
    assert all(signed(sig, body) for sig, body in collector.requests)
    data = [b["data"] for b in collector.bodies()]
    assert [d["event_log_entry_id"] for d in data] == list(range(1, newest + 1))
    new = next(d for d in data if d["event_type"] == "Shotgun_Shot_New")
    assert new["operation"] == "create"
    assert new["entity"] == {"type": "Shot", "id": shot["id"]}
    assert all("timestamp" in b for b in collector.bodies())


def test_batched_format_carries_at_most_50_deliveries(collector: Collector) -> None:
    # Given a site sending in the batched format
    with LocalSite(webhook_url=collector.url, webhook_secret=SECRET, webhook_batch=True) as site:
        # When 120 events commit at once
        site.append_events(120)
        collector.wait(3)
        stats = settled(site)
    # Then they come in requests of at most 50 deliveries, every event once
    batches = [b["data"]["deliveries"] for b in collector.bodies()]
    assert [len(b) for b in batches] == [50, 50, 20]
    assert [d["event_log_entry_id"] for b in batches for d in b] == list(range(1, 121))
    assert stats["sent"] == 120 and stats["requests"] == 3


def test_controls_drop_duplicate_delay_and_missign(collector: Collector) -> None:
    # Given a site with one of each fault queued for the next deliveries
    with LocalSite(webhook_url=collector.url, webhook_secret=SECRET) as site:
        site.webhook_fault("drop")
        site.webhook_fault("duplicate", copies=3)
        site.webhook_fault("missign")
        site.webhook_fault("delay", seconds=0.5)
        # When five events commit one by one
        for _ in range(5):
            site.append_events(1)
        collector.wait(6)
        stats = settled(site)
    # Then event 1 never arrives, 2 three times, 3 mis-signed, and 4 after 5 (held back)
    ids = [b["data"]["event_log_entry_id"] for b in collector.bodies()]
    assert sorted(ids) == [2, 2, 2, 3, 4, 5]
    assert ids.index(5) < ids.index(4)
    wrong = [
        json.loads(body)["data"]["event_log_entry_id"]
        for sig, body in collector.requests
        if not signed(sig, body)
    ]
    assert wrong == [3]
    assert (stats["dropped"], stats["duplicated"], stats["missigned"], stats["delayed"]) == (
        1,
        2,
        1,
        1,
    )


def test_a_slow_receiver_never_blocks_the_api_call(collector: Collector) -> None:
    # Given a receiver that holds every request until released
    collector.release.clear()
    with LocalSite(webhook_url=collector.url, webhook_secret=SECRET) as site:
        sg = shotgun_api3.Shotgun(site.url, "shotgun_events", "local")
        # When changes are made while it holds the first delivery
        for n in range(3):
            sg.create("Shot", {"code": f"SH0{n}"})
        sg.close()
        # Then every API call returned, and the deliveries are still waiting
        assert collector.requests == []
        assert site.webhook_stats()["pending"] >= 1
        collector.release.set()
        collector.wait(site.newest_event_id())


def test_controls_over_http(collector: Collector) -> None:
    # Given a site configured through its /_local endpoints
    with LocalSite() as site:
        import urllib.request

        def control(action: str, **kwargs: Any) -> Any:
            request = urllib.request.Request(
                f"{site.url}/_local/{action}", data=json.dumps(kwargs).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as reply:
                return json.loads(reply.read())["result"]

        control("configure_webhook", url=collector.url, secret=SECRET, batch=False)
        control("webhook_fault", kind="missign", count=1)
        site.append_events(1)
        collector.wait(1)
        # Then the delivery went out mis-signed, as asked
        settled(site)
        assert control("webhook_stats")["missigned"] == 1
        assert not signed(*collector.requests[0])
        with pytest.raises(urllib.error.HTTPError):
            control("webhook_fault", kind="explode")
