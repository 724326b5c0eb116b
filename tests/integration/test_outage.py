"""A site outage is not a plugin failure: the real daemon, the local site's faults, a real SMTP.

Five plugins read the site for every event while the daemon catches up on
2,000 events; part-way the site answers every call with HTTP 503 for a while.
Every plugin stays on, every event is delivered once after the site is back,
nothing goes to the dead letters, and the outage is mailed once. A plugin's
own exception meanwhile is still handled as before.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from shotgun_events.site import LocalSite

from .conftest import DaemonRig, daemon_cli, wait_for
from .test_email import SMTP_PASSWORD, SMTP_USER, Collector, SmtpServer, free_port

READER = '''\
"""Reads the site for each event, then records it (test plugin)."""
import os

RECORD = os.environ["RECORD_FILE"]


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", read, None, None)


def read(sg, logger, event, args):
    sg.find_one("Project", [], ["name"])
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("{name} %d\\n" % event["id"]).encode())
    finally:
        os.close(fd)
'''

BUGGY = '''\
"""Raises its own error on one event (test plugin): still the plugin's failure."""


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", crash, None, None)


def crash(sg, logger, event, args):
    if event["id"] == {fail_on}:
        raise KeyError("sg_status_list")
'''

EVENTS = 2000
READERS = [f"reader{n}" for n in range(5)]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    collector = Collector()
    port = free_port()
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        authenticator=collector.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield SmtpServer(port, collector)
    finally:
        controller.stop()


def status(rig: DaemonRig) -> dict[str, Any]:
    result = daemon_cli(rig, "status", "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize(
    ("outage_seconds", "retries"), [(5, 0), (60, 3)], ids=["short-outage", "60s-outage-retries-3"]
)
def test_a_site_outage_holds_events_keeps_plugins_on_and_is_mailed_once(
    rig: DaemonRig, site: LocalSite, smtp: SmtpServer, outage_seconds: int, retries: int
) -> None:
    # Given five plugins that read the site for every event, one with a bug of its own,
    # 2,000 events to catch up on, and error mails on
    first, last = site.append_events(EVENTS)
    buggy_on = first + EVENTS // 2
    for name in READERS:
        (rig.plugins / f"{name}.py").write_text(READER.format(name=name))
    (rig.plugins / "buggy.py").write_text(BUGGY.format(fail_on=buggy_on))
    rig.write_config(
        batch=100,
        extra=f"callback_retries = {retries}\ncallback_retry_delay = 1\n",
        plugins_extra=f"""
[emails]
enabled = True
server = 127.0.0.1
port = {smtp.port}
username = {SMTP_USER}
password = {SMTP_PASSWORD}
from = shotgun-events@example.com
to = team@example.com
subject = [sgEvents]
digest_interval = 300
""",
    )
    rig.start("--from-id", str(first))
    try:
        # When the site answers every call with 503 for a while, part-way through
        wait_for(lambda: len(rig.deliveries()) >= 300, 120, "the catch-up to start")
        site.inject_fault("status", count=1_000_000, status=503)
        wait_for(
            lambda: (status(rig).get("site") or {}).get("unavailable") is not None,
            30,
            "the daemon to see the outage",
        )
        shown = status(rig)
        time.sleep(max(0.0, outage_seconds - 2))
        site.clear_faults()
        # Then once the site is back every plugin gets every event, once
        wait_for(
            lambda: all(len(rig.ids_for(name)) >= EVENTS for name in READERS),
            240,
            "every reader to reach the last event",
        )
        # (the buggy plugin's retries, callback_retries of them, take their time)
        wait_for(
            lambda: any(p["name"] == "buggy" and p["state"] == "inactive"
                        for p in status(rig)["plugins"]),
            60,
            "the buggy plugin to be switched off",
        )  # fmt: skip
        final = status(rig)
    finally:
        rig.stop()
    # It said so while it lasted: the site unavailable, since when, why; readiness too
    assert "site unavailable since" in shown["site"]["unavailable"]
    assert "503" in shown["site"]["unavailable"]
    for name in READERS:
        ids = rig.ids_for(name)
        counts = Counter(ids)
        assert sorted(counts) == list(range(first, last + 1)), name
        assert max(counts.values()) == 1, f"{name} ran an event twice"
    plugins = {p["name"]: p for p in final["plugins"]}
    # And every reader is on, nothing went to the dead letters, the outage is over
    assert all(plugins[name]["state"] == "active" for name in READERS)
    assert all(plugins[name]["dead_letters"] == 0 for name in READERS)
    assert final["site"]["available"] and final["site"]["outages"] >= 1
    assert final["site"]["events_held"] >= 1
    # And the plugin's own bug was handled as before: switched off, at its event
    assert plugins["buggy"]["state"] == "inactive" and "KeyError" in plugins["buggy"]["reason"]
    # And the outage was mailed once (the bug has its own mail); none per reader
    mails = smtp.collector.received()
    about_site = [m for m in mails if "unavailable" in m.body]
    assert len(about_site) == 1, [m.subject for m in mails]
    assert not any(name in m.subject for m in mails for name in READERS)


def test_a_sighup_and_a_plugin_edit_during_an_outage_are_applied_while_it_lasts(
    rig: DaemonRig, site: LocalSite
) -> None:
    # Given a plugin that reads the site for every event, caught up by a running daemon
    (rig.plugins / "reader0.py").write_text(READER.format(name="reader0"))
    rig.write_config(batch=100)
    rig.start()
    rig.wait_ready()
    _, last = site.append_events(50)
    wait_for(lambda: rig.ids_for("reader0")[-1:] == [last], 60, "the first events")
    try:
        # When the site answers every call with 503, and during that outage the plugin
        # is edited (it now records under another name) and the daemon gets a SIGHUP
        site.inject_fault("status", count=1_000_000, status=503)
        first, last = site.append_events(50)
        wait_for(lambda: "reading the event log failed" in rig.log_text(), 30, "a failed read")
        (rig.plugins / "reader0.py").write_text(READER.format(name="edited"))
        assert rig.proc is not None
        rig.proc.send_signal(signal.SIGHUP)
        # Then the daemon reloads while the site is still down
        wait_for(lambda: "reload: configuration re-read" in rig.log_text(), 30, "the reload")
        # And once the site answers, the held events run the edited code, each once
        site.clear_faults()
        wait_for(lambda: rig.ids_for("edited")[-1:] == [last], 120, "the held events")
    finally:
        rig.stop()
    assert sorted(rig.ids_for("edited")) == list(range(first, last + 1))
    assert not set(rig.ids_for("reader0")) & set(range(first, last + 1))
