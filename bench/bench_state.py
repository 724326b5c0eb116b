"""Measure StateStore.record(): µs per call for each fsync policy, vs a full JSON rewrite.

Run: python bench/bench_state.py [--plugins 10] [--records 100000] [--runs 5]

Every 100th record of a plugin opens a one-id gap (backlog add) and the next
one settles it (backlog remove); the rest only move the position, as in a
daemon keeping up with the log. Prints numbers only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shotgun_events.cursor import Cursor
from shotgun_events.state.files import write_atomic
from shotgun_events.state.format import snapshot_bytes
from shotgun_events.state.store import SavedState, StateStore

EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)


def _cursors(plugins: int, records: int) -> list[tuple[tuple[str, str], Cursor]]:
    """Build the record sequence up front so the timing covers record() only."""
    keys = [("/opt/shotgun/plugins", f"plugin{n:02d}") for n in range(plugins)]
    sequence = []
    for event_id in range(1, records + 1):
        backlog = {event_id * 10 - 1: EXPIRY} if event_id % 100 == 0 else {}
        for key in keys:
            sequence.append((key, Cursor(event_id * 10, backlog)))
    return sequence


def _time_store(policy: str, sequence: list[tuple[tuple[str, str], Cursor]]) -> float:
    """Return µs per record() for one run in a fresh folder."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as folder:
        store = StateStore(Path(folder) / "state.json", fsync=policy)
        store.load()
        store.record(sequence[0][0], sequence[0][1])  # open the journal outside the timing
        record = store.record
        start = time.perf_counter()
        for key, cursor in sequence:
            record(key, cursor)
        elapsed = time.perf_counter() - start
        store.close()
    return elapsed / len(sequence) * 1e6


def _time_rewrite(sequence: list[tuple[tuple[str, str], Cursor]]) -> float:
    """Return µs per record for the naive design: an atomic JSON rewrite each time."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as folder:
        path = Path(folder) / "state.json"
        state = SavedState()
        start = time.perf_counter()
        for key, cursor in sequence:
            state.positions[key] = cursor
            write_atomic(path, snapshot_bytes(state, 1))
        elapsed = time.perf_counter() - start
    return elapsed / len(sequence) * 1e6


def _bytes_per_record(sequence: list[tuple[tuple[str, str], Cursor]]) -> tuple[float, float]:
    """Return (journal bytes, all bytes incl. snapshots) written per record()."""
    written = {"journal": 0, "all": 0}
    real_write = os.write

    def counting(fd: int, data: Any) -> int:
        count = real_write(fd, data)
        written["all"] += count
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".journal"):
            written["journal"] += count
        return count

    os.write = counting
    try:
        _time_store("never", sequence)
    finally:
        os.write = real_write
    return written["journal"] / len(sequence), written["all"] / len(sequence)


def _median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=10)
    parser.add_argument("--records", type=int, default=100_000, help="records per plugin")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--slow-records",
        type=int,
        default=300,
        help="records per plugin for fsync=always and the full rewrite (each costs a sync)",
    )
    args = parser.parse_args()
    fast = _cursors(args.plugins, args.records)
    slow = _cursors(args.plugins, args.slow_records)
    print(f"plugins={args.plugins} runs={args.runs} (median), µs per record():")
    cases: list[tuple[str, int, Callable[[], float]]] = [
        ("fsync=never", len(fast), lambda: _time_store("never", fast)),
        ("fsync=interval", len(fast), lambda: _time_store("interval", fast)),
        ("fsync=always", len(slow), lambda: _time_store("always", slow)),
        ("full rewrite", len(slow), lambda: _time_rewrite(slow)),
    ]
    for name, count, measure in cases:
        print(f"  {name:<15} {count:>9} records  {_median(args.runs, measure):8.2f}")
    journal, total = _bytes_per_record(_cursors(args.plugins, min(args.records, 20_000)))
    print(f"bytes per record(): journal {journal:.1f}, incl. snapshots {total:.1f}")
    rewrite = len(snapshot_bytes(SavedState(positions=dict(fast[-args.plugins :])), 1))
    print(f"bytes per full rewrite: {rewrite}")


if __name__ == "__main__":
    main()
