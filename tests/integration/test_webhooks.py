"""Webhook wake-ups with the real daemon process and the local site's webhook sender.

The daemon polls every 30 s here, so an event that reaches a plugin within
a few seconds of its commit got there because a webhook woke the loop; the
faults the site can act out (duplicate, late, dropped, mis-signed
deliveries) must neither lose nor repeat an event: the event log still
decides what is delivered.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

import pytest
import shotgun_api3

from shotgun_events.webhooks.payload import sign

from .conftest import DaemonRig, wait_for

SECRET = "whsec-7d1e0b"
SLOW_POLL = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def configure(rig: DaemonRig, *, fetch_interval: float = SLOW_POLL, batch: bool = False) -> int:
    """Give the rig a [webhooks] receiver and point the site's sender at it; returns its port."""
    port = free_port()
    rig.write_config(
        extra=f"active_fetch_interval = {fetch_interval}",
        plugins_extra=(
            f"\n[webhooks]\nlisten = 127.0.0.1:{port}\n"
            "secret = %(SG_ED_WEBHOOK_SECRET)s\npath = /sg-hook\n"
        ),
    )
    text = rig.config.read_text().replace(
        "fetch_interval = 0.2", f"fetch_interval = {fetch_interval}"
    )
    rig.config.write_text(text)
    rig.env["SG_ED_WEBHOOK_SECRET"] = SECRET
    rig.site.configure_webhook(f"http://127.0.0.1:{port}/sg-hook", SECRET, batch)
    return port


def start(rig: DaemonRig, port: int) -> None:
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    wait_for(lambda: "webhook receiver listening" in rig.log_text(), what="the receiver")


def reads(rig: DaemonRig) -> int:
    return rig.site.call_counts().get("read", 0)


def settled_reads(rig: DaemonRig, quiet: float = 1.0) -> int:
    """The site's read count once the daemon's start-up reads are over (none for ``quiet``
    seconds: its first poll can come after its log says it started, on a busy machine)."""
    count = reads(rig)
    for _ in range(30):
        time.sleep(quiet)
        now = reads(rig)
        if now == count:
            break
        count = now
    return count


def post(port: int, body: bytes, signature: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/sg-hook", body, {"X-SG-SIGNATURE": signature})
        reply = conn.getresponse()
        reply.read()
        return reply.status
    finally:
        conn.close()


def delivery(event_id: int) -> bytes:
    return json.dumps({"data": {"event_log_entry_id": event_id}, "timestamp": "t"}).encode()


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batched"])
def test_a_change_reaches_the_plugin_well_before_one_fetch_interval(
    rig: DaemonRig, batch: bool
) -> None:
    # Given a daemon polling every 30 s, with the site sending webhooks to it
    port = configure(rig, batch=batch)
    start(rig, port)
    polled_at = time.monotonic()  # its first read is done: the next poll is 30 s away
    # When an artist changes a shot through the API
    sg = shotgun_api3.Shotgun(rig.site.url, "shotgun_events", "local")
    shot = sg.create("Shot", {"code": "SQ010_0010"})
    sg.update("Shot", shot["id"], {"description": "ready for lighting"})
    sg.close()
    newest = rig.site.newest_event_id()
    # Then the plugin has every event of it before the daemon's next poll would have run
    wait_for(lambda: newest in rig.ids_for("rec"), timeout=SLOW_POLL - 10, what="the webhook")
    assert time.monotonic() - polled_at < SLOW_POLL
    got = rig.ids_for("rec")
    assert got == sorted(set(got)) and got[-1] == newest
    assert rig.site.webhook_stats()["statuses"].get("200", 0) >= 1
    assert SECRET not in rig.log_text()
    assert rig.stop() == 0


def test_duplicate_late_dropped_and_missigned_deliveries_lose_and_repeat_nothing(
    rig: DaemonRig,
) -> None:
    # Given a daemon polling every 2 s with webhooks on, and a site that misbehaves:
    # five deliveries sent three times, five held back 3 s, five dropped, five mis-signed
    port = configure(rig, fetch_interval=2.0)
    start(rig, port)
    site = rig.site
    site.webhook_fault("duplicate", 5, copies=3)
    site.webhook_fault("delay", 5, seconds=3.0)
    site.webhook_fault("drop", 5)
    site.webhook_fault("missign", 5)
    first = site.newest_event_id() + 1
    # When 25 events are committed one by one
    for _ in range(25):
        site.append_events(1)
    last = site.newest_event_id()
    # Then the plugin gets each of them exactly once, in order
    wait_for(lambda: last in rig.ids_for("rec"), timeout=30, what="all events")
    wait_for(lambda: site.webhooks.idle(), timeout=30, what="the late deliveries")
    time.sleep(1.0)  # room for any (wrong) repeat caused by the late and duplicate ones
    assert rig.ids_for("rec") == list(range(first, last + 1))
    stats = site.webhook_stats()
    assert (stats["duplicated"], stats["delayed"], stats["dropped"], stats["missigned"]) == (
        10,
        5,
        5,
        5,
    )
    assert stats["statuses"]["401"] == 5
    # And the mis-signed ones were reported once, without the secret
    log = rig.log_text()
    assert log.count("webhook deliveries refused (401)") == 1
    assert SECRET not in log
    assert rig.stop() == 0


def test_a_delivery_for_an_event_already_read_causes_no_read(rig: DaemonRig) -> None:
    # Given a caught-up daemon polling every 30 s, the site sending nothing itself
    port = configure(rig)
    rig.site.configure_webhook(None)
    rig.site.append_events(3)
    start(rig, port)
    head = rig.site.newest_event_id()
    before = settled_reads(rig)
    # When 50 correctly signed deliveries name events it has already passed
    for event_id in range(head - 2, head + 1):
        for _ in range(17):
            body = delivery(event_id)
            assert post(port, body, sign(SECRET.encode(), body)) == 200
    # Then the loop looked at them and made no read for them
    wait_for(
        lambda: f"wake-up for event {head}: every plugin is past it" in rig.log_text(),
        what="the wake-up to be taken",
    )
    assert reads(rig) == before
    assert rig.ids_for("rec") == []
    assert rig.stop() == 0


def test_the_event_log_decides_what_is_delivered(rig: DaemonRig) -> None:
    # Given a running daemon with webhooks on
    port = configure(rig)
    start(rig, port)
    head = rig.site.newest_event_id()
    # When a signed delivery names an event the log does not have (yet)
    body = delivery(head + 1000)
    assert post(port, body, sign(SECRET.encode(), body)) == 200
    wait_for(
        lambda: f"wake-up for event {head + 1000}: reading" in rig.log_text(),
        what="the wake-up to be taken",
    )
    # And mis-signed and malformed deliveries arrive
    assert post(port, delivery(head + 1), "sha1=" + "0" * 40) == 401
    assert post(port, b"{}", sign(SECRET.encode(), b"{}")) == 400
    # Then nothing is delivered for them
    assert rig.ids_for("rec") == []
    # And a real event that follows is delivered once, woken by its own webhook
    rig.site.append_events(1)
    wait_for(lambda: rig.ids_for("rec") == [head + 1], timeout=20, what="the real event")
    assert rig.stop() == 0


def test_webhooks_listen_without_a_secret_is_a_config_error(rig: DaemonRig, tmp_path: Path) -> None:
    # Given [webhooks] listen set and the secret's variable empty
    configure(rig)
    rig.env["SG_ED_WEBHOOK_SECRET"] = ""
    # When the daemon starts
    rig.start()
    assert rig.proc is not None
    code = rig.proc.wait(timeout=60)
    # Then it exits 78 with one line naming the file and the key
    assert code == 78
    lines = [line for line in rig.stderr_text().splitlines() if "webhooks" in line]
    assert len(lines) == 1 and str(rig.config) in lines[0] and "secret" in lines[0]
