"""Isolation: one plugin sleeping 20 ms per event must not hold back the nine others.

Parallel dispatch. The site holds N events; each run times how long nine
quick plugins (``workload.standard_plugins``: two call the site) take to
handle all of them, once alone and once next to a tenth plugin that
sleeps 20 ms per event (which would need N x 20 ms). The engine runs its
real loop (``Engine.run``) in a thread; the nine plugins' last-event times
are read from their own counters. Every plugin also checks that its events
arrive in increasing id order.

Run alone: ``python bench/bench_isolation.py [--quick]``.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from common import PROFILES, Profile, Row, at_most, format_table, median, scratch
from rigs import InProcessDaemon, SiteProcess
from workload import PluginSpec, standard_plugins, write_config, write_plugins

SLOW = PluginSpec("slow", sleep=0.020)
FAST = standard_plugins(9)


def nine_finish(
    site: SiteProcess,
    folder: Path,
    plugins: Path,
    first: int,
    last: int,
) -> tuple[float, int, int]:
    """Seconds until the nine fast plugins handled ``last``; (seconds, out of order, slow done)."""
    config = write_config(folder, url=site.url, plugins=plugins, dispatch="parallel")
    daemon = InProcessDaemon(config, from_id=first)
    daemon.start()
    start = time.perf_counter()
    loop = threading.Thread(target=daemon.engine.run, name="bench-engine")
    loop.start()
    try:
        while True:
            stats = daemon.plugin_stats()
            fast = [stats[p.name] for p in FAST]
            if all(s["last_id"] >= last for s in fast):
                break
            if not loop.is_alive():
                raise RuntimeError("the engine stopped before the plugins were done")
            time.sleep(0.005)
        finished = max(s["last_at"] for s in fast) - start
    finally:
        daemon.flag.stop_requested.set()
        loop.join()
        daemon.close()
    disorder = sum(s["out_of_order"] for s in stats.values())
    slow_done = int(stats.get(SLOW.name, {}).get("calls", 0))
    return finished, disorder, slow_done


def run(profile: Profile) -> list[Row]:
    """Measure and return the rows of section 3."""
    alone: list[float] = []
    beside: list[float] = []
    ratios: list[float] = []
    disorder = 0
    slow_done: list[int] = []
    with scratch("isolation") as folder, SiteProcess(folder) as site:
        first, last = site.append(profile.isolation_events)
        nine = write_plugins(folder / "nine", FAST)
        ten = write_plugins(folder / "ten", [*FAST, SLOW])
        for run_number in range(profile.runs):
            seconds, bad, _ = nine_finish(site, folder / f"alone{run_number}", nine, first, last)
            alone.append(seconds)
            disorder += bad
            seconds, bad, done = nine_finish(site, folder / f"beside{run_number}", ten, first, last)
            beside.append(seconds)
            slow_done.append(done)
            disorder += bad
            ratios.append(beside[-1] / alone[-1])
    n = profile.isolation_events
    ratio = median(ratios)
    return [
        Row("3 isolation", f"nine plugins alone ({n:,} events)", median(alone), "s", runs=alone),
        Row(
            "3 isolation",
            "nine plugins beside one sleeping 20 ms/event",
            median(beside),
            "s",
            note=f"the slow one had done {median(slow_done):.0f} of {n:,} "
            f"(needs {n * SLOW.sleep:.0f} s)",
            runs=beside,
        ),
        Row(
            "3 isolation",
            "ratio beside / alone",
            ratio,
            "x",
            "<= 1.2",
            at_most(ratio, 1.2),
            runs=ratios,
        ),
        Row(
            "3 isolation",
            "deliveries out of id order (all plugins, all runs)",
            disorder,
            "events",
            "0",
            disorder == 0,
        ),
    ]


def main() -> None:
    """Print this benchmark's rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
