"""Catch-up: the daemon's events/s next to the bare client's ceiling, in the same run.

The site holds N events; 10 quick plugins (every event; every fifth one
calls the site now and then, ``workload.standard_plugins``) start before the
first one. Each run measures, back to back on the same
events: the ceiling (a bare ``shotgun_api3`` loop: id > last, the 9 fields,
order id asc, limit 500), then the daemon in parallel and in serial mode
(built by ``Daemon.build`` in this process, timed from ``engine.start()`` to
every plugin having handled the last event). The site's call and connection
counters give the reads per 1,000 events and the connections of each mode.

Run alone: ``python bench/bench_catchup.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_site import FIELDS, PAGE
from common import PROFILES, Profile, Row, at_least, at_most, format_table, median, scratch
from rigs import InProcessDaemon, SiteProcess
from shotgun_api3.shotgun import Shotgun
from workload import callers, plugin_site_calls, standard_plugins, write_config, write_plugins

PLUGINS = 10
MODES = ("parallel", "serial")


def ceiling(url: str, after: int, last: int) -> tuple[float, float]:
    """(events/s, CPU µs per event) of a bare client loop reading (after, last] by 500."""
    sg = Shotgun(url, "shotgun_events", "local")
    try:
        sg.info()  # connect outside the timing, as the daemon is connected by then too
        start = time.perf_counter()
        cpu = time.process_time()
        position, count = after, 0
        while True:
            rows = sg.find(
                "EventLogEntry",
                [["id", "greater_than", position]],
                FIELDS,
                order=[{"field_name": "id", "direction": "asc"}],
                limit=PAGE,
            )
            count += len(rows)
            if rows:
                position = rows[-1]["id"]
            if len(rows) < PAGE or position >= last:
                break
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    finally:
        sg.close()
    return count / elapsed, cpu / count * 1e6


@dataclass
class DaemonRun:
    """One catch-up of the daemon."""

    rate: float
    cpu_us: float
    reads: int
    connections: int
    complete: bool


def daemon_catch_up(
    site: SiteProcess, folder: Path, plugins: Path, mode: str, first: int, last: int
) -> DaemonRun:
    """Catch up (first..last) once with a fresh state file; events/s and site load."""
    config = write_config(folder, url=site.url, plugins=plugins, dispatch=mode)
    daemon = InProcessDaemon(config, from_id=first)
    try:
        site.reset_counts()
        start = time.perf_counter()
        cpu = time.process_time()
        daemon.start()
        daemon.catch_up()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        calls, connections = site.counts()
        stats = daemon.plugin_stats()
    finally:
        daemon.close()
    events = last - first + 1
    complete = len(stats) == PLUGINS and all(
        s["calls"] == events and s["out_of_order"] == 0 for s in stats.values()
    )
    # The engine's reads: the plugins' own find_one calls are reads on the site too.
    reads = calls.get("read", 0) - plugin_site_calls(stats)
    return DaemonRun(events / elapsed, cpu / events * 1e6, reads, connections, complete)


@dataclass
class Results:
    """Every run's figures, by name."""

    ceiling: list[float] = field(default_factory=list)
    ceiling_cpu: list[float] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    rate: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    ratio: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    reads_per_k: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    connections: dict[str, list[int]] = field(default_factory=lambda: {m: [] for m in MODES})
    complete: bool = True


def measure(profile: Profile) -> Results:
    """Run the ceiling and both modes ``profile.runs`` times on the same events."""
    results = Results()
    with scratch("catchup") as folder, SiteProcess(folder) as site:
        first, last = site.append(profile.catchup_events)
        plugins = write_plugins(folder / "plugins", standard_plugins(PLUGINS))
        events = last - first + 1
        for run in range(profile.runs):
            top, top_cpu = ceiling(site.url, first - 1, last)
            results.ceiling.append(top)
            results.ceiling_cpu.append(top_cpu)
            # Alternate the order of the modes so a drift of the machine hits both alike.
            for mode in MODES if run % 2 == 0 else MODES[::-1]:
                outcome = daemon_catch_up(site, folder / f"{mode}{run}", plugins, mode, first, last)
                results.rate[mode].append(outcome.rate)
                results.cpu[mode].append(outcome.cpu_us)
                results.ratio[mode].append(outcome.rate / top)
                results.reads_per_k[mode].append(outcome.reads * 1000 / events)
                results.connections[mode].append(outcome.connections)
                results.complete &= outcome.complete
    return results


def rows(profile: Profile, results: Results) -> list[Row]:
    """Table rows for sections 1 (catch-up) and 4 (reads and connections during catch-up)."""
    n = f"{profile.catchup_events:,} events, {PLUGINS} plugins"
    out = [
        Row(
            "1 catch-up",
            f"ceiling: bare shotgun_api3 ({n})",
            median(results.ceiling),
            "events/s",
            runs=results.ceiling,
        )
    ]
    for mode in MODES:
        out.append(
            Row(
                "1 catch-up",
                f"daemon, {mode}",
                median(results.rate[mode]),
                "events/s",
                runs=results.rate[mode],
                note="" if results.complete else "INCOMPLETE delivery",
            )
        )
        ratio = median(results.ratio[mode]) * 100
        out.append(
            Row(
                "1 catch-up",
                f"daemon / ceiling, {mode}",
                ratio,
                "%",
                ">= 90 %",
                at_least(ratio, 90),
                runs=[r * 100 for r in results.ratio[mode]],
            )
        )
    out.append(
        Row(
            "1 catch-up",
            "CPU per event in the reading process: ceiling (client only)",
            median(results.ceiling_cpu),
            "us",
            runs=results.ceiling_cpu,
        )
    )
    for mode in MODES:
        out.append(
            Row(
                "1 catch-up",
                f"CPU per event in the daemon process, {mode}",
                median(results.cpu[mode]),
                "us",
                runs=results.cpu[mode],
                note="all threads; the site runs in its own process",
            )
        )
    budget = (1 / 0.9 - 1) / median(results.ceiling) * 1e6
    out.append(
        Row(
            "1 catch-up",
            "time per event the daemon may add at 90 % of the ceiling",
            budget,
            "us",
            note="for all 10 plugins together",
        )
    )
    for mode in MODES:
        reads = median(results.reads_per_k[mode])
        out.append(
            Row(
                "4 site load",
                f"reads per 1,000 events, catch-up, {mode}",
                reads,
                "reads",
                "<= 2.1",
                at_most(reads, 2.1),
                runs=results.reads_per_k[mode],
            )
        )
    # The engine's connection, and one per site-calling plugin (their calls may overlap).
    bound = 1 + callers(PLUGINS)
    for mode in MODES:
        opened = max(results.connections[mode])
        out.append(
            Row(
                "4 site load",
                f"connections, catch-up, {mode} ({callers(PLUGINS)} plugins call the site)",
                opened,
                "conns",
                f"<= {bound}",
                at_most(opened, bound),
                runs=[float(c) for c in results.connections[mode]],
            )
        )
    return out


def run(profile: Profile) -> list[Row]:
    """Measure and return the rows."""
    return rows(profile, measure(profile))


def main() -> None:
    """Print this benchmark's rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
