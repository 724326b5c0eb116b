"""A reload (SIGHUP) while a concurrent plugin's event is held by a site outage re-runs nothing."""

from __future__ import annotations

import signal
import time
from collections import Counter

from shotgun_events.site import LocalSite

from .conftest import DaemonRig, wait_for

KEYED = '''\
"""Calls the site per event, four events at once, ordered per entity (test plugin)."""
import os

RECORD = os.environ["RECORD_FILE"]


def registerCallbacks(reg):
    reg.setConcurrency(4, order_by="entity")
    reg.registerCallback("shotgun_events", "local", read, None, None)


def read(sg, logger, event, args):
    sg.find_one("Project", [], ["name"])
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("keyed %d\\n" % event["id"]).encode())
    finally:
        os.close(fd)
'''


def test_a_reload_during_an_outage_reruns_no_event_a_concurrent_plugin_handled(
    rig: DaemonRig, site: LocalSite
) -> None:
    (rig.plugins / "keyed.py").write_text(KEYED)
    rig.write_config(batch=100)
    first, _ = site.append_events(1)
    rig.start("--from-id", str(first))
    try:
        rig.wait_ready()
        wait_for(lambda: rig.ids_for("keyed"), 30, "the first event")
        for n in range(8):
            site.append_events(30, entity={"type": "Shot", "id": 1 + n % 8})
        wait_for(lambda: len(rig.ids_for("keyed")) >= 60, 60, "events to flow")
        site.inject_fault("status", count=1_000_000, status=500)
        time.sleep(1.5)
        assert rig.proc is not None
        rig.proc.send_signal(signal.SIGHUP)
        time.sleep(3)
        site.clear_faults()
        last = site.newest_event_id()
        wait_for(lambda: max(rig.ids_for("keyed"), default=0) >= last, 90, "the last event")
        time.sleep(2)
    finally:
        rig.stop()
    counts = Counter(rig.ids_for("keyed"))
    again = sorted(i for i, n in counts.items() if n > 1)
    assert not again, f"events run twice: {again}"
    assert sorted(counts) == list(range(first, last + 1))
