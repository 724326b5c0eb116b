"""Ids that commit late, never, or by the thousand: delivered once or dropped, no tight loop."""

from __future__ import annotations

import time

from tests.integration.conftest import wait_for

from .checker import compare
from .conftest import Rig, Scale, rss_kib
from .summary import SUMMARY

PLUGINS = ["alpha", "beta"]


def _start(rig: Rig, **config: object) -> int:
    # A site's log is never empty: ids missing before its first event would be events
    # the site no longer keeps (delivery.md), not gaps.
    rig.site.append_events(1)
    rig.write_config(**config)  # type: ignore[arg-type]
    for name in PLUGINS:
        rig.add_recorder(name)
    rig.start()
    rig.wait_ready()
    return rig.site.newest_event_id()


def _reads(rig: Rig) -> int:
    return rig.site.call_counts().get("read", 0)


def test_late_ids_within_the_timeout_are_delivered_once_and_nothing_repeats(rig: Rig) -> None:
    # Given ids allocated but not committed, followed by committed events
    base = _start(rig, backlog_timeout=60)
    late = rig.site.reserve_event_ids(5)
    _, last = rig.site.append_events(20)
    rig.wait_delivered(PLUGINS, last)
    # When the late ids commit within the backlog timeout, and more events follow
    rig.site.commit_reserved(late)
    rig.wait_delivered(PLUGINS, late[-1])
    _, last = rig.site.append_events(5)
    rig.wait_delivered(PLUGINS, last)
    # Then every event came exactly once: late ones too, later ones not again
    report = rig.check(base, PLUGINS)
    assert report.lost_count == 0 and report.duplicate_count() == 0, report.describe()
    assert "late event" in rig.log_text()
    assert rig.stop() == 0


def test_ids_committed_after_the_timeout_or_never_are_dropped_with_a_warning(rig: Rig) -> None:
    # Given a 2 s backlog timeout and ids that will commit too late, or never
    base = _start(rig, backlog_timeout=2)
    too_late = rig.site.reserve_event_ids(3)
    never = rig.site.reserve_event_ids(2)
    _, last = rig.site.append_events(10)
    rig.wait_delivered(PLUGINS, last)
    rig.site.discard_reserved(never)
    # When the wait is over
    wait_for(
        lambda: rig.log_text().count("never appeared within the backlog timeout") >= len(PLUGINS),
        what="backlog expiry",
    )
    # And the late ids commit afterwards, followed by one more event
    rig.site.commit_reserved(too_late)
    _, marker = rig.site.append_events(1)
    rig.wait_delivered(PLUGINS, marker)
    # Then the expired ids were given up (logged), everything else came once
    delivered = {i for _, i in rig.deliveries()}
    assert not delivered & set(too_late + never)
    expected = [i for i in rig.site_ids(base) if i not in too_late]
    report = compare(rig.deliveries(), expected, PLUGINS)
    assert report.lost_count == 0 and report.duplicate_count() == 0, report.describe()
    SUMMARY.notes.append(
        f"gaps: {len(too_late)} ids committed after the timeout and {len(never)} never "
        "committed were dropped with a WARNING, as specified"
    )
    assert rig.stop() == 0


def test_gap_wider_than_a_batch_makes_progress_without_a_tight_loop(rig: Rig) -> None:
    # Given batches of 100 and a gap of 350 ids followed by 500 events
    base = _start(rig, batch=100, backlog_timeout=120, backlog_poll_interval=1, fetch_interval=0.5)
    gap = rig.site.reserve_event_ids(350)
    _, last = rig.site.append_events(500)
    # When the daemon reads past the gap
    rig.wait_delivered(PLUGINS, last)
    rig.site.reset_counts()
    started = time.monotonic()
    time.sleep(3)
    reads = _reads(rig)
    window = time.monotonic() - started
    # Then while it waits for the gap it reads about once per interval, not in a loop
    bound = int(window / 0.5 + 2) * (1 + len(PLUGINS)) + int(window / 1 + 2)
    assert reads <= bound, f"{reads} reads in {window:.1f} s while waiting (bound {bound})"
    # And once the gap commits, it arrives exactly once
    rig.site.commit_reserved(gap)
    rig.wait_delivered(PLUGINS, gap[-1])
    report = rig.check(base, PLUGINS)
    assert report.lost_count == 0 and report.duplicate_count() == 0, report.describe()
    assert rig.stop() == 0


def test_ten_thousand_gaps_at_once(rig: Rig, scale: Scale) -> None:
    # Given a running daemon and its memory use
    base = _start(rig, batch=500, backlog_timeout=300, backlog_poll_interval=1, fetch_interval=0.5)
    assert rig.proc is not None
    before = rss_kib(rig.proc.pid)
    # When 10,000 ids are allocated but not committed, ahead of 200 events
    gaps = rig.site.reserve_event_ids(scale.gaps)
    _, last = rig.site.append_events(200)
    rig.wait_delivered(PLUGINS, last)
    rig.site.reset_counts()
    started = time.monotonic()
    time.sleep(3)
    reads = _reads(rig)
    window = time.monotonic() - started
    waiting = rss_kib(rig.proc.pid)
    # Then reads stay bounded (one read per 500 awaited ids per backlog poll)
    chunks = -(-scale.gaps // 500)
    bound = int(window / 0.5 + 2) * (1 + len(PLUGINS)) + int(window / 1 + 2) * chunks
    assert reads <= bound, f"{reads} reads in {window:.1f} s (bound {bound})"
    # And when they all commit, each arrives once
    rig.site.reset_counts()
    settle_started = time.monotonic()
    rig.site.commit_reserved(gaps)
    rig.wait_delivered(PLUGINS, gaps[-1], timeout=300)
    wait_for(
        lambda: all(len(rig.ids_for(p)) >= scale.gaps + 200 for p in PLUGINS),
        timeout=300,
        what="every late id delivered",
    )
    after = rss_kib(rig.proc.pid)
    settle = time.monotonic() - settle_started
    settle_reads = _reads(rig)
    report = rig.check(base, PLUGINS)
    assert report.lost_count == 0 and report.duplicate_count() == 0, report.describe()
    # And memory stayed bounded (a few MiB for 10,000 ids, not a leak per read)
    assert waiting - before < 64 * 1024, f"RSS grew {waiting - before} KiB while waiting"
    # (Delivering them re-reads ids already queued to the workers, so RSS grows with the
    # number of backlog polls while they settle: see test_backlog_unit, xfail until fixed.)
    SUMMARY.notes.append(
        f"{scale.gaps} gaps: {reads} reads in {window:.1f} s while waiting; RSS "
        f"{before // 1024} -> {waiting // 1024} -> {after // 1024} MiB; settling them took "
        f"{settle:.1f} s and {settle_reads} reads"
    )
    assert rig.stop() == 0
