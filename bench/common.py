"""Shared measuring pieces of the benchmark suite: sizes, result rows, the table, small helpers.

Every benchmark module returns a list of ``Row``; ``run.py`` prints them as one
table with the target next to each figure. Nothing here asserts on time. The
site and daemon rigs are in ``rigs.py``; generated plugins and configs in
``workload.py``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- sizes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """How big each benchmark is; ``full`` is what the issue asks for."""

    name: str
    runs: int
    catchup_events: int
    dispatch_miss_events: int
    dispatch_call_events: int
    dispatch_mixed_events: int
    isolation_events: int
    load_events: int
    idle_window: float
    idle_fetch_interval: float
    state_records: int
    state_slow_records: int
    state_catchup_events: int
    memory_small: int
    memory_large: int
    reloads: int
    latency_window: float


PROFILES: dict[str, Profile] = {
    "full": Profile(
        name="full",
        runs=3,
        catchup_events=100_000,
        dispatch_miss_events=1_000_000,
        dispatch_call_events=100_000,
        dispatch_mixed_events=1_000_000,
        isolation_events=10_000,
        load_events=5_000,
        idle_window=30.0,
        idle_fetch_interval=5.0,
        state_records=20_000,
        state_slow_records=200,
        state_catchup_events=20_000,
        memory_small=100_000,
        memory_large=1_000_000,
        reloads=1_000,
        latency_window=60.0,
    ),
    "quick": Profile(
        name="quick",
        runs=1,
        catchup_events=10_000,
        dispatch_miss_events=20_000,
        dispatch_call_events=5_000,
        dispatch_mixed_events=20_000,
        isolation_events=1_000,
        load_events=2_000,
        idle_window=4.0,
        idle_fetch_interval=1.0,
        state_records=2_000,
        state_slow_records=30,
        state_catchup_events=5_000,
        memory_small=3_000,
        memory_large=15_000,
        reloads=100,
        latency_window=3.0,
    ),
    # For the smoke test: every row, as small as it gets.
    "tiny": Profile(
        name="tiny",
        runs=1,
        catchup_events=1_200,
        dispatch_miss_events=300,
        dispatch_call_events=100,
        dispatch_mixed_events=300,
        isolation_events=120,
        load_events=600,
        idle_window=1.5,
        idle_fetch_interval=0.5,
        state_records=100,
        state_slow_records=5,
        state_catchup_events=600,
        memory_small=600,
        memory_large=1_200,
        reloads=10,
        latency_window=1.5,
    ),
}


# -- results -------------------------------------------------------------------------------

#: Units of figures that are better lower when a row sets no target (times, sizes, counts).
LOWER_IS_BETTER = frozenset(
    {"s", "ms", "us", "MB", "MiB", "bytes", "reads", "conns", "events", "failures"}
)


@dataclass
class Row:
    """One figure of the table: what, how much, and the target it is held against."""

    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    #: True/False when the figure has a target, None when it is only informative.
    met: bool | None = None
    note: str = ""
    runs: list[float] = field(default_factory=list)

    def better(self) -> str | None:
        """Which way this figure improves: "higher", "lower", or None (no way is better).

        Read from the target (``at_least`` targets are written ">= ...",
        ``at_most`` ones "<= ..." or "< ...", a count that must be "0" is an
        ``at_most`` too); a figure without a target goes by its unit (a rate
        is better higher, a time, a size or a count of reads lower).
        """
        target = self.target.strip()
        if target.startswith(">"):
            return "higher"
        if target.startswith("<") or target == "0":
            return "lower"
        if target:
            return None  # a band (e.g. a ratio that must stay near 1)
        if self.unit.endswith("/s"):
            return "higher"
        if self.unit in LOWER_IS_BETTER:
            return "lower"
        return None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "section": self.section,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
            "note": self.note,
            "runs": self.runs,
        }


def at_most(value: float | None, bound: float) -> bool | None:
    """``value <= bound``, or None when nothing was measured."""
    return None if value is None else value <= bound


def at_least(value: float | None, bound: float) -> bool | None:
    """``value >= bound``, or None when nothing was measured."""
    return None if value is None else value >= bound


def median(values: Iterable[float]) -> float:
    """The median of the runs (the figure quoted in the table)."""
    return float(statistics.median(list(values)))


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    """Render rows as a Markdown table (readable in a terminal, pasteable in docs)."""
    header = ["#", "benchmark", "measure", "value", "unit", "target", "met", "note"]
    lines = [header]
    for row in rows:
        verdict = {True: "yes", False: "NO", None: ""}[row.met]
        number, _, section = row.section.partition(" ")
        lines.append(
            [number, section, row.name, _fmt(row.value), row.unit, row.target, verdict, row.note]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


# -- small helpers -------------------------------------------------------------------------


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder (under $BENCH_DIR when set), removed afterwards."""
    folder = tempfile.mkdtemp(prefix=f"bench_{prefix}_", dir=os.environ.get("BENCH_DIR"))
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def rss_mb(pid: int | None = None) -> float:
    """VmRSS of a process (this one by default), MiB, from /proc."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes (perf_counter)."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
