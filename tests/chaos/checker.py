"""What the plugins got against what the site's event log holds, per plugin and its rules.

Per plugin: every committed event in its scope delivered at least once
(``lost``), nothing else (``unexpected``), each extra delivery explained by
a kill, a worker kill or a Redis restart and within what the README
promises for that plugin's kind (``duplicates``), and the plugin's order
(strict: increasing ids; keyed and Celery: increasing per ordering key;
late gap ids exempt, as the README lets them run after later events). The
event of a garbled task is given up on Celery, never run there. What the
logs say is checked in ``logs.py``.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import shotgun_api3

from .driver import Timeline
from .plugins import Delivery, PluginSpec
from .system import TASK_BATCH, WORKER_THREADS, WORKERS

#: Seconds after an edit by which every new delivery must run the new code.
RELOAD_WITHIN = 30.0
#: Seconds a task may still be unsettled after one of its callbacks ran (20 events, a
#: site hang fault): a worker kill or Redis stop within it can make the event run again.
TASK_WINDOW = 15.0


@dataclass(frozen=True)
class SiteEvent:
    """One EventLogEntry as the site serves it."""

    id: int
    event_type: str
    attribute: str | None
    key: str


def site_events(url: str, script: str, key: str, after: int) -> list[SiteEvent]:
    """Every event after ``after``, through the real client (paged by it)."""
    sg = shotgun_api3.Shotgun(url, script, key, connect=False)
    sg.config.timeout_secs = 120
    try:
        rows = sg.find(
            "EventLogEntry",
            [["id", "greater_than", after]],
            ["id", "event_type", "attribute_name", "entity"],
            order=[{"field_name": "id", "direction": "asc"}],
        )
    finally:
        sg.close()
    found = []
    for row in rows:
        entity = row.get("entity")
        name = f"{entity['type']}:{entity['id']}" if entity else "-"
        found.append(SiteEvent(int(row["id"]), row["event_type"], row["attribute_name"], name))
    return found


def duplicate_bound(spec: PluginSpec, cause: str) -> int:
    """Extra deliveries the README allows one plugin per instance of a cause."""
    if cause == "daemon kill":
        return 0 if spec.kind == "celery" else spec.concurrency
    if cause == "worker kill":
        return WORKER_THREADS * TASK_BATCH  # the events of the tasks that worker was running
    if cause == "redis restart":
        return WORKERS * WORKER_THREADS * TASK_BATCH  # the events of the tasks running then
    return 0


@dataclass
class PluginVerdict:
    """The findings for one plugin."""

    name: str
    kind: str
    expected: int = 0
    delivered: int = 0
    lost: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    #: cause -> extra deliveries ("daemon kill", "worker kill", "redis restart", "unexplained").
    duplicates: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No finding at all."""
        return not (self.lost or self.unexpected or self.problems)

    def describe(self) -> str:
        """A few lines for the failure message."""
        dups = ", ".join(f"{c} {n}" for c, n in sorted(self.duplicates.items())) or "none"
        lines = [
            f"{self.name} ({self.kind}): {self.expected} expected, {self.delivered} delivered, "
            f"{len(self.lost)} lost, {len(self.unexpected)} unexpected, duplicates: {dups}"
        ]
        if self.lost:
            lines.append(f"    lost ids: {_ids(self.lost)}")
        if self.unexpected:
            lines.append(f"    unexpected ids: {_ids(self.unexpected)}")
        lines += [f"    {problem}" for problem in self.problems[:8]]
        if len(self.problems) > 8:
            lines.append(f"    ... {len(self.problems) - 8} more")
        return "\n".join(lines)


def _ids(ids: list[int], limit: int = 20) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return shown + (f" ... ({len(ids)} in all)" if len(ids) > limit else "")


def check_plugin(
    spec: PluginSpec,
    deliveries: list[Delivery],
    events: Iterable[SiteEvent],
    timeline: Timeline,
) -> PluginVerdict:
    """Compare one plugin's deliveries with the events in its scope."""
    verdict = PluginVerdict(spec.name, spec.kind)
    # A garbled task's event is given up by the failure policy: on Celery it ends as a
    # dead letter (the plugins in the daemon run it as any other).
    given_up = {g.event_id for g in timeline.garbled} if spec.kind == "celery" else set()
    scope = {
        e.id: e for e in events if spec.wants(e.event_type, e.attribute) and e.id not in given_up
    }
    got: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        got[delivery.event_id].append(delivery)
        if delivery.event_id in given_up:
            verdict.problems.append(
                f"event {delivery.event_id} ran at {delivery.at - timeline.started:.1f}s "
                f"(pid {delivery.pid}): its one task was garbled, the failure policy should "
                "have given it up"
            )
    verdict.expected = len(scope)
    verdict.delivered = len(got)
    verdict.lost = sorted(scope.keys() - got.keys())
    verdict.unexpected = sorted(got.keys() - scope.keys() - given_up)
    for event_id in verdict.lost[:3]:
        key = None if spec.kind == "strict" else scope[event_id].key
        verdict.problems.append(_lost_context(event_id, key, deliveries, timeline))
    for event_id, runs in got.items():
        if event_id in scope and runs[0].key != scope[event_id].key:
            verdict.problems.append(f"event {event_id} delivered with key {runs[0].key}")
    _check_duplicates(spec, got, timeline, verdict)
    _check_order(spec, deliveries, set(timeline.late_ids), timeline.started, verdict)
    _check_reloads(spec, deliveries, timeline, verdict)
    return verdict


def _lost_context(
    event_id: int, key: str | None, deliveries: list[Delivery], timeline: Timeline
) -> str:
    """Where a lost event fell: the deliveries around its id (of its key, if keyed), the kills."""
    line = [d for d in deliveries if key is None or d.key == key]
    before = max((d for d in line if d.event_id < event_id), key=lambda d: d.event_id, default=None)
    after = min((d for d in line if d.event_id > event_id), key=lambda d: d.event_id, default=None)

    def at(d: Delivery | None) -> str:
        return (
            "none" if d is None else f"{d.event_id} at {d.at - timeline.started:.2f}s pid {d.pid}"
        )

    low = before.at if before is not None else timeline.started
    high = after.at if after is not None else low + 3600
    kills = [
        f"{what} {pid} at {t - timeline.started:.2f}s"
        for what, events in (("daemon", timeline.daemon_kills), ("worker", timeline.worker_kills))
        for t, pid in events
        if low <= t <= high
    ]
    where = "" if key is None else f" (key {key})"
    return (
        f"lost {event_id}{where}: delivered just below it {at(before)}, just above it "
        f"{at(after)}; "
        f"kills in between: {', '.join(kills) or 'none'}"
    )


def _cause(
    spec: PluginSpec, before: Delivery, after: Delivery, timeline: Timeline
) -> tuple[str, object]:
    """Why an event ran again: (cause, which instance of it).

    In the daemon only a daemon kill explains a repeat. On Celery, the fault that
    came soonest after the first run, while its task could still be unsettled: a kill
    of the worker that ran it, or a Redis restart.
    """
    if spec.kind != "celery":
        killed = any(pid == before.pid for _, pid in timeline.daemon_kills)
        if killed and after.pid != before.pid:
            return "daemon kill", before.pid
        return "unexplained", None
    found: list[tuple[float, str, object]] = []
    for at, pid in timeline.worker_kills:
        if pid == before.pid and before.at <= at <= min(after.at, before.at + TASK_WINDOW):
            found.append((at, "worker kill", pid))
    for n, (down, up) in enumerate(timeline.redis_restarts):
        if down - TASK_WINDOW <= before.at <= up + 5 and after.at >= down:
            found.append((max(down, before.at), "redis restart", n))
    for at, pid in timeline.daemon_kills:
        if before.at <= at <= after.at:
            found.append((at, "daemon kill", pid))
    if not found:
        return "unexplained", None
    _, cause, instance = min(found, key=lambda item: item[0])
    return cause, instance


def _check_duplicates(
    spec: PluginSpec,
    got: dict[int, list[Delivery]],
    timeline: Timeline,
    verdict: PluginVerdict,
) -> None:
    per_instance: Counter[tuple[str, object]] = Counter()
    for event_id, runs in sorted(got.items()):
        for before, after in itertools.pairwise(runs):
            cause, instance = _cause(spec, before, after, timeline)
            verdict.duplicates[cause] += 1
            per_instance[(cause, instance)] += 1
            if cause == "unexplained":
                verdict.problems.append(
                    f"event {event_id} ran again with no kill or restart to explain it: "
                    f"pid {before.pid} at {before.at - timeline.started:.1f}s, "
                    f"pid {after.pid} at {after.at - timeline.started:.1f}s"
                )
    for (cause, instance), n in sorted(per_instance.items(), key=str):
        bound = duplicate_bound(spec, cause)
        if cause != "unexplained" and n > bound:
            verdict.problems.append(
                f"{n} events ran again after one {cause} ({instance}); "
                f"the README allows {bound} for a {spec.kind} plugin"
            )


def _check_order(
    spec: PluginSpec,
    deliveries: list[Delivery],
    late: set[int],
    started: float,
    verdict: PluginVerdict,
) -> None:
    """First deliveries of on-time events in increasing id order (per key unless strict)."""
    seen: set[int] = set()
    last: dict[str, Delivery] = {}
    for delivery in deliveries:
        if delivery.event_id in seen:
            continue
        seen.add(delivery.event_id)
        if delivery.event_id in late:
            continue
        line = "all" if spec.kind == "strict" else delivery.key
        previous = last.get(line)
        if previous is not None and delivery.event_id < previous.event_id:
            where = "" if line == "all" else f" on key {line}"
            verdict.problems.append(
                f"order{where}: event {delivery.event_id} ran after {previous.event_id} "
                f"({previous.at - started:.2f}s pid {previous.pid}, "
                f"{delivery.at - started:.2f}s pid {delivery.pid})"
            )
        if previous is None or delivery.event_id > previous.event_id:
            last[line] = delivery


def _check_reloads(
    spec: PluginSpec, deliveries: list[Delivery], timeline: Timeline, verdict: PluginVerdict
) -> None:
    """After an edit, the new code handles every event from ``RELOAD_WITHIN`` seconds on."""
    for at, name, version in timeline.edits:
        if name != spec.name:
            continue
        stale = [d for d in deliveries if d.at > at + RELOAD_WITHIN and d.version < version]
        if stale:
            first = stale[0]
            verdict.problems.append(
                f"edit to version {version} at {at - timeline.started:.1f}s not picked up: "
                f"{len(stale)} events ran the old code later, the first {first.event_id} "
                f"at {first.at - timeline.started:.1f}s (pid {first.pid})"
            )
        if not any(d.version >= version for d in deliveries):
            verdict.problems.append(f"version {version} of the plugin never ran")
