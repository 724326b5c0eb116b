"""Smoke test of the benchmark suite: the harness runs on tiny sizes and fills every row.

Nothing here looks at how fast anything is: the figures of a tiny run mean
nothing, and timing assertions would make the suite flaky. It checks that
``bench/run.py`` (the one command of docs/benchmarks.md) runs end to end
against a real local site and reports every row with a value and a target
where the issue sets one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Rows per section of a full table (section 4 is filled by two benchmarks).
EXPECTED_ROWS = {1: 9, 2: 4, 3: 4, 4: 7, 5: 8, 6: 4, 7: 4, 8: 5, 9: 9, 10: 10, 11: 4, 12: 18, 13: 7}
#: Measures that must carry a target, by a piece of their name.
WITH_TARGET = (
    "daemon / ceiling, parallel",
    "daemon / ceiling, serial",
    "miss, per (event, callback)",
    "call, per (event, callback)",
    "ratio beside / alone",
    "reads per 1,000 events, catch-up, parallel",
    "reads per idle minute",
    "connections, daemon process, parallel",
    "record() in a serial catch-up",
    "RSS growth between the two",
    "plugin reloads",
    "callback start p99",
    "catch-up on / off",
    "GET /metrics with 50 plugins",
    "reads caused by",
    "receiver answer time p99",
    "mis-signed deliveries/s",
    "speed-up 8 vs 1",
    "order violations per shot",
    "overhead of the concurrent path",
    "most re-runs in one kill",
    "wall / busiest plugin's own site time (measured)",
    "daemon / bare sequential shotgun_api3 loop",
    "CPU per event / serial mode's",
    "isolation: nine beside one",
    "out of order / lost",
    "one folder / apart",
)


@pytest.mark.slow
def test_bench_harness_runs_in_tiny_mode_and_produces_every_row(tmp_path: Path) -> None:
    """Given the suite at tiny sizes, when run.py runs, then every row has a value."""
    # Section 9 (wake-ups) waits on real timers most of its run: it runs beside the
    # others in a second process, so the smoke test costs the longer of the two.
    groups = [[9], [n for n in EXPECTED_ROWS if n != 9]]
    runs = []
    for index, group in enumerate(groups):
        out = tmp_path / f"rows-{index}.json"
        command = [sys.executable, str(ROOT / "bench" / "run.py"), "--tiny", "--json", str(out)]
        command += ["--only", *map(str, group)]
        process = subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        runs.append((process, out))
    rows = []
    printed = ""
    for process, out in runs:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-3000:]
        part = json.loads(out.read_text())["rows"]
        failed = [row for row in part if row["name"] == "FAILED"]
        assert not failed, f"benchmarks failed: {failed}\n{stderr[-3000:]}"
        rows += part
        printed += stdout
    counts: dict[int, int] = {}
    for row in rows:
        number = int(row["section"].split()[0])
        counts[number] = counts.get(number, 0) + 1
    assert counts == EXPECTED_ROWS
    missing = [row["name"] for row in rows if row["value"] is None]
    assert not missing, f"rows without a value: {missing}"
    for piece in WITH_TARGET:
        matching = [row for row in rows if piece in row["name"]]
        assert matching, f"no row named like {piece!r}"
        assert all(row["target"] and row["met"] is not None for row in matching), matching
    # The printed table is the product: every row appears in it.
    assert printed.count("\n| ") >= len(rows)
