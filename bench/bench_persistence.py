"""State: persistence cost per (event, plugin) and bytes written per event.

Two views:

- isolated, from ``bench_state.py`` (reused, not copied): ``StateStore.record``
  in a loop, for each fsync policy, next to the naive full JSON rewrite, and
  the journal bytes per record;
- inside a real catch-up (10 trivial plugins, every event a call, so every
  (event, plugin) is one record): in serial mode, the time spent in
  ``StateStore.record`` per call (one thread, so the clock measures record()
  alone); then, in a second run of each mode, the bytes of journal lines and
  snapshots written per event. The wrappers that measure are installed on
  the class for the run and removed afterwards.

Run alone: ``python bench/bench_persistence.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bench_state
from common import PROFILES, Profile, Row, at_most, format_table, median, scratch
from rigs import InProcessDaemon, SiteProcess
from workload import standard_plugins, write_config, write_plugins

import shotgun_events.state.store as state_module
from shotgun_events.state.store import StateStore

PLUGINS = 10


@contextmanager
def patched(owner: Any, name: str, make: Callable[[Any], Any]) -> Iterator[None]:
    """Replace ``owner.name`` by ``make(original)`` for the block."""
    original = getattr(owner, name)
    setattr(owner, name, make(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def catch_up(site: SiteProcess, folder: Path, plugins: Path, mode: str, first: int) -> None:
    """One catch-up of the whole log with a fresh state file."""
    daemon = InProcessDaemon(
        write_config(folder, url=site.url, plugins=plugins, dispatch=mode), from_id=first
    )
    try:
        daemon.start()
        daemon.catch_up()
    finally:
        daemon.close()


def record_cost(site: SiteProcess, folder: Path, plugins: Path, first: int) -> tuple[float, int]:
    """(µs per StateStore.record call, calls) during a serial catch-up."""
    spent = [0.0, 0]

    def make(original: Callable[..., None]) -> Callable[..., None]:
        def record(self: StateStore, *args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            try:
                original(self, *args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
                spent[1] += 1

        return record

    with patched(StateStore, "record", make):
        catch_up(site, folder, plugins, "serial", first)
    return spent[0] / max(1, spent[1]) * 1e6, int(spent[1])


def bytes_written(
    site: SiteProcess, folder: Path, plugins: Path, mode: str, first: int
) -> tuple[int, int]:
    """(journal bytes, snapshot bytes) written during one catch-up."""
    journal = [0]
    snapshots = [0]

    def make_append(original: Callable[..., None]) -> Callable[..., None]:
        def append(self: StateStore, line: str) -> None:
            journal[0] += len(line.encode())
            original(self, line)

        return append

    def make_atomic(original: Callable[[Path, bytes], None]) -> Callable[[Path, bytes], None]:
        def write_atomic(path: Path, data: bytes) -> None:
            snapshots[0] += len(data)
            original(path, data)

        return write_atomic

    with (
        patched(StateStore, "_append", make_append),
        patched(state_module, "write_atomic", make_atomic),
    ):
        catch_up(site, folder, plugins, mode, first)
    return journal[0], snapshots[0]


def isolated(profile: Profile) -> list[Row]:
    """StateStore.record in a loop, through bench_state's own measurements."""
    fast = bench_state._cursors(PLUGINS, profile.state_records)
    slow = bench_state._cursors(PLUGINS, profile.state_slow_records)
    out = []
    for policy, sequence in (("interval", fast), ("never", fast), ("always", slow)):
        runs = [bench_state._time_store(policy, sequence) for _ in range(profile.runs)]
        value = median(runs)
        target = "<= 10 us" if policy == "interval" else ""
        out.append(
            Row(
                "5 state",
                f"record() alone, fsync={policy} (bench_state)",
                value,
                "us",
                target,
                at_most(value, 10.0) if target else None,
                runs=runs,
            )
        )
    runs = [bench_state._time_rewrite(slow) for _ in range(profile.runs)]
    out.append(
        Row(
            "5 state",
            "full JSON rewrite per record (the naive design)",
            median(runs),
            "us",
            runs=runs,
        )
    )
    journal, total = bench_state._bytes_per_record(fast)
    out.append(
        Row(
            "5 state",
            "bytes per record() alone: journal / incl. snapshots",
            journal,
            "bytes",
            note=f"{total:.1f} incl. snapshots",
        )
    )
    return out


def in_catch_up(profile: Profile) -> list[Row]:
    """Cost and bytes inside real catch-ups."""
    out = []
    with scratch("persistence") as folder, SiteProcess(folder) as site:
        first, last = site.append(profile.state_catchup_events)
        events = last - first + 1
        plugins = write_plugins(folder / "plugins", standard_plugins(PLUGINS))
        costs = [
            record_cost(site, folder / f"cost{n}", plugins, first) for n in range(profile.runs)
        ]
        value = median(c[0] for c in costs)
        out.append(
            Row(
                "5 state",
                f"record() in a serial catch-up, per (event, plugin) ({events:,} x {PLUGINS})",
                value,
                "us",
                "<= 10 us",
                at_most(value, 10.0),
                note=f"{costs[0][1] / events:.2f} records per event",
                runs=[c[0] for c in costs],
            )
        )
        for mode in ("parallel", "serial"):
            journal, snapshots = bytes_written(site, folder / f"bytes-{mode}", plugins, mode, first)
            out.append(
                Row(
                    "5 state",
                    f"state bytes written per event in a catch-up, {mode}",
                    (journal + snapshots) / events,
                    "bytes",
                    note=f"journal {journal / events:.0f} + snapshots {snapshots / events:.0f}",
                )
            )
    return out


def run(profile: Profile) -> list[Row]:
    """Measure and return the rows of section 5."""
    return [*isolated(profile), *in_catch_up(profile)]


def main() -> None:
    """Print this benchmark's rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
