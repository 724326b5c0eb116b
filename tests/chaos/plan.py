"""The fault plan of one chaos run, drawn from its seed: what happens when, and to what.

The same seed and length give the same plan, step for step, so a failing
run is replayed with ``pytest tests/chaos --chaos-seed N``. The run is cut
into cycles of about two minutes and every cycle gets the whole mix: bursts
of events on a few hot entities, gap ids committed late (some right after a
burst on one of its entities, where a keyed plugin has later events of that
key queued) or never, three daemon kills (one inside a burst, where plugins
are inside their callbacks; in a soak, in one cycle of five, so the daemon
also lives for minutes), a worker kill and a Redis restart (each inside a
burst, where tasks are running), a plugin edit, a SIGHUP, site faults,
webhook faults, and one garbled task: a message of the Celery plugin waiting
in Redis is garbled so that the worker taking it rejects it (an answer that
is not a result, which the failure policy handles), at a moment clear of the
kills and restarts. Steady traffic between them is drawn by the writer from
the same seed.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: Seconds of one cycle of faults; a soak repeats cycles over its whole length.
CYCLE = 120.0
#: The daemon is killed in every this-many-th cycle (the first one included).
KILL_EVERY = 5
#: Entities the traffic touches: few enough that ordering keys have queues.
ENTITIES: tuple[tuple[str, int], ...] = tuple(
    (kind, n) for kind in ("Shot", "Task") for n in range(1, 7)
)
#: Event types and the attribute each changes (Version events have no entity key).
EVENT_KINDS: tuple[tuple[str, str], ...] = (
    ("Shotgun_Shot_Change", "sg_status_list"),
    ("Shotgun_Shot_Change", "description"),
    ("Shotgun_Task_Change", "sg_status_list"),
    ("Shotgun_Task_Change", "due_date"),
)
SITE_FAULTS = ("status-500", "status-503", "reset", "garbage", "hang")
WEBHOOK_FAULTS = ("duplicate", "missign", "delay", "drop")
#: Steps around which a process is down; the garbled task keeps QUIET seconds from them.
DISRUPTIVE = (
    "kill_daemon",
    "start_daemon",
    "kill_worker",
    "start_worker",
    "stop_redis",
    "start_redis",
)
QUIET = 10.0
#: The plugins an edit may touch (tests/chaos/plugins.py).
EDITABLE = ("quick_all", "quick_status", "site_caller", "keyed", "celery_rec")


@dataclass(frozen=True)
class Step:
    """One thing the driver does, ``at`` seconds after the traffic starts."""

    at: float
    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: time, kind, arguments."""
        text = " ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.at:8.1f}s  {self.kind:<14} {text}".rstrip()


@dataclass(frozen=True)
class Plan:
    """Every step of a run, in time order, and the steady traffic's parameters."""

    seed: int
    seconds: float
    steps: tuple[Step, ...]
    rate: float  # steady events per second between bursts

    def counts(self) -> Counter[str]:
        """Steps by kind."""
        return Counter(step.kind for step in self.steps)

    def describe(self, limit: int | None = None) -> str:
        """The plan as text: a header, then one line per step (the first ``limit``)."""
        counts = ", ".join(f"{kind} {n}" for kind, n in sorted(self.counts().items()))
        lines = [
            f"chaos plan: seed {self.seed}, {self.seconds:.0f} s of faults, "
            f"steady traffic {self.rate:.1f} events/s",
            f"  steps: {counts}",
        ]
        shown = self.steps if limit is None else self.steps[:limit]
        lines += [f"  {step.describe()}" for step in shown]
        if len(shown) < len(self.steps):
            lines.append(f"  ... {len(self.steps) - len(shown)} more steps (printed at the start)")
        return "\n".join(lines)


def build_plan(seed: int, seconds: float) -> Plan:
    """Draw the plan of a run of ``seconds`` of faults from ``seed``."""
    rng = random.Random(seed)
    steps: list[Step] = []
    group = 0
    cycles = max(1, round(seconds / CYCLE))
    for n in range(cycles):
        # In a soak the daemon is killed in one cycle of five only, so that it also runs
        # for minutes at a time (its memory over a long life is part of the report).
        cycle_steps, group = _cycle(
            rng, n * seconds / cycles, seconds / cycles, group, kills_wanted=n % KILL_EVERY == 0
        )
        steps += cycle_steps
    steps.sort(key=lambda step: step.at)
    return Plan(seed=seed, seconds=seconds, steps=tuple(steps), rate=rng.uniform(5.0, 10.0))


def _spread(rng: random.Random, n: int, low: float, high: float, gap: float) -> list[float]:
    """``n`` times in ``[low, high]``, at least ``gap`` apart (fewer if they do not fit)."""
    for _ in range(200):
        times = sorted(rng.uniform(low, high) for _ in range(n))
        if all(b - a >= gap for a, b in itertools.pairwise(times)):
            return times
    return [low + i * gap for i in range(n) if low + i * gap <= high]


def _clear_of(rng: random.Random, busy: list[float], low: float, high: float, gap: float) -> float:
    """A time in ``[low, high]`` at least ``gap`` from each of ``busy``.

    A cycle's kills and restarts come in at most four clusters of a few
    seconds: with a gap of QUIET they cover at most about 110 s of a short
    run's 137, and one of 200 draws falls in the rest. ValueError if none does.
    """
    times = [rng.uniform(low, high) for _ in range(200)]
    clear = [at for at in times if all(abs(at - b) >= gap for b in busy)]
    if not clear:
        raise ValueError(f"no moment in [{low:.0f}, {high:.0f}] s is {gap:.0f} s clear of {busy}")
    return clear[0]


def _entity(pair: tuple[str, int]) -> dict[str, Any]:
    return {"type": pair[0], "id": pair[1]}


def _change(entity_type: str) -> str:
    """The change event type of an entity type."""
    return f"Shotgun_{entity_type}_Change"


def _cycle(
    rng: random.Random, t0: float, length: float, group: int, *, kills_wanted: bool
) -> tuple[list[Step], int]:
    """One cycle's steps from ``t0`` for ``length`` seconds (daemon kills if ``kills_wanted``).

    Returns them and the next gap group number.
    """
    steps: list[Step] = []
    end = t0 + length - 8  # room for the last restart before the cycle (or run) ends
    bursts = _spread(rng, 3, t0 + 8, end - 12, 20)
    for at in bursts:
        hot = rng.sample(ENTITIES, rng.randint(2, 3))
        steps.append(
            Step(
                at,
                "burst",
                {"events": rng.randint(300, 600), "entities": [_entity(e) for e in hot]},
            )
        )
        # A gap reserved before the burst that commits inside it, on one of its entities.
        group += 1
        pair = rng.choice(hot)
        kind, attribute = rng.choice([k for k in EVENT_KINDS if k[0] == _change(pair[0])])
        entity = _entity(pair)
        steps.append(
            Step(at - rng.uniform(2, 6), "reserve", {"group": group, "ids": rng.randint(1, 3)})
        )
        steps.append(
            Step(
                at + rng.uniform(0.5, 2.5),
                "commit",
                {"group": group, "event_type": kind, "attribute": attribute, "entity": entity},
            )
        )
    # A gap that commits late at a random moment, and one that never commits.
    group += 1
    reserved = rng.uniform(t0 + 2, end - 20)
    pair = rng.choice(ENTITIES)
    kind, attribute = rng.choice([k for k in EVENT_KINDS if k[0] == _change(pair[0])])
    entity = _entity(pair)
    steps.append(Step(reserved, "reserve", {"group": group, "ids": rng.randint(1, 4)}))
    steps.append(
        Step(
            min(reserved + rng.uniform(5, 60), end),
            "commit",
            {"group": group, "event_type": kind, "attribute": attribute, "entity": entity},
        )
    )
    group += 1
    reserved = rng.uniform(t0 + 2, end - 20)
    steps.append(Step(reserved, "reserve", {"group": group, "ids": rng.randint(1, 3)}))
    steps.append(Step(min(reserved + rng.uniform(5, 30), end), "discard", {"group": group}))
    # Inside the bursts, where callbacks and tasks are running: a daemon kill, a worker
    # kill and a Redis restart, each in its own burst; a second daemon kill a few seconds
    # after the worker kill (callbacks are still running then), a third anywhere.
    inside = [at + rng.uniform(1.0, 3.0) for at in rng.sample(bursts, len(bursts))]
    kills = [inside[0], inside[1] + rng.uniform(3.0, 5.0)]
    for at in _spread(rng, 10, t0 + 5, end - 5, 5):
        if len(kills) < 3 and all(abs(at - k) >= 10 for k in [*kills, *inside[1:]]):
            kills.append(at)
    for at in kills if kills_wanted else []:
        steps.append(Step(at, "kill_daemon"))
        steps.append(Step(at + rng.uniform(0.5, 3.0), "start_daemon"))
    worker = rng.randrange(2)
    steps.append(Step(inside[1], "kill_worker", {"worker": worker}))
    steps.append(Step(inside[1] + rng.uniform(1.0, 5.0), "start_worker", {"worker": worker}))
    steps.append(Step(inside[2], "stop_redis"))
    steps.append(Step(inside[2] + rng.uniform(1.0, 5.0), "start_redis"))
    # A task message garbled in Redis, so that a worker rejects it: an answer that is not a
    # result. Clear of the kills and restarts: it needs the daemon, Redis and workers up.
    busy = [s.at for s in steps if s.kind in DISRUPTIVE]
    steps.append(Step(_clear_of(rng, busy, t0 + 5, end, QUIET), "garble"))
    steps.append(Step(rng.uniform(t0 + 5, end), "edit_plugin", {"plugin": rng.choice(EDITABLE)}))
    steps.append(Step(rng.uniform(t0 + 5, end), "sighup"))
    for at in sorted(rng.uniform(t0 + 3, end) for _ in range(8)):
        kind = rng.choice(SITE_FAULTS)
        args: dict[str, Any] = {"kind": kind, "count": rng.randint(1, 3)}
        if kind == "hang":
            args = {"kind": kind, "count": 1, "seconds": round(rng.uniform(2, 8), 1)}
        steps.append(Step(at, "site_fault", args))
    for at in sorted(rng.uniform(t0 + 3, end) for _ in range(4)):
        kind = rng.choice(WEBHOOK_FAULTS)
        args = {"kind": kind, "count": rng.randint(3, 15)}
        if kind == "duplicate":
            args["copies"] = rng.randint(2, 3)
        if kind == "delay":
            args["seconds"] = round(rng.uniform(1, 4), 1)
        steps.append(Step(at, "webhook_fault", args))
    return [Step(round(s.at, 1), s.kind, s.args) for s in steps], group
