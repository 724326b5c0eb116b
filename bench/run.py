"""Run the benchmark suite of issue 7 and print one table, with the target next to each figure.

Usage::

    python bench/run.py              # full sizes, medians of 3 runs (about 10-15 min on 2 cores)
    python bench/run.py --quick      # small sizes, one run: a smoke run (under a minute)
    python bench/run.py --only 1 4   # some sections only
    python bench/run.py --json out.json
    python bench/run.py --compare HEAD~1 --only 12   # REF and the working tree side by side

Sections: 1 catch-up, 2 dispatch, 3 isolation, 4 site load, 5 state,
6 memory, 7 latency, 8 observe, 9 wake-ups, 10 concurrency inside a plugin,
11 Celery workers, 12 real plugins (issue 12), 13 layouts (issue 21).
Every figure is printed, none is asserted: a target that is missed shows
``NO`` in the ``met`` column. A section that fails prints one row saying
why, and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# The modules sit next to this file; running ``python bench/run.py`` puts it on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PROFILES, Profile, Row, format_table

import shotgun_events

#: (section number, title, module whose ``run(profile)`` measures it), in the order of the
#: issues. Modules are imported when their section runs: under ``--compare`` a section
#: that needs what an older tree lacks fails alone.
SECTIONS: tuple[tuple[int, str, str], ...] = (
    (1, "catch-up (and 4: reads, connections during catch-up)", "bench_catchup"),
    (2, "dispatch", "bench_dispatch"),
    (3, "isolation", "bench_isolation"),
    (4, "site load (daemon process)", "bench_load"),
    (5, "state", "bench_persistence"),
    (6, "memory", "bench_memory"),
    (7, "latency", "bench_latency"),
    (8, "observe ([http] on: metrics scraped during catch-up)", "bench_observe"),
    (9, "wake-ups (webhooks, adaptive polling)", "bench_wakeups"),
    (10, "concurrency inside a plugin", "bench_concurrency"),
    (11, "celery workers (Redis)", "bench_celery"),
    (
        12,
        "real plugins (issue 12: site calls, distant site, pool, read-ahead)",
        "bench_realplugins",
    ),
    (13, "layouts (issue 21: the daemon's files in one folder or apart)", "bench_layout"),
)


def run_suite(profile: Profile, only: set[int] | None = None) -> list[Row]:
    """Run the chosen sections; a failing section becomes one row naming the error."""
    rows: list[Row] = []
    for number, title, module in SECTIONS:
        if only and number not in only:
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {number} {title} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            measure: Callable[[Profile], list[Row]] = importlib.import_module(module).run
            rows.extend(measure(profile))
        except Exception as exc:  # a benchmark that breaks must not hide the others
            traceback.print_exc()
            rows.append(
                Row(
                    f"{number} {title.split(' (')[0]}",
                    "FAILED",
                    None,
                    "",
                    note=f"{type(exc).__name__}: {exc}"[:200],
                )
            )
        print(f"    done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    # Section 4 rows come from two benchmarks: keep the table in section order.
    rows.sort(key=lambda row: int(row.section.split()[0]))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the table (and write JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, one run")
    size.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the smoke test
    parser.add_argument("--only", type=int, nargs="+", metavar="N", help="sections to run")
    parser.add_argument("--runs", type=int, help="runs per figure (median), default 3 / 1")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows as JSON")
    parser.add_argument(
        "--compare",
        metavar="REF",
        help="run each section on REF (a git ref) and on the working tree, side by side",
    )
    args = parser.parse_args(argv)
    profile = PROFILES["tiny" if args.tiny else "quick" if args.quick else "full"]
    if args.runs:
        profile = Profile(**{**profile.__dict__, "runs": args.runs})
    known = {number for number, _, _ in SECTIONS}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        parser.error(f"no section {unknown[0]}; sections are 1 to {max(known)}")
    only = set(args.only) if args.only else None
    if args.compare:
        return _compare(args.compare, profile, only, args.json)
    started = time.monotonic()
    rows = run_suite(profile, only)
    elapsed = time.monotonic() - started
    print(
        f"shotgun_events benchmarks, profile {profile.name} ({profile.runs} run(s), median); "
        f"{_machine()}; {elapsed:.0f} s"
    )
    print(format_table(rows))
    if args.json:
        data = {
            "profile": profile.name,
            "seconds": elapsed,
            "package": shotgun_events.__file__,
            "rows": [row.as_dict() for row in rows],
        }
        args.json.write_text(json.dumps(data, indent=2))
    return 0


def _compare(ref: str, profile: Profile, only: set[int] | None, out: Path | None) -> int:
    """``--compare REF``: both sides, interleaved; one table with both figures and ratios."""
    from compare import compare, format_compare
    from sides import CompareError, cache_folder

    chosen = [(number, title) for number, title, _ in SECTIONS if not only or number in only]
    started = time.monotonic()
    try:
        ref_side, head, rows = compare(ref, chosen, profile)
    except CompareError as exc:
        print(f"bench/run.py: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    print(
        f"shotgun_events benchmarks, --compare, profile {profile.name} ({profile.runs} "
        f"repetition(s) per side, median; sides interleaved, order alternating); "
        f"{_machine()}; {elapsed:.0f} s\n"
        f"REF:  {ref_side.label}\nHEAD: {head.label}\n"
        f"(the bench/ of the working tree drives both; venvs cached in {cache_folder()}; "
        f"WORSE: HEAD more than 10 % worse than REF)"
    )
    print(format_compare(rows))
    if out:
        data = {
            "profile": profile.name,
            "seconds": elapsed,
            "ref": ref_side.as_dict(),
            "head": head.as_dict(),
            "rows": [row.as_dict() for row in rows],
        }
        out.write_text(json.dumps(data, indent=2))
    return 0


def _machine() -> str:
    return (
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} CPU(s)"
    )


if __name__ == "__main__":
    sys.exit(main())
