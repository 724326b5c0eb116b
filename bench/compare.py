"""``run.py --compare REF``: each chosen section on REF and on HEAD, interleaved, side by side.

The sides are installed by ``sides.py``. This tree's bench/ drives both:
for each section and each repetition, ``run.py --only N --runs 1`` runs in
REF's venv and then in HEAD's (the next repetition the other way round, so
a drift of the machine hits both alike), each writing its rows as JSON. A
figure is the median of its repetitions; ``HEAD / REF`` is their ratio; a
figure more than 10 % worse on HEAD is marked ``WORSE``, "worse" being the
way its row says it improves (``Row.better``: from its target, else its unit).
A section that runs on HEAD and fails on REF prints one row saying that REF
lacks what the section needs.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import Profile, Row
from sides import BENCH, CompareError, Side, cache_folder, head_side, ref_side

#: HEAD more than this much worse than REF is marked.
WORSE = 0.10


@dataclass
class Figure:
    """One figure of one side over the repetitions."""

    values: list[float] = field(default_factory=list)
    met: list[bool | None] = field(default_factory=list)

    @property
    def value(self) -> float | None:
        """The median of the repetitions, None when none measured it."""
        return float(statistics.median(self.values)) if self.values else None

    def verdict(self) -> str:
        """yes / NO when every repetition agrees, else how many met the target."""
        judged = [m for m in self.met if m is not None]
        if not judged:
            return ""
        if all(judged) or not any(judged):
            return "yes" if judged[0] else "NO"
        return f"{sum(judged)}/{len(judged)}"


@dataclass
class Compared:
    """One row of the comparison."""

    row: Row
    ref: Figure
    head: Figure
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """HEAD / REF, None when either is missing or REF is 0."""
        a, b = self.ref.value, self.head.value
        return None if a is None or b is None or a == 0 else b / a

    @property
    def worse(self) -> bool:
        """HEAD more than 10 % worse than REF, in the way this figure improves."""
        a, b, better = self.ref.value, self.head.value, self.row.better()
        if a is None or b is None or better is None:
            return False
        if better == "higher":
            return b < a * (1 - WORSE)
        return b > a * (1 + WORSE) if a else b > 0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "section": self.row.section,
            "name": self.row.name,
            "unit": self.row.unit,
            "target": self.row.target,
            "better": self.row.better(),
            "ref": {"value": self.ref.value, "runs": self.ref.values, "met": self.ref.met},
            "head": {"value": self.head.value, "runs": self.head.values, "met": self.head.met},
            "ratio": self.ratio,
            "worse": self.worse,
            "note": self.note,
        }


def run_section(side: Side, number: int, profile: Profile, folder: Path) -> list[dict[str, Any]]:
    """One repetition of one section in a side's venv; its rows (one FAILED row if it broke)."""
    out = folder / f"{side.key[:20]}-{number}-{time.monotonic_ns()}.json"
    size = [] if profile.name == "full" else [f"--{profile.name}"]
    command = [str(side.python), str(BENCH / "run.py"), *size, "--runs", "1"]
    command += ["--only", str(number), "--json", str(out)]
    # The side's own package only: nothing of this tree's src/ may leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(side.python.parent.parent)
    env["PATH"] = f"{side.python.parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env, check=False)
    if done.returncode != 0 or not out.exists():
        return [
            {
                "section": f"{number} ?",
                "name": "FAILED",
                "value": None,
                "unit": "",
                "note": f"run.py exited with {done.returncode} in {side.python}",
            }
        ]
    found = json.loads(out.read_text())
    package = str(found.get("package", ""))
    if not package.startswith(str(side.python.parent.parent)):
        raise CompareError(f"{side.label}: ran shotgun_events from {package}, not its venv")
    return list(found["rows"])


def _key(row: dict[str, Any]) -> str:
    """A row's name with its numbers taken out (sizes and counts may sit in names)."""
    return re.sub(r"\d[\d,.]*", "#", str(row["name"]))


def _failure(rows: list[dict[str, Any]]) -> str | None:
    """The error of a section that failed (its one FAILED row), else None."""
    failed = [row for row in rows if row["name"] == "FAILED"]
    return str(failed[0].get("note", "")) if failed else None


def combine(
    number: int,
    title: str,
    ref_runs: list[list[dict[str, Any]]],
    head_runs: list[list[dict[str, Any]]],
) -> list[Compared]:
    """The compared rows of one section from each side's repetitions."""
    ref_error = next(filter(None, map(_failure, ref_runs)), None)
    head_error = next(filter(None, map(_failure, head_runs)), None)
    section = f"{number} {title.split(' (')[0]}"
    if ref_error or head_error:
        if head_error:
            name, note = "FAILED on HEAD", head_error
        else:
            name, note = "not comparable: REF lacks what this section needs", str(ref_error)
        return [Compared(Row(section, name, None, ""), Figure(), Figure(), note=note[:200])]
    order: list[str] = []
    rows: dict[str, Row] = {}
    figures: dict[str, tuple[Figure, Figure]] = {}
    for side, runs in ((0, ref_runs), (1, head_runs)):
        for rep in runs:
            seen: dict[str, int] = {}
            for data in rep:
                base = _key(data)
                seen[base] = seen.get(base, 0) + 1
                key = f"{data['section']}|{base}|{seen[base]}"
                if key not in rows:
                    order.append(key)
                    rows[key] = Row(
                        data["section"], data["name"], None, data["unit"], data.get("target", "")
                    )
                    figures[key] = (Figure(), Figure())
                figure = figures[key][side]
                if data["value"] is not None:
                    figure.values.append(float(data["value"]))
                figure.met.append(data.get("met"))
    return [Compared(rows[key], *figures[key]) for key in order]


def compare(
    ref: str, sections: Sequence[tuple[int, str]], profile: Profile
) -> tuple[Side, Side, list[Compared]]:
    """Install both sides and run every section on both, interleaved; the compared rows."""
    cache = cache_folder()
    ref_side_ = ref_side(ref, cache)
    head = head_side(cache)
    out: list[Compared] = []
    with tempfile.TemporaryDirectory(prefix="bench_compare_") as tmp:
        for number, title in sections:
            runs: dict[str, list[list[dict[str, Any]]]] = {"ref": [], "head": []}
            for rep in range(profile.runs):
                pair = [("ref", ref_side_), ("head", head)]
                for name, side in pair if rep % 2 == 0 else pair[::-1]:
                    print(
                        f"[{time.strftime('%H:%M:%S')}] {number} {title}: repetition "
                        f"{rep + 1}/{profile.runs} on {name.upper()} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    runs[name].append(run_section(side, number, profile, Path(tmp)))
            out += combine(number, title, runs["ref"], runs["head"])
    return ref_side_, head, out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def format_compare(rows: Sequence[Compared]) -> str:
    """Render the comparison as a Markdown table."""
    header = [
        "#",
        "benchmark",
        "measure",
        "unit",
        "REF",
        "HEAD",
        "HEAD/REF",
        "target",
        "met REF/HEAD",
        "vs REF",
        "note",
    ]
    lines = [header]
    for item in rows:
        number, _, section = item.row.section.partition(" ")
        met = f"{item.ref.verdict() or '-'} / {item.head.verdict() or '-'}"
        ratio = item.ratio
        lines.append(
            [
                number,
                section,
                item.row.name,
                item.row.unit,
                _fmt(item.ref.value),
                _fmt(item.head.value),
                "-" if ratio is None else f"{ratio:.2f}",
                item.row.target,
                met if item.row.target else "",
                "WORSE" if item.worse else "",
                item.note,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)
