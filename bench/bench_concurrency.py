"""Concurrency inside a plugin: a site-bound plugin at concurrency 8 vs 1, order, overhead, kill -9.

- speed-up: one plugin making one site call (``sg.find_one``) per event on a
  site that answers every call in 50 ms (the local site's latency control),
  N events over N/10 shots, caught up by the real daemon in-process at
  concurrency 8 and at 1;
- order violations: events of one shot seen out of id order at concurrency 8
  (``order_by = entity``); with ``order_by = none`` order is not promised and
  not checked;
- overhead: a trivial plugin (no site call, no sleep) caught up at
  concurrency 8 vs strict order: the cost of the pool and the watermark;
- kill -9: the daemon as a process, catching up at concurrency 8 on a site at
  30 ms per call, killed at random instants; events run again per kill
  (target <= concurrency).

Run alone: ``python bench/bench_concurrency.py [--quick]``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from pathlib import Path

from common import PROFILES, Profile, Row, at_least, at_most, format_table, median, scratch
from rigs import DaemonProcess, InProcessDaemon, SiteProcess
from workload import write_config

SECTION = "10 concurrency"
#: Milliseconds the site takes to answer each call in the speed-up and kill -9 runs.
LATENCY_MS = 50
KILL_LATENCY_MS = 30
CONCURRENCY = 8

PLUGIN = '''\
"""Benchmark plugin: {concurrency} at once by {order_by}; a site call per event (or none)."""
import os
import threading

USE_SG = {use_sg!r}
RECORD = {record!r}
STATS = {{"calls": 0, "violations": 0}}
_last = {{}}
_lock = threading.Lock()


def registerCallbacks(reg):
    reg.setConcurrency({concurrency}, order_by={order_by!r})
    reg.registerCallback("shotgun_events", "local", on_event, None, None)


def _record(mark, event_id):
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("%d %d %s\\n" % (os.getpid(), event_id, mark)).encode())
    finally:
        os.close(fd)


def on_event(sg, logger, event, args):
    shot = event["entity"]["id"]
    if RECORD:
        _record("S", event["id"])
    if USE_SG:
        sg.find_one("Shot", [["id", "is", shot]], ["code"])
    with _lock:
        if event["id"] < _last.get(shot, 0):
            STATS["violations"] += 1
        _last[shot] = event["id"]
        STATS["calls"] += 1
    if RECORD:
        _record("E", event["id"])
'''


def _setup(
    folder: Path,
    site: SiteProcess,
    *,
    concurrency: int,
    order_by: str = "entity",
    use_sg: bool = True,
    record: Path | None = None,
    dispatch: str = "parallel",
) -> Path:
    plugins = folder / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "bench.py").write_text(
        PLUGIN.format(
            concurrency=concurrency,
            order_by=order_by,
            use_sg=use_sg,
            record=str(record) if record else "",
        )
    )
    return write_config(folder, url=site.url, plugins=plugins, dispatch=dispatch)


def _append_over_shots(site: SiteProcess, events: int, shots: int) -> tuple[int, int]:
    first = last = 0
    per_shot = max(1, events // shots)
    # Round-robin over shots in runs of 1: every shot's events interleave with the others'.
    for n in range(events // per_shot * per_shot):
        a, last = site.append(1, entity={"type": "Shot", "id": 1 + n % shots, "name": "s"})
        first = first or a
    return first, last


def _catch_up(config: Path, start: int) -> tuple[float, dict[str, int]]:
    daemon = InProcessDaemon(config, from_id=start)
    try:
        daemon.start()
        began = time.perf_counter()
        daemon.catch_up()
        seconds = time.perf_counter() - began
        return seconds, dict(daemon.plugin_stats()["bench"])
    finally:
        daemon.close()


def _speedup(profile: Profile) -> list[Row]:
    events = 1_000 if profile.name == "full" else 200 if profile.name == "quick" else 40
    shots = max(4, events // 10)
    times: dict[int, list[float]] = defaultdict(list)
    violations = 0
    none_seconds: list[float] = []
    for _ in range(profile.runs):
        with scratch("conc") as folder, SiteProcess(folder) as site:
            first, last = _append_over_shots(site, events, shots)
            # Every call the site answers takes this long, the daemon's reads included.
            site.control("set_latency", ms=LATENCY_MS)
            for concurrency in (1, CONCURRENCY):
                config = _setup(folder / f"c{concurrency}", site, concurrency=concurrency)
                seconds, stats = _catch_up(config, first)
                assert stats["calls"] == last - first + 1, stats
                times[concurrency].append(seconds)
                if concurrency > 1:
                    violations += stats["violations"]
            config = _setup(folder / "none", site, concurrency=CONCURRENCY, order_by="none")
            none_seconds.append(_catch_up(config, first)[0])
    slow, fast = median(times[1]), median(times[CONCURRENCY])
    ratio = slow / fast if fast else None
    note = f"{events} events over {shots} shots; one site call each, site at {LATENCY_MS} ms"
    return [
        Row(SECTION, "catch-up, concurrency 1", slow, "s", note=note, runs=times[1]),
        Row(SECTION, f"catch-up, concurrency {CONCURRENCY}", fast, "s", runs=times[CONCURRENCY]),
        Row(SECTION, f"speed-up {CONCURRENCY} vs 1", ratio, "x", ">= 6", at_least(ratio, 6)),
        Row(SECTION, "order violations per shot (entity)", violations, "", "0", violations == 0),
        Row(
            SECTION,
            f"catch-up, concurrency {CONCURRENCY}, order_by none",
            median(none_seconds),
            "s",
            note="order not promised, not checked",
        ),
    ]


def _overhead(profile: Profile) -> list[Row]:
    events = 20_000 if profile.name == "full" else 4_000 if profile.name == "quick" else 400
    times: dict[int, list[float]] = defaultdict(list)
    for _ in range(max(profile.runs, 3 if profile.name != "tiny" else 1)):
        with scratch("conc_trivial") as folder, SiteProcess(folder) as site:
            first, _ = site.append(events)
            for concurrency in (1, CONCURRENCY):
                config = _setup(
                    folder / f"c{concurrency}",
                    site,
                    concurrency=concurrency,
                    use_sg=False,
                )
                times[concurrency].append(_catch_up(config, first)[0])
    strict, pooled = median(times[1]), median(times[CONCURRENCY])
    overhead = (pooled - strict) / strict * 100 if strict else None
    return [
        Row(
            SECTION,
            "trivial plugin, strict order",
            events / strict if strict else None,
            "ev/s",
            note=f"{events} events",
            runs=times[1],
        ),
        Row(
            SECTION,
            f"trivial plugin, concurrency {CONCURRENCY}",
            events / pooled if pooled else None,
            "ev/s",
            runs=times[CONCURRENCY],
        ),
        Row(
            SECTION,
            "overhead of the concurrent path",
            overhead,
            "%",
            "<= 10",
            at_most(overhead, 10),
        ),
    ]


def _kill9(profile: Profile) -> list[Row]:
    events = 2_000 if profile.name == "full" else 800 if profile.name == "quick" else 100
    kills_wanted = 5 if profile.name != "tiny" else 1
    rng = random.Random(20261201)
    with scratch("conc_kill") as folder, SiteProcess(folder) as site:
        first, last = _append_over_shots(site, events, max(4, events // 10))
        record = folder / "record.txt"
        site.control("set_latency", ms=KILL_LATENCY_MS)
        config = _setup(folder / "daemon", site, concurrency=CONCURRENCY, record=record)
        runs: list[int] = []
        kills = 0
        daemon = DaemonProcess(config, from_id=first)
        try:
            while kills < kills_wanted:
                time.sleep(rng.uniform(0.5, 1.5))
                if daemon.positions().get("bench", 0) >= last:
                    break
                runs.append(daemon.proc.pid)
                daemon.proc.kill()
                daemon.proc.wait()
                daemon.stop()
                kills += 1
                daemon = DaemonProcess(config, from_id=first)
            daemon.wait_positions(["bench"], last)
        finally:
            daemon.stop()
        seen: dict[int, list[int]] = defaultdict(list)
        delivered: set[int] = set()
        for line in record.read_text().splitlines():
            pid, event_id, mark = line.split()
            if mark == "S":
                seen[int(pid)].append(int(event_id))
            else:
                delivered.add(int(event_id))
    lost = (last - first + 1) - len(delivered & set(range(first, last + 1)))
    # Re-runs of a kill: events the killed run started that a later run started again.
    per_kill = []
    for n, pid in enumerate(runs):
        later = {i for p, ids in seen.items() if p not in runs[: n + 1] for i in ids}
        per_kill.append(len(set(seen.get(pid, [])) & later))
    worst = max(per_kill, default=0)
    return [
        Row(
            SECTION,
            "kill -9: most re-runs in one kill",
            worst,
            "events",
            f"<= {CONCURRENCY}",
            worst <= CONCURRENCY if kills else None,
            note=f"{kills} kills, re-runs {per_kill}",
        ),
        Row(SECTION, "kill -9: events lost", lost, "", "0", lost == 0),
    ]


def run(profile: Profile) -> list[Row]:
    """All figures of this section."""
    return [*_speedup(profile), *_overhead(profile), *_kill9(profile)]


def main() -> None:
    """Run this section alone."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
