"""Acting out a plan: steady traffic from a writer thread, each step at its moment.

The ``Timeline`` is what really happened, with wall-clock times (the same
clock the plugins stamp their deliveries with): which pid was killed when,
when Redis was down, which plugin version was saved when, which gap ids
committed late and which never did. The checker reads it to tell the
duplicates a kill explains from the ones nothing explains.
"""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from shotgun_events.delivery.celery.app import queue_name

from .broker import BRPOP_TIMEOUT, garble_event
from .plan import ENTITIES, EVENT_KINDS, Plan, Step
from .system import System, rss_kib

#: Seconds between two samples of the daemon's memory.
RSS_EVERY = 15.0
#: The plugin on Celery workers (tests/chaos/plugins.py).
PLUGIN = "celery_rec"
#: The first of the garble step's own shots, one per try (the traffic's are plan.ENTITIES):
#: their keys never have a task out.
OWN_SHOT = 101
#: Seconds the garble step may take to find its task (the site may be down a while: no
#: task goes out until it answers), and the longest it holds the workers at a time (well
#: under the run's task_timeout, after which the daemon would send their tasks again).
#: A storm of site faults can cost the daemon's reads two rounds of the shipped retry
#: policy (max_conn_retries = 5 attempts over 15 s, then conn_retry_sleep = 60 s), during
#: which it is rightly not ready: a soak saw 75 s without a read.
GARBLE_WAIT = 150.0
HOLD = 8.0
#: Seconds for a garbled task's rejection by a worker and the daemon's decision on it.
REJECT_WAIT = 30.0


@dataclass(frozen=True)
class Garbled:
    """A task garbled in the broker: its id and its one event."""

    task_id: str
    event_id: int


@dataclass
class Timeline:
    """What the driver did, when (``time.time()``)."""

    started: float = 0.0
    first_id: int = 0  # the newest event id before any traffic: plugins start after it
    daemon_kills: list[tuple[float, int]] = field(default_factory=list)
    worker_kills: list[tuple[float, int]] = field(default_factory=list)
    redis_restarts: list[tuple[float, float]] = field(default_factory=list)
    edits: list[tuple[float, str, int]] = field(default_factory=list)
    sighups: list[float] = field(default_factory=list)
    late_ids: dict[int, float] = field(default_factory=dict)  # id -> commit time
    never_ids: set[int] = field(default_factory=set)
    garbled: list[Garbled] = field(default_factory=list)
    site_faults: int = 0
    webhook_faults: int = 0
    bursts: int = 0
    #: (time, daemon pid, RSS in KiB), sampled every RSS_EVERY seconds.
    rss: list[tuple[float, int, int]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Add a line to the log of what happened."""
        self.lines.append(f"{time.time() - self.started:8.1f}s  {text}")


class Driver:
    """Runs a plan against a System: traffic, faults, kills and restarts."""

    def __init__(self, system: System, plan: Plan) -> None:
        """Prepare; nothing runs until ``run``."""
        self.system = system
        self.plan = plan
        self.timeline = Timeline()
        self._groups: dict[int, list[int]] = {}
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._rng = random.Random(plan.seed + 1)
        self._redis_down = 0.0
        self._own = itertools.count(OWN_SHOT)
        self.errors: list[str] = []

    def run(self) -> Timeline:
        """Start the traffic, act out every step at its time, stop the traffic."""
        tl = self.timeline
        tl.first_id = int(self.system.control("newest_event_id"))
        tl.started = time.time()
        self._writer = threading.Thread(target=self._write, name="chaos-writer", daemon=True)
        self._writer.start()
        sampler = threading.Thread(target=self._sample, name="chaos-rss", daemon=True)
        sampler.start()
        try:
            for step in self.plan.steps:
                wait = tl.started + step.at - time.time()
                if wait > 0:
                    time.sleep(wait)
                self._act(step)
            time.sleep(max(0.0, tl.started + self.plan.seconds - time.time()))
        finally:
            self._stop.set()
            self._writer.join(30)
            sampler.join(30)
        return tl

    def settle(self) -> None:
        """After the plan: no faults left, every reserved id decided, every process up."""
        system = self.system
        system.control("clear_faults")
        system.control("clear_webhook_faults")
        for group in list(self._groups):
            self._discard(group)
        system.start_redis()
        for process in (*system.workers, system.daemon):
            system.ensure_started(process)

    # -- the steps ---------------------------------------------------------------

    def _act(self, step: Step) -> None:
        try:
            getattr(self, f"_do_{step.kind}")(**step.args)
        except Exception as exc:  # a step that cannot be done is reported, the run goes on
            self.errors.append(f"{step.describe()}: {type(exc).__name__}: {exc}")
            self.timeline.note(f"FAILED {step.describe()}: {exc}")

    def _do_burst(self, events: int, entities: list[dict[str, Any]]) -> None:
        rng = self._rng
        left = events
        while left > 0:
            for entity in entities:
                n = min(left, rng.randint(5, 25))
                if n <= 0:
                    break
                self._append(n, entity, rng)
                left -= n
        self.timeline.bursts += 1
        self.timeline.note(f"burst of {events} events on {_names(entities)}")

    def _do_reserve(self, group: int, ids: int) -> None:
        self._groups[group] = [int(i) for i in self.system.control("reserve_event_ids", n=ids)]
        self.timeline.note(f"reserved gap group {group}: ids {self._groups[group]}")

    def _do_commit(
        self, group: int, event_type: str, attribute: str, entity: dict[str, Any]
    ) -> None:
        ids = self._groups.pop(group, [])
        if not ids:
            return
        self.system.control(
            "commit_reserved",
            ids=ids,
            event_type=event_type,
            attribute_name=attribute,
            entity=entity,
        )
        now = time.time()
        for event_id in ids:
            self.timeline.late_ids[event_id] = now
        self.timeline.note(f"committed gap group {group} late: ids {ids} on {_names([entity])}")

    def _do_discard(self, group: int) -> None:
        self._discard(group)

    def _discard(self, group: int) -> None:
        ids = self._groups.pop(group, [])
        if ids:
            self.system.control("discard_reserved", ids=ids)
            self.timeline.never_ids.update(ids)
            self.timeline.note(f"discarded gap group {group}: ids {ids} never commit")

    def _do_garble(self) -> None:
        """Garble one task of the Celery plugin while it waits in Redis; a worker rejects it.

        Returns once a worker has rejected it and the daemon's failure policy has
        given its event up, so that the next step cannot kill the daemon before it
        read the answer. Tries again (with a new entity) while no task showed.
        """
        system = self.system
        queue = queue_name(system.celery(), PLUGIN)
        logs = [*system.worker_logs(), system.logs / f"plugin.{PLUGIN}"]
        marks = {path: path.stat().st_size if path.exists() else 0 for path in logs}
        deadline = time.monotonic() + GARBLE_WAIT
        attempts = 1
        with system.redis_client() as client:
            while (found := self._garble_once(client, queue, deadline)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no task garbled in {attempts} tries")
                attempts += 1
        garbled, held = found
        self.timeline.garbled.append(garbled)
        self.timeline.note(
            f"garbled task {garbled.task_id} (event {garbled.event_id}) in queue {queue}; "
            f"workers held {held:.1f} s (attempt {attempts})"
        )
        awaited = {
            f"malformed task {garbled.task_id} rejected": "no worker rejected it",
            f"the task failed on event {garbled.event_id} ": "the daemon's failure policy "
            f"decided nothing on event {garbled.event_id}",
        }
        deadline = time.monotonic() + REJECT_WAIT
        while missing := [
            what for text, what in awaited.items() if text not in _logged(system, marks)
        ]:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"garbled task {garbled.task_id}: {' and '.join(missing)} within "
                    f"{REJECT_WAIT:.0f} s"
                )
            time.sleep(0.2)

    def _garble_once(
        self, client: redis.Redis, queue: str, deadline: float
    ) -> tuple[Garbled, float] | None:
        """One try: (the garbled task, seconds the workers were held), or None.

        Once the daemon is ready (the site answers, so tasks go out), the workers
        are held (SIGSTOP, as long callbacks would hold them) and one event is
        written on an entity of the step's own: its key has no task out, so the
        daemon sends that event in a task of its own, garbled while it waits. A
        second event of the entity follows, queued behind it in the daemon. None
        when the task did not show within HOLD seconds (its event then runs as any
        other).
        """
        system = self.system
        while not system.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the daemon's /readyz not 200 within {GARBLE_WAIT:.0f} s")
            time.sleep(0.5)
        entity = {"type": "Shot", "id": next(self._own)}
        held = [w for w in system.workers if w.send(signal.SIGSTOP)]
        since = time.monotonic()
        try:
            time.sleep(BRPOP_TIMEOUT + 0.5)
            event_id = self._append(1, entity, self._rng)
            while time.monotonic() < since + HOLD:
                task_id = garble_event(client, queue, event_id)
                if task_id is not None:
                    self._append(1, entity, self._rng)
                    return Garbled(task_id, event_id), time.monotonic() - since
                time.sleep(0.05)
        finally:
            for worker in held:
                worker.send(signal.SIGCONT)
        self.timeline.note(f"no task of event {event_id} waited in {queue} within {HOLD:.0f} s")
        return None

    def _do_kill_daemon(self) -> None:
        daemon = self.system.daemon
        if not daemon.alive():
            self.timeline.note("daemon kill skipped: not running")
            return
        pid = daemon.pid
        daemon.kill()
        self.timeline.daemon_kills.append((time.time(), pid))
        self.timeline.note(f"SIGKILL daemon pid {pid}")

    def _do_start_daemon(self) -> None:
        self.system.ensure_started(self.system.daemon)
        self.timeline.note(f"daemon started, pid {self.system.daemon.pid}")

    def _do_kill_worker(self, worker: int) -> None:
        process = self.system.workers[worker]
        if not process.alive():
            return
        pid = process.pid
        process.kill()
        self.timeline.worker_kills.append((time.time(), pid))
        self.timeline.note(f"SIGKILL worker{worker} pid {pid}")

    def _do_start_worker(self, worker: int) -> None:
        process = self.system.workers[worker]
        self.system.ensure_started(process)
        self.timeline.note(f"worker{worker} started, pid {process.pid}")

    def _do_stop_redis(self) -> None:
        code = self.system.redis.terminate(30)
        self._redis_down = time.time()
        self.timeline.note(f"redis-server stopped (SIGTERM, exit {code})")

    def _do_start_redis(self) -> None:
        self.system.start_redis()
        self.timeline.redis_restarts.append((self._redis_down, time.time()))
        self.timeline.note("redis-server started again")

    def _do_edit_plugin(self, plugin: str) -> None:
        version = self.system.edit_plugin(plugin)
        self.timeline.edits.append((time.time(), plugin, version))
        self.timeline.note(f"edited plugin {plugin}: version {version}")

    def _do_sighup(self) -> None:
        if self.system.daemon.send(signal.SIGHUP):
            self.timeline.sighups.append(time.time())
            self.timeline.note(f"SIGHUP daemon pid {self.system.daemon.pid}")

    def _do_site_fault(self, kind: str, count: int, seconds: float | None = None) -> None:
        args: dict[str, Any] = {"count": count}
        if kind.startswith("status-"):
            kind, args["status"] = "status", int(kind.split("-")[1])
        if seconds is not None:
            args["seconds"] = seconds
        self.system.control("inject_fault", kind=kind, **args)
        self.timeline.site_faults += 1
        self.timeline.note(f"site fault {kind} {args}")

    def _do_webhook_fault(self, kind: str, count: int, **args: Any) -> None:
        self.system.control("webhook_fault", kind=kind, count=count, **args)
        self.timeline.webhook_faults += 1
        self.timeline.note(f"webhook fault {kind} x{count} {args}")

    # -- steady traffic ------------------------------------------------------------

    def _write(self) -> None:
        """Append a few events at a time, about ``plan.rate`` a second, until stopped."""
        rng = random.Random(self.plan.seed + 2)
        while not self._stop.is_set():
            n = rng.randint(1, 4)
            pair = rng.choice(ENTITIES)
            try:
                self._append(n, {"type": pair[0], "id": pair[1]}, rng)
            except OSError as exc:  # the site is never killed; a failed write is a finding
                self.errors.append(f"writer: {exc}")
            self._stop.wait(rng.expovariate(self.plan.rate / n))

    def _sample(self) -> None:
        """Note the daemon's resident memory every RSS_EVERY seconds."""
        daemon = self.system.daemon
        while not self._stop.wait(RSS_EVERY):
            if daemon.alive():
                pid = daemon.pid
                kib = rss_kib(pid)
                if kib:
                    self.timeline.rss.append((time.time(), pid, kib))

    def _append(self, n: int, entity: dict[str, Any], rng: random.Random) -> int:
        """Write ``n`` events on ``entity``; the first one's id."""
        kinds = [k for k in EVENT_KINDS if k[0] == f"Shotgun_{entity['type']}_Change"]
        event_type, attribute = rng.choice(kinds)
        first, _ = self.system.control(
            "append_events", n=n, event_type=event_type, attribute_name=attribute, entity=entity
        )
        return int(first)


def _logged(system: System, marks: dict[Path, int]) -> str:
    """What the workers' logs and the Celery plugin's log got since ``marks`` (new files whole)."""
    text = []
    for path in {*system.worker_logs(), *marks}:
        if path.exists():
            with open(path, "rb") as log:
                log.seek(marks.get(path, 0))
                text.append(log.read().decode(errors="replace"))
    return "".join(text)


def _names(entities: list[dict[str, Any]]) -> str:
    return ", ".join(f"{e['type']}:{e['id']}" for e in entities)
