"""``CeleryExecutor``: one plugin's events as Celery tasks, one task in flight per ordering key.

The daemon stays the sequencer: events wait in the per-key line
(delivery/keys.py) and only one task per key is out at a time, carrying up
to ``task_batch`` events of that key in increasing id order, as workers
require (a late event, which runs after the later events of its key, starts
a task of its own). A result reports each event finished to ``on_done``; the
runner moves the position. Each task is in the in-flight registry from its
first sending until it is answered.

Failures are decided here, by the one failure policy (delivery/failures.py),
never on a worker: a failed event is sent again after the policy's wait,
then switches the plugin off or goes to the dead letters, while the plugin's
other keys go on. A task that comes back without a result (rejected by the
worker, revoked, unreadable) has its first event sent again alone and the
rest put back in line; an event rejected alone is retried by the policy,
then given up: it cannot be run. A worker that refuses a task (another
version of the plugin, busy with it, not serving it) is asked again later;
that is no failure. A task not answered within ``task_timeout`` is sent
again (workers skip events they already did) and its key counts as held in
status and metrics. The plugin's timers run as tasks too (timers.py).
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from shotgun_events.client.outage import Outage
from shotgun_events.delivery.celery.codec import (
    BUSY,
    DONE,
    FAILED,
    REJECTED,
    WRONG_VERSION,
    TaskResult,
    TaskSpec,
    encode_task,
)
from shotgun_events.delivery.celery.tasks import Counters, Hub, Task
from shotgun_events.delivery.celery.timers import CeleryTimers
from shotgun_events.delivery.dispatch import Outcome, TimerFailure
from shotgun_events.delivery.executors import CELERY, OnDone, RejectedError
from shotgun_events.delivery.failures import FailurePolicy, Verdict
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.delivery.keys import KeyFn, KeyLines
from shotgun_events.events import Event
from shotgun_events.plugins.registrar import Timer

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.celery")

#: Waits before sending again a task a worker refused (other version, busy, no such plugin).
REFUSED_WAIT = (1.0, 2.0, 5.0, 10.0)
#: Waits between sends while Redis is away.
OUTAGE_WAIT = 1.0


class CeleryExecutor:
    """Runs one plugin's events on Celery workers and reports each one finished."""

    kind = CELERY

    def __init__(
        self,
        plugin: Plugin,
        *,
        hub: Hub,
        queue: str,
        on_done: OnDone,
        order_key: KeyFn,
        policy: FailurePolicy | None = None,
        registry: InFlight | None = None,
        outage: Outage | None = None,
        task_batch: int = 20,
        task_timeout: float = 300.0,
        capacity: int = 2000,
        describe: Callable[[CeleryExecutor], dict[str, Any]] | None = None,
    ) -> None:
        self.plugin = plugin
        self.queue = queue
        self._hub = hub
        self._on_done = on_done
        self._policy = policy or FailurePolicy()
        self._registry = registry or InFlight()
        self._outage = outage
        self._monotonic = self._registry.monotonic
        self._batch = task_batch
        self._timeout = task_timeout
        self._capacity = capacity
        self._lock = threading.Condition()
        self._lines = KeyLines(order_key)
        #: Per key: the one task out (or waiting to be sent again).
        self._out: dict[Hashable, Task] = {}
        self._by_id: dict[str, Task] = {}
        self._failures: dict[int, int] = {}
        self._count = 0
        self._resend = False
        self._seq = itertools.count(1)
        self._closed = False
        self.counters = Counters()
        # What `status` adds from Redis (queue length, workers): the factory knows the hub.
        self._describe = describe
        self._timers = CeleryTimers(
            plugin,
            hub=hub,
            client=self,
            queue=queue,
            registry=self._registry,
            timeout=task_timeout,
        )
        hub.add(self)

    # -- the Executor protocol -------------------------------------------------

    def submit(self, event: Event) -> None:
        """Queue one event behind the events of its key, and send what can go."""
        with self._lock:
            if self._count >= self._capacity:
                raise RejectedError(self.plugin.name)
            self._lines.add(event)
            self._count += 1
        self._pump()

    def wait_room(self, stop: threading.Event) -> bool:
        """Block until half the capacity is free again; False when ``stop`` was set first."""
        with self._lock:
            while self._count > self._capacity // 2:
                if stop.is_set() or self._closed:
                    return False
                self._lock.wait(0.1)
        return not stop.is_set()

    def in_flight(self) -> set[int]:
        """Ids handed to this executor and not reported finished."""
        with self._lock:
            ids = self._lines.ids()
            ids.update(int(e["id"]) for t in self._out.values() for e in t.events)
            return ids

    def figures(self) -> dict[str, int]:
        """Counters cheap enough for every metrics scrape (no Redis round trip)."""
        c = self.counters
        held = self.held()
        return {
            "tasks_in_flight": len(self._tasks()),
            "sent": c.sent,
            "resent": c.resent,
            "timed_out": c.timed_out,
            "keys_held": len(held),
        }

    def held(self) -> list[tuple[float, int]]:
        """(seconds, first event id) of each task out longer than ``task_timeout``, oldest first."""
        now = self._monotonic()
        return sorted(
            ((now - w.since, w.event_id) for w in self._tasks() if now - w.since > self._timeout),
            reverse=True,
        )

    def status(self) -> dict[str, Any]:
        """What ``status`` shows of this plugin's executor (the runner adds it per plugin)."""
        shown: dict[str, Any] = {
            "queue": self.queue,
            **self.figures(),
            "events_held": len(self.in_flight()),
            "refused": self.counters.refused,
        }
        held = self.held()
        if held:
            seconds, first = held[0]
            with self._lock:
                ids = next(
                    (
                        [int(e["id"]) for e in t.events]
                        for t in self._out.values()
                        if int(t.events[0]["id"]) == first
                    ),
                    [first],
                )
            shown["oldest_held"] = {"seconds": round(seconds, 1), "events": ids}
        if self._describe is not None:
            shown.update(self._describe(self))
        return shown

    def run_timer(self, timer: Timer) -> TimerFailure | None:
        """Run the timer once as a task on a worker; wait for its answer."""
        return self._timers.run(timer)

    def drain(self, timeout: float) -> bool:
        """Wait until every event handed on is reported finished."""
        deadline = self._monotonic() + timeout
        with self._lock:
            while self._count:
                left = deadline - self._monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
            return True

    def close(self, timeout: float) -> None:
        """Wait for what is out, then stop taking results (the rest is re-sent after a restart)."""
        self.drain(timeout)
        with self._lock:
            self._closed = True
            for task in self._out.values():
                self._registry.end(self._work_key(task.key))
        self._timers.drop_all("the plugin's executor closed")
        self._hub.remove(self)

    def _tasks(self) -> list[Any]:
        name = self.plugin.name
        return [
            w
            for w in self._registry.running()
            if w.thread is None and not w.timer and w.plugin.name == name
        ]

    def _work_key(self, key: Hashable) -> tuple[str, str, Hashable]:
        return ("celery", self.plugin.name, key)

    # -- called by the hub -----------------------------------------------------

    def on_result(self, task_id: str, result: TaskResult) -> None:
        """Apply one task's result: report handled events, decide on a failure."""
        if self._timers.answer(task_id, result):
            return
        with self._lock:
            task = self._by_id.pop(task_id, None)
            if task is None or self._out.get(task.key) is not task or self._closed:
                return  # an answer to a copy that was already sent again
            task.task_id = None
        handled = set(result.handled)
        ran = set(result.ran)
        rest = [e for e in task.events if int(e["id"]) not in handled]
        finished = [
            (e, Outcome.DONE if int(e["id"]) in ran else Outcome.SKIPPED)
            for e in task.events
            if int(e["id"]) in handled
        ]
        if result.status == DONE or not rest:
            self._finish(task, finished, keep=[])
        elif result.status in (FAILED, REJECTED):
            self._failed(task, finished, rest, result)
        else:
            self._refused(task, finished, rest, result)
        self._pump()

    def tick(self, now: float) -> None:
        """Send again what is due: retries after their wait, tasks past ``task_timeout``."""
        with self._lock:
            if self._closed:
                return
            resend_all = self._resend
            self._resend = False
            for task in self._out.values():
                if task.due is None and (resend_all or now - task.sent_at >= self._timeout):
                    if not resend_all:
                        self.counters.timed_out += 1
                        log.warning(
                            "%s: task for events %s unanswered after %.0f s; sending it again",
                            self.plugin.name,
                            _ids(task.events),
                            now - task.sent_at,
                        )
                    if task.task_id is not None:
                        self._by_id.pop(task.task_id, None)
                        self._hub.forget(task.task_id)
                        task.task_id = None
                    task.due = now
        self._pump()

    def resend_all(self) -> None:
        """Redis was away: send every task that was out again at the next tick."""
        with self._lock:
            self._resend = True
        self._timers.drop_all("Redis went away while it ran")

    # -- inside ----------------------------------------------------------------

    def _pump(self) -> None:
        """Send the head of every idle key's line, and every task that is due."""
        now = self._monotonic()
        to_send: list[Task] = []
        with self._lock:
            if self._closed or not self.plugin.active:
                return
            if self._outage is not None and self._outage.down:
                return  # nothing goes out while the site cannot answer: it would fail too
            for task in self._out.values():
                if task.due is not None and task.due <= now:
                    task.due = None
                    to_send.append(task)
            while (taken := self._lines.take(self._batch)) is not None:
                key, events = taken
                task = Task(key=key, events=events)
                self._out[key] = task
                self._registry.start(self.plugin, int(events[0]["id"]), task=self._work_key(key))
                to_send.append(task)
            for task in to_send:
                first = int(task.events[0]["id"])
                tag = uuid.uuid4().hex[:8]
                task.task_id = f"{self.plugin.name}-{first}-{next(self._seq)}-{tag}"
                task.sent_at = now
                self._by_id[task.task_id] = task
        for task in to_send:
            self._send(task)

    def _send(self, task: Task) -> None:
        task_id = task.task_id
        if task_id is None:
            return
        spec = TaskSpec(self.plugin.name, self.plugin.fingerprint[2], tuple(task.events))
        if self._hub.send(self, self.queue, encode_task(spec), task_id):
            self.counters.sent += 1
            return
        with self._lock:
            if task.task_id == task_id:
                self._by_id.pop(task_id, None)
                task.task_id = None
                task.due = self._monotonic() + OUTAGE_WAIT

    def _finish(
        self,
        task: Task,
        finished: list[tuple[Event, Outcome]],
        keep: list[Event],
        due: float | None = None,
    ) -> None:
        """Report finished events; the task goes on with ``keep`` (sent at ``due``) or ends."""
        with self._lock:
            if keep:
                task.events = keep
                task.due = due
            else:
                del self._out[task.key]
                self._lines.release(task.key)
                self._registry.end(self._work_key(task.key))
            self._count -= len(finished)
            for event, _ in finished:
                self._failures.pop(int(event["id"]), None)
            self._lock.notify_all()
        for event, outcome in finished:
            self._on_done(event, outcome)

    def _failed(
        self,
        task: Task,
        finished: list[tuple[Event, Outcome]],
        rest: list[Event],
        result: TaskResult,
    ) -> None:
        """A callback raised on the worker (FAILED), or the task came back without a result."""
        if result.unavailable and self._outage is not None:
            # The site could not answer the worker: no failure of the plugin's. The event is
            # held and goes again, with no retry used, once the site answers.
            self._outage.report(result.error or "a worker's site call failed", held=True)
            self._finish(task, finished, keep=rest, due=self._monotonic())
            return
        unrunnable = result.status == REJECTED
        if unrunnable and len(rest) > 1:
            # Which event a worker cannot take is unknown: send the first alone.
            log.warning(
                "%s: task for events %s came back %s; sending event %s alone, the rest after it",
                self.plugin.name,
                _ids(rest),
                result.error,
                rest[0]["id"],
            )
            with self._lock:
                self._lines.put_back(task.key, rest[1:])
            self._finish(task, finished, keep=rest[:1], due=self._monotonic())
            return
        event, event_id = rest[0], int(rest[0]["id"])
        callback = _callback(self.plugin, result)
        with self._lock:
            attempt = self._failures.get(event_id, 0) + 1
            self._failures[event_id] = attempt
        self.counters.failed += 1
        decision = self._policy.decide(
            self.plugin,
            callback,
            event_id,
            attempt,
            result.error or "no error text",
            where=f" on worker {result.worker}" if result.worker else "",
            unrunnable=unrunnable,
            stop_on_error=result.stop_on_error,
        )
        if decision.verdict is Verdict.RETRY:
            self.counters.resent += 1
            self._finish(task, finished, keep=rest, due=self._monotonic() + decision.delay)
        elif decision.verdict is Verdict.STOP:
            dropped = [(event, Outcome.FAILED)]
            dropped += [(e, Outcome.INTERRUPTED) for e in rest[1:]]
            with self._lock:
                dropped += [(e, Outcome.INTERRUPTED) for e in self._lines.clear()]
            self._finish(task, finished + dropped, keep=[])
        else:
            self.counters.dead_letters += 1
            self._finish(
                task, [*finished, (event, Outcome.DONE)], keep=rest[1:], due=self._monotonic()
            )

    def _refused(
        self,
        task: Task,
        finished: list[tuple[Event, Outcome]],
        rest: list[Event],
        result: TaskResult,
    ) -> None:
        self.counters.refused += 1
        wait = REFUSED_WAIT[min(task.refusals, len(REFUSED_WAIT) - 1)]
        if task.refusals == 0 and result.status != BUSY:
            what = (
                f"runs version {result.worker_hash[:12]}, the daemon "
                f"{self.plugin.fingerprint[2][:12]}"
                if result.status == WRONG_VERSION
                else f"cannot run it ({result.error})"
            )
            log.warning(
                "%s: worker %s %s; sending events %s again in %.0f s",
                self.plugin.name,
                result.worker,
                what,
                _ids(rest),
                wait,
            )
        task.refusals += 1
        self._finish(task, finished, keep=rest, due=self._monotonic() + wait)


def _callback(plugin: Plugin, result: TaskResult) -> Any:
    """The daemon's copy of the callback that failed on the worker (same plugin version)."""
    index = result.callback_index
    if index is not None and 0 <= index < len(plugin.callbacks):
        return plugin.callbacks[index]
    return next((c for c in plugin.callbacks if c.name == result.callback), None)


def _ids(events: list[Event]) -> str:
    first, last = int(events[0]["id"]), int(events[-1]["id"])
    return str(first) if first == last else f"{first}-{last} ({len(events)})"
