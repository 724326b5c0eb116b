"""One run's summary (events, faults, kills, lost, duplicates by cause, RSS) and its verdict.

The summary is printed at the end of the pytest session (and is what
docs/benchmarks.md quotes for a soak); the failure message repeats the seed,
the replay command, what was violated with its evidence, and the plan.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .checker import PluginVerdict
from .driver import Timeline
from .health import Drain, Final
from .logs import Loop
from .plan import Plan
from .processes import Lives


@dataclass
class Report:
    """Everything one run found."""

    plan: Plan
    timeline: Timeline
    lives: Lives
    verdicts: list[PluginVerdict]
    loops: list[Loop]
    drain: Drain
    final: Final
    events: int
    deliveries: int
    rss_start_kib: int
    webhooks: dict[str, Any]
    seconds: float
    root: str
    replay: str
    driver_errors: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    #: Garbled tasks whose rejection was not read once and handled by the failure policy.
    rejections: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    def process_problems(self) -> list[str]:
        """Processes that exited by themselves where nothing excuses it."""
        problems = []
        for item in self.lives.incidents:
            near_redis = any(
                down - 10 <= item.at <= up + 60 for down, up in self.timeline.redis_restarts
            )
            # Workers may exit when they lose Redis (README); the daemon exits 69 only at a
            # start that cannot reach Redis. Anything else is a crash.
            if (item.role.startswith("worker") and near_redis) or (
                item.role == "daemon" and item.code == 69 and near_redis
            ):
                continue
            at = item.at - self.timeline.started
            problems.append(
                f"{item.role} pid {item.pid} exited by itself with {item.code} at {at:.1f}s; "
                f"its output ends: {item.tail[-600:]!r}"
            )
        return problems

    @property
    def ok(self) -> bool:
        """Nothing violated."""
        return not (
            any(not v.ok for v in self.verdicts)
            or self.loops
            or self.unexplained
            or self.rejections
            or self.final.problems
            or self.process_problems()
            or self.driver_errors
        )

    def duplicates(self) -> Counter[str]:
        """Extra deliveries by cause, over every plugin."""
        total: Counter[str] = Counter()
        for verdict in self.verdicts:
            total.update(verdict.duplicates)
        return total

    def summary(self) -> list[str]:
        """The run in a few lines."""
        tl = self.timeline
        lost = sum(len(v.lost) for v in self.verdicts)
        dups = ", ".join(f"{c} {n}" for c, n in sorted(self.duplicates().items())) or "none"
        per_plugin = ", ".join(
            f"{v.name} {len(v.lost)}/{sum(v.duplicates.values())}" for v in self.verdicts
        )
        hooks = self.webhooks
        statuses = hooks.get("statuses", {})
        return [
            f"chaos run seed {self.plan.seed}: {'PASSED' if self.ok else 'FAILED'} "
            f"in {self.seconds:.0f} s ({self.plan.seconds:.0f} s of faults, "
            f"catch-up {self.drain.seconds:.0f} s{'' if self.drain.caught_up else ', STALLED'})",
            f"  events {self.events} ({len(tl.late_ids)} committed late, {len(tl.never_ids)} "
            f"never), {tl.bursts} bursts, deliveries {self.deliveries}",
            f"  faults: {tl.site_faults} site, {tl.webhook_faults} webhook (deliveries sent "
            f"{hooks.get('sent', 0)}, answered 200 {statuses.get('200', 0)}, 401 "
            f"{statuses.get('401', 0)}, duplicated {hooks.get('duplicated', 0)}, mis-signed "
            f"{hooks.get('missigned', 0)})",
            f"  kills: daemon {len(tl.daemon_kills)}, worker {len(tl.worker_kills)}; Redis "
            f"restarts {len(tl.redis_restarts)}; plugin edits {len(tl.edits)}; SIGHUP "
            f"{len(tl.sighups)}; garbled tasks {len(tl.garbled)}; processes that exited by "
            f"themselves {len(self.lives.incidents)}",
            f"  lost {lost}; duplicates by cause: {dups}; lost/duplicates per plugin: {per_plugin}",
            f"  daemon RSS: {self.rss_start_kib / 1024:.1f} MiB at start, "
            f"{self.final.rss_end_kib / 1024:.1f} MiB at the end; {self.longest_life()}; "
            f"SIGTERM exit {self.final.exit_code}",
        ]

    def longest_life(self) -> str:
        """The memory of the daemon that ran longest, from its first sample to its last."""
        lives: dict[int, list[tuple[float, int]]] = {}
        for at, pid, kib in self.timeline.rss:
            lives.setdefault(pid, []).append((at, kib))
        if not lives:
            return "no memory samples"
        pid, samples = max(lives.items(), key=lambda item: item[1][-1][0] - item[1][0][0])
        minutes = (samples[-1][0] - samples[0][0]) / 60
        return (
            f"longest-lived daemon (pid {pid}) {samples[0][1] / 1024:.1f} -> "
            f"{samples[-1][1] / 1024:.1f} MiB over {minutes:.1f} min"
        )

    def failure_message(self) -> str:
        """Seed, replay command, every violation with its evidence, and the plan."""
        lines = [
            f"chaos run with seed {self.plan.seed} found violations "
            f"(replay: {self.replay}; files kept in {self.root})",
            *self.summary(),
            "violations:",
        ]
        lines += [f"  {v.describe()}" for v in self.verdicts if not v.ok]
        for loop in self.loops[:5]:
            lines.append(
                f"  ERROR repeated in a tight loop in {loop.file}: {loop.most_in_a_second} "
                f"times within one second, {loop.total} in all: {loop.line}"
            )
        if self.unexplained:
            lines.append(
                "  ERROR lines no injected fault explains (count x file: logger: message):"
            )
            lines += [f"    {line}" for line in self.unexplained[:8]]
        lines += [f"  {finding}" for finding in self.rejections]
        if len(self.loops) > 5:
            lines.append(f"  ... and {len(self.loops) - 5} more ERROR messages in tight loops")
        if not self.drain.caught_up:
            lines.append(
                f"  not caught up {self.drain.seconds:.0f} s after the last fault (head "
                f"{self.drain.head}):"
            )
            lines += [f"    {line}" for line in self.drain.behind]
            lines.append(f"    meanwhile /livez {self.final.livez}; /readyz {self.final.readyz}")
        lines += [f"  {problem}" for problem in self.final.problems]
        lines += [f"  {problem}" for problem in self.process_problems()]
        lines += [f"  driver: {error}" for error in self.driver_errors]
        if self.evidence:
            lines.append("log lines about the first lost ids:")
            lines += [f"  {line}" for line in self.evidence]
        lines.append("what happened:")
        lines += [f"  {line}" for line in self.timeline.lines[:80]]
        lines.append(self.plan.describe(limit=80))
        return "\n".join(lines)
