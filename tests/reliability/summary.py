"""What the reliability suite did and found, collected across tests and printed at the end."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Answer:
    """How the daemon answered one bad input."""

    category: str
    bad_input: str
    answer: str
    lost: int = 0


@dataclass
class Summary:
    """Counters for the whole session (one process; tests run one after another)."""

    faults: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    events: int = 0
    deliveries: int = 0
    lost: int = 0
    duplicates: int = 0
    duplicate_bound: int = 0
    site_reads: int = 0
    answers: list[Answer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    title = "reliability summary"

    def export(self) -> dict[str, Any]:
        """The counters and rows as JSON-able data (also the --summary file's content)."""
        doc = asdict(self)
        doc["faults"] = dict(self.faults)
        return doc

    def absorb(self, data: dict[str, Any]) -> None:
        """Add what another process (a pytest-xdist worker) recorded."""
        self.faults.update(data["faults"])
        self.kills += data["kills"]
        self.events += data["events"]
        self.deliveries += data["deliveries"]
        self.lost += data["lost"]
        self.duplicates += data["duplicates"]
        self.duplicate_bound += data["duplicate_bound"]
        self.site_reads += data["site_reads"]
        self.answers.extend(Answer(**row) for row in data["answers"])
        self.notes.extend(data["notes"])

    def fault(self, kind: str, count: int = 1) -> None:
        """Count ``count`` injected faults of ``kind``."""
        self.faults[kind] += count

    def answered(self, category: str, bad_input: str, answer: str, lost: int = 0) -> None:
        """Record how one bad input was answered (first line only)."""
        first = next((line.strip() for line in answer.splitlines() if line.strip()), "(nothing)")
        # Long temporary paths say nothing in a table: keep the file name only.
        first = re.sub(r"(?:/[\w.\-]+)+/([\w.\-]+)", r".../\1", first)
        self.answers.append(Answer(category, bad_input, first[:220], lost))

    def lines(self) -> list[str]:
        """The table as text lines; none when the reliability tests did not run."""
        if not (self.events or self.answers or self.kills or self.faults):
            return []
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        rows = [
            ("faults injected", f"{sum(self.faults.values())} ({faults})"),
            ("daemon kills (SIGKILL)", str(self.kills)),
            ("events checked", str(self.events)),
            ("deliveries recorded", str(self.deliveries)),
            ("lost", str(self.lost)),
            ("duplicates", f"{self.duplicates} (allowed: {self.duplicate_bound})"),
            ("bad inputs tried", str(len(self.answers))),
        ]
        width = max(len(k) for k, _ in rows)
        out = [f"{k.ljust(width)}  {v}" for k, v in rows]
        if self.answers:
            out.append("")
            out.append("bad input -> how it was answered")
            cat_w = max(len(a.category) for a in self.answers)
            in_w = min(48, max(len(a.bad_input) for a in self.answers))
            for a in self.answers:
                lost = f"  [lost {a.lost}]" if a.lost else ""
                out.append(
                    f"{a.category.ljust(cat_w)}  {a.bad_input.ljust(in_w)}  {a.answer}{lost}"
                )
        out.extend(self.notes)
        return out

    def dump(self, path: Path) -> None:
        """Write the summary as JSON (for docs/troubleshooting.md and CI artifacts)."""
        path.write_text(json.dumps(self.export(), indent=2) + "\n")


SUMMARY = Summary()


def summary_file() -> Path | None:
    """Where to write the JSON summary: $RELIABILITY_SUMMARY, if set."""
    target = os.environ.get("RELIABILITY_SUMMARY")
    return Path(target) if target else None
