"""Smoke test of the benchmark suite: the harness runs on tiny sizes and fills every row.

Nothing here looks at how fast anything is: the figures of a tiny run mean
nothing, and timing assertions would make the suite flaky. It checks that
``bench/run.py`` (the one command of docs/benchmarks.md) runs end to end
against a real local site and reports every row with a value and a target
where the issue sets one.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Rows per section of a full table (section 4 is filled by two benchmarks).
EXPECTED_ROWS = {1: 9, 2: 4, 3: 4, 4: 7, 5: 8, 6: 4, 7: 4, 8: 5, 9: 9, 10: 10, 11: 4, 12: 20, 13: 7}
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
    "default mode / serial mode",
    "serial mode / bare loop",
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


@pytest.fixture
def bench_modules() -> Iterator[dict[str, ModuleType]]:
    """The bench's compare and common modules, imported as run.py imports them."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        yield {name: importlib.import_module(name) for name in ("common", "compare")}
    finally:
        sys.path.remove(str(ROOT / "bench"))
        for name in ("common", "compare", "sides"):
            sys.modules.pop(name, None)


def _row(name: str, value: float | None, unit: str, target: str = "") -> dict[str, object]:
    return {"section": "1 catch-up", "name": name, "value": value, "unit": unit, "target": target}


def test_compare_marks_a_figure_worse_only_past_ten_percent_in_its_own_direction(
    bench_modules: dict[str, ModuleType],
) -> None:
    """Given figures that improve up, down or neither, then only >10 % worse is marked."""
    combine = bench_modules["compare"].combine
    ref = [
        _row("rate", 1000, "events/s"),
        _row("rate kept", 1000, "events/s"),
        _row("ratio", 2.0, "x", ">= 1.5"),
        _row("wall", 10.0, "s"),
        _row("lost", 0, "events", "0"),
        _row("ratio in a band", 1.0, "x", "0.95 - 1.05"),
    ]
    head = [
        _row("rate", 850, "events/s"),
        _row("rate kept", 950, "events/s"),
        _row("ratio", 1.7, "x", ">= 1.5"),
        _row("wall", 11.5, "s"),
        _row("lost", 2, "events", "0"),
        _row("ratio in a band", 0.5, "x", "0.95 - 1.05"),
    ]
    rows = combine(1, "catch-up", [ref], [head])
    worse = {row.row.name: row.worse for row in rows}
    assert worse == {
        "rate": True,
        "rate kept": False,
        "ratio": True,
        "wall": True,
        "lost": True,
        "ratio in a band": False,
    }
    assert rows[0].ratio == pytest.approx(0.85)
    assert rows[4].ratio is None  # REF is 0: no ratio, still marked


def test_compare_matches_rows_whose_names_carry_numbers_and_takes_medians(
    bench_modules: dict[str, ModuleType],
) -> None:
    """Given three repetitions per side with counts in the names, then one row, the medians."""
    combine = bench_modules["compare"].combine
    ref = [[_row(f"p50 ({n} events)", v, "s")] for n, v in ((604, 1.0), (601, 3.0), (600, 2.0))]
    head = [[_row(f"p50 ({n} events)", v, "s")] for n, v in ((599, 4.0), (602, 5.0), (603, 6.0))]
    rows = combine(7, "latency", ref, head)
    assert len(rows) == 1
    assert (rows[0].ref.value, rows[0].head.value) == (2.0, 5.0)


def test_compare_says_when_ref_lacks_what_a_section_needs(
    bench_modules: dict[str, ModuleType],
) -> None:
    """Given a section that fails on REF and runs on HEAD, then one row names REF's error."""
    combine = bench_modules["compare"].combine
    failed = _row("FAILED", None, "") | {"note": "ModuleNotFoundError: shotgun_events.x"}
    rows = combine(13, "layouts", [[failed]], [[_row("rate", 10, "events/s")]])
    assert [row.row.name for row in rows] == ["not comparable: REF lacks what this section needs"]
    assert "ModuleNotFoundError" in rows[0].note


def test_compare_with_an_unknown_ref_says_so_in_one_line(tmp_path: Path) -> None:
    """Given a ref git does not know, when --compare runs, then exit 2 and one line naming it."""
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--compare", "no-such-ref-0xbad"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-ref-0xbad" in lines[0] and "HEAD~N" in lines[0]


@pytest.mark.slow
def test_compare_runs_one_section_on_both_sides_and_reuses_the_venv(tmp_path: Path) -> None:
    """Given --compare HEAD --only 13 --tiny, then both sides' figures, ratios, a cached venv."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, "SHOTGUN_EVENTS_BENCH_CACHE": str(tmp_path / "venvs")}
    runs = []
    for index in range(2):
        out = tmp_path / f"compare-{index}.json"
        command = [sys.executable, str(ROOT / "bench" / "run.py"), "--compare", "HEAD"]
        command += ["--only", "13", "--tiny", "--json", str(out)]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append((done, json.loads(out.read_text())))
    (first, data), (second, _) = runs
    assert data["ref"]["commit"] == head and data["head"]["commit"] == head
    rows = data["rows"]
    assert len(rows) == EXPECTED_ROWS[13]
    assert all(row["section"] == "13 layouts" for row in rows)
    for row in rows:
        assert row["ref"]["value"] is not None and row["head"]["value"] is not None, row
    assert any(row["ratio"] is not None and row["better"] == "higher" for row in rows)
    assert "HEAD/REF" in first.stdout and "REF:  HEAD = " in first.stdout
    assert first.stdout.count("\n| 13 ") == len(rows)
    # The venvs are kept by commit: the second run builds nothing.
    assert "building the venv" in first.stderr
    assert "building the venv" not in second.stderr
    assert list((tmp_path / "venvs").glob("*/ready"))
