"""Latency: from an event's commit on the site to the start of its callback.

The site's activity generator writes believable changes at 10 events/s. The
site runs in this process (``LocalSite``) so that the moment each event is
committed can be taken from the site itself: the benchmark wraps the
store's outermost transaction and notes the wall-clock time right after its
COMMIT for every event id the transaction allocated (``created_at`` only has
whole seconds). The daemon (``Daemon.build``, parallel dispatch, its real
``Engine.run`` loop in a thread) starts at the newest event; one plugin with
a callback for every event notes ``time.time()`` as its first statement.
p50/p99 over every event committed during the window, at fetch_interval 5
and 1. An idle poll sees a new event after up to fetch_interval, so about
fetch_interval / 2 and fetch_interval are the expected p50 and p99; the
issue sets no number, so only p99 is held against one interval (+0.1 s).
Adaptive polling is switched off here (active_fetch_interval =
fetch_interval) so these stay the figures of plain polling; the wake-ups
(bench_wakeups, section 9) measures adaptive polling and webhook wake-ups.

Run alone: ``python bench/bench_latency.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import PROFILES, Profile, Row, at_most, format_table, scratch
from rigs import SCRIPTS, InProcessDaemon
from workload import PluginSpec, standard_plugins, write_config, write_plugins

from shotgun_events.site import LocalSite

RATE = 10.0
INTERVALS = (5.0, 1.0)
RECORDER = PluginSpec("latency", record_starts=True)


class CommitClock:
    """Notes when each event id became visible, by wrapping the site's transactions."""

    def __init__(self, site: LocalSite) -> None:
        self.committed: dict[int, float] = {}
        store = site.api.store
        original = store.transaction

        @contextmanager
        def transaction() -> Iterator[sqlite3.Connection]:
            if store._in_tx:  # nested: the outermost one commits
                with original() as conn:
                    yield conn
                return
            before = store.event_high
            with original() as conn:
                yield conn
            now = time.time()
            for event_id in range(before + 1, store.event_high + 1):
                self.committed[event_id] = now

        store.transaction = transaction  # type: ignore[method-assign]


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (inclusive method), or nan without values."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def measure(
    site: LocalSite, clock: CommitClock, folder: Path, plugins: Path, interval: float, window: float
) -> list[float]:
    """Latencies (s) of the events committed during ``window`` at this fetch interval."""
    # Plain polling, as before adaptive polling (section 9 measures that and webhooks).
    extra = f"active_fetch_interval = {interval:g}"
    config = write_config(
        folder, url=site.url, plugins=plugins, fetch_interval=interval, extra=extra
    )
    daemon = InProcessDaemon(config)
    daemon.start()
    loop = threading.Thread(target=daemon.engine.run, name="bench-engine")
    loop.start()
    try:
        opened = max(clock.committed, default=0)
        time.sleep(window)
        closed = max(clock.committed, default=0)
        wanted = [i for i in range(opened + 1, closed + 1) if i in clock.committed]
        starts = daemon.plugin_globals(RECORDER.name)["STARTS"]
        deadline = time.monotonic() + interval + 2.0
        while time.monotonic() < deadline:  # the poll that brings the last ones
            seen = {event_id for event_id, _ in list(starts)}
            if all(i in seen for i in wanted):
                break
            time.sleep(0.05)
        started = dict(list(starts))
    finally:
        daemon.flag.stop_requested.set()
        loop.join()
        daemon.close()
    missing = [i for i in wanted if i not in started]
    if missing:
        raise RuntimeError(f"{len(missing)} events were never delivered: {missing[:5]}...")
    return [started[i] - clock.committed[i] for i in wanted]


def run(profile: Profile) -> list[Row]:
    """Measure and return the rows of section 7."""
    out = []
    with scratch("latency") as folder, LocalSite(scripts=SCRIPTS) as site:
        clock = CommitClock(site)
        plugins = write_plugins(folder / "plugins", [RECORDER, *standard_plugins(2)])
        site.start_activity(RATE, seed=7)
        for interval in INTERVALS:
            latencies = measure(
                site,
                clock,
                folder / f"every{interval:g}",
                plugins,
                interval,
                profile.latency_window,
            )
            p50 = percentile(latencies, 0.50)
            p99 = percentile(latencies, 0.99)
            n = f"fetch_interval {interval:g} s, {len(latencies)} events"
            out.append(
                Row(
                    "7 latency",
                    f"commit -> callback start p50 ({n})",
                    p50,
                    "s",
                    f"~{interval / 2:g} s expected (interval/2)",
                )
            )
            out.append(
                Row(
                    "7 latency",
                    f"commit -> callback start p99 ({n})",
                    p99,
                    "s",
                    f"<= {interval:g} s + 0.1 (one interval)",
                    at_most(p99, interval + 0.1),
                )
            )
    return out


def main() -> None:
    """Print this benchmark's rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
