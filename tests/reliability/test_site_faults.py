"""Site faults during a catch-up: all delivered once, the daemon stays up, retries back off."""

from __future__ import annotations

import re
import time
from pathlib import Path

from shotgun_events.site import LocalSite

from .conftest import Rig, Scale, SiteProcess, free_port
from .summary import SUMMARY

PLUGINS = ["alpha", "beta"]
#: Every way a read can fail; hangs are longer than the 1 s request timeout.
FAULTS: list[tuple[str, dict[str, object]]] = [
    ("status", {"status": 500}),
    ("status", {"status": 502}),
    ("status", {"status": 503}),
    ("status", {"status": 504}),
    ("hang", {"seconds": 3}),
    ("drop", {}),
    ("reset", {}),
    ("garbage", {}),
]


def _label(kind: str, options: dict[str, object]) -> str:
    return f"http {options['status']}" if kind == "status" else kind


def _inject_all(site: LocalSite) -> None:
    for kind, options in FAULTS:
        site.inject_fault(kind, 1, method="read", **options)  # type: ignore[arg-type]
        SUMMARY.fault(_label(kind, options))


def test_catch_up_under_every_kind_of_fault_loses_nothing(rig: Rig, scale: Scale) -> None:
    # Given a daemon catching up on a long backlog in small batches, 1 s request timeout
    rig.write_config(batch=100, request_timeout=1)
    for name in PLUGINS:
        rig.add_recorder(name)
    rig.start()
    rig.wait_ready()
    base = rig.site.newest_event_id()
    first, last = rig.site.append_events(scale.catch_up_events)
    # When every fault kind hits the reads, again and again while it catches up
    rounds = 2 if not scale.soak else 12
    step = scale.catch_up_events // rounds
    for n in range(rounds):
        _inject_all(rig.site)
        target = first + step * (n + 1) - 1
        rig.wait_delivered(PLUGINS[:1], min(target, last), timeout=300)
    rig.wait_delivered(PLUGINS, last, timeout=300)
    # Then the daemon is up, and each plugin got every event of the log exactly once
    assert rig.alive()
    report = rig.check(base, PLUGINS)
    assert report.lost_count == 0, report.describe()
    assert report.duplicate_count() == 0, report.describe()
    assert not any(report.unexpected.values()), report.describe()
    assert not any(report.out_of_order.values()), report.describe()
    assert "retrying in" in rig.log_text()
    assert rig.stop() == 0


def test_outage_is_retried_with_bounded_reads_then_resumes(rig: Rig, scale: Scale) -> None:
    # Given a catch-up in progress, retries in bursts of 3 and 2 s between bursts
    rig.write_config(batch=100, request_timeout=1, conn_retry_sleep=2, max_conn_retries=3)
    for name in PLUGINS:
        rig.add_recorder(name, sleep=0.001)
    rig.start()
    rig.wait_ready()
    base = rig.site.newest_event_id()
    first, last = rig.site.append_events(scale.catch_up_events)
    rig.wait_delivered(PLUGINS, first + 200)
    # When every call fails with HTTP 500 for the length of an outage
    rig.site.inject_fault("status", 1_000_000, status=500)
    rig.site.reset_counts()
    started = time.monotonic()
    time.sleep(scale.outage_seconds)
    calls = sum(rig.site.call_counts().values())
    outage = time.monotonic() - started
    rig.site.clear_faults()
    SUMMARY.fault("http 500 outage", calls)
    # Then the reads were bounded: per reader (engine + one per plugin) at most a burst
    # plus one per retry sleep, not a tight loop
    readers = 1 + len(PLUGINS)
    bound = readers * (3 + int(outage / 1.0) + 2)
    assert calls <= bound, f"{calls} calls in a {outage:.1f} s outage (bound {bound})"
    # And after the outage everything arrives, once
    rig.wait_delivered(PLUGINS, last, timeout=300)
    report = rig.check(base, PLUGINS)
    assert report.lost_count == 0 and report.duplicate_count() == 0, report.describe()
    assert rig.alive() and rig.stop() == 0


def test_site_killed_and_restarted_during_catch_up(tmp_path: Path, scale: Scale) -> None:
    # Given a site process with its database on disk, and a daemon catching up from it
    site = SiteProcess(tmp_path, free_port())
    site.start()
    rig = Rig(tmp_path / "daemon", site)
    try:
        rig.write_config(batch=100, request_timeout=2, conn_retry_sleep=2, max_conn_retries=3)
        for name in PLUGINS:
            rig.add_recorder(name, sleep=0.001)
        rig.start()
        rig.wait_ready()
        base = site.newest_event_id()
        first, last = site.append_events(scale.catch_up_events)
        rig.wait_delivered(PLUGINS[:1], first + scale.catch_up_events // 4)
        # When the site is killed, stays down, and comes back on the same port and database
        site.kill()
        SUMMARY.fault("site killed")
        down_since = time.monotonic()
        log_before = len(rig.log_text())
        time.sleep(scale.outage_seconds)
        failed_reads = len(re.findall(r"failed", rig.log_text()[log_before:]))
        down = time.monotonic() - down_since
        site.start()
        # Then the daemon never exited, retried with bounded attempts, and lost nothing
        rig.wait_delivered(PLUGINS, last, timeout=300)
        assert rig.alive()
        readers = 1 + len(PLUGINS)
        bound = readers * (3 + int(down / 1.0) + 2)
        assert failed_reads <= bound, f"{failed_reads} failed reads in {down:.1f} s down"
        report = rig.check(base, PLUGINS)
        assert report.lost_count == 0 and report.duplicate_count() == 0, report.describe()
        assert rig.stop() == 0
    finally:
        rig.close()
        site.kill()
