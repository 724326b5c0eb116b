"""Compare what the recording plugins got with what the site's event log holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import shotgun_api3

from .summary import SUMMARY


def site_event_ids(
    url: str, script: str, key: str, after: int, upto: int | None = None
) -> list[int]:
    """Every EventLogEntry id in ``(after, upto]`` as the site serves it (real client, paged)."""
    sg = shotgun_api3.Shotgun(url, script, key, connect=False)
    sg.config.timeout_secs = 60
    try:
        filters: list[list[object]] = [["id", "greater_than", after]]
        if upto is not None:
            filters.append(["id", "less_than", upto + 1])
        rows = sg.find(
            "EventLogEntry", filters, ["id"], order=[{"field_name": "id", "direction": "asc"}]
        )
    finally:
        sg.close()
    return [int(row["id"]) for row in rows]


@dataclass
class Report:
    """The comparison for one plugin set: what is missing, repeated or unexpected."""

    expected: int
    deliveries: int
    lost: dict[str, list[int]] = field(default_factory=dict)
    duplicates: dict[str, Counter[int]] = field(default_factory=dict)
    unexpected: dict[str, list[int]] = field(default_factory=dict)
    out_of_order: dict[str, int] = field(default_factory=dict)

    @property
    def lost_count(self) -> int:
        return sum(len(v) for v in self.lost.values())

    def duplicate_count(self, plugin: str | None = None) -> int:
        """Extra deliveries (an event delivered three times counts two)."""
        chosen = (
            self.duplicates.values() if plugin is None else [self.duplicates.get(plugin, Counter())]
        )
        return sum(n - 1 for counts in chosen for n in counts.values())

    def describe(self) -> str:
        """One paragraph for an assertion message."""
        parts = [f"{self.expected} events expected, {self.deliveries} deliveries"]
        for name, ids in self.lost.items():
            if ids:
                parts.append(f"{name} lost {len(ids)}: {ids[:10]}")
        for name in self.duplicates:
            if self.duplicate_count(name):
                parts.append(f"{name} duplicates {self.duplicate_count(name)}")
        for name, ids in self.unexpected.items():
            if ids:
                parts.append(f"{name} got ids not in the site log: {ids[:10]}")
        return "; ".join(parts)


def compare(
    deliveries: Iterable[tuple[str, int]],
    expected_ids: Sequence[int],
    plugins: Sequence[str],
    *,
    allowed_duplicates: int = 0,
    record: bool = True,
) -> Report:
    """Check every plugin got every expected id; count losses, duplicates and strangers.

    Deliveries of ids outside ``expected_ids`` but below its smallest id are ignored
    (events from before the test window); ids above it that the site does not have
    are reported as unexpected.
    """
    expected = set(expected_ids)
    low = min(expected, default=0)
    by_plugin: dict[str, list[int]] = {name: [] for name in plugins}
    for name, event_id in deliveries:
        if name in by_plugin and event_id >= low:
            by_plugin[name].append(event_id)
    report = Report(expected=len(expected) * len(plugins), deliveries=0)
    for name, ids in by_plugin.items():
        counts = Counter(ids)
        report.deliveries += len(ids)
        report.lost[name] = sorted(expected - counts.keys())
        report.duplicates[name] = Counter({i: n for i, n in counts.items() if n > 1})
        report.unexpected[name] = sorted(counts.keys() - expected)
        report.out_of_order[name] = sum(1 for a, b in pairwise(ids) if b < a)
    if record:
        SUMMARY.events += len(expected)
        SUMMARY.deliveries += report.deliveries
        SUMMARY.lost += report.lost_count
        SUMMARY.duplicates += report.duplicate_count()
        SUMMARY.duplicate_bound += allowed_duplicates
    return report
