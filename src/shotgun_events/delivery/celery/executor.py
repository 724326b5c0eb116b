"""``CeleryExecutor``: one plugin's events as Celery tasks, one task in flight per ordering key.

The daemon stays the sequencer: each ordering key's events wait in their own
line in the order they arrive (id order; a late event runs when it turns up,
after the later events of its key), and only the head of a line is out at a
time: one task carrying up to ``task_batch`` events of that key in increasing
id order, as workers require (a late event starts a task of its own). A result
reports each event finished to ``on_done``; the runner advances the watermark.

Failures are decided here, never on a worker: a failed event is sent again
after the retry policy's wait, then dead-lettered
(``stopOnError=False``) or switches the plugin off (``stopOnError=True``),
while the plugin's other keys go on. A task that comes back without a result
(rejected by the worker, revoked, unreadable) has its first event sent again
alone and the rest put back in line; an event rejected alone is retried by
the policy, then dead-lettered: it cannot be run, which is no plugin's
failure. A task not answered within ``task_timeout`` is sent again; workers
skip events they already did; its key counts as held in status and metrics.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

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
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.failures import DeadLetters, RetryPolicy
from shotgun_events.events import Event

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.celery")

#: Waits before sending again a task a worker refused (other version, busy, no such plugin).
REFUSED_WAIT = (1.0, 2.0, 5.0, 10.0)
#: Waits between sends while Redis is away.
OUTAGE_WAIT = 1.0


class CeleryExecutor:
    """Runs one plugin's events on Celery workers and reports each one finished."""

    def __init__(
        self,
        plugin: Plugin,
        *,
        hub: Hub,
        queue: str,
        on_done: Callable[[Event, Outcome], None],
        order_key: Callable[[Event], Hashable] = lambda event: None,
        policy: RetryPolicy | None = None,
        dead_letters: DeadLetters | None = None,
        task_batch: int = 20,
        task_timeout: float = 300.0,
        capacity: int = 2000,
        monotonic: Callable[[], float] = time.monotonic,
        describe: Callable[[CeleryExecutor], dict[str, Any]] | None = None,
    ) -> None:
        self.plugin = plugin
        self.queue = queue
        self._hub = hub
        self._on_done = on_done
        self._order_key = order_key
        self._policy = policy or RetryPolicy()
        self._dead_letters = dead_letters
        self._batch = task_batch
        self._timeout = task_timeout
        self._capacity = capacity
        self._monotonic = monotonic
        self._lock = threading.Condition()
        #: Per key: events not sent yet, in id order.
        self._lines: dict[Hashable, deque[Event]] = {}
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
        hub.add(self)

    # -- the Executor protocol -------------------------------------------------

    def submit(self, event: Event) -> None:
        """Queue one event behind the events of its key, and send what can go."""
        key = self._order_key(event)
        with self._lock:
            self._lines.setdefault(key, deque()).append(event)
            self._count += 1
        self._pump()

    def has_room(self) -> bool:
        """Whether the runner may hand on more events."""
        with self._lock:
            return self._count < self._capacity

    def in_flight(self) -> set[int]:
        """Ids handed to this executor and not reported finished."""
        with self._lock:
            ids = {int(e["id"]) for line in self._lines.values() for e in line}
            ids.update(int(e["id"]) for t in self._out.values() for e in t.events)
            return ids

    def tasks_in_flight(self) -> int:
        """Tasks sent and not answered (for status)."""
        with self._lock:
            return sum(1 for t in self._out.values() if t.due is None)

    def figures(self) -> dict[str, int]:
        """Counters cheap enough for every metrics scrape (no Redis round trip)."""
        c = self.counters
        return {
            "tasks_in_flight": self.tasks_in_flight(),
            "sent": c.sent,
            "resent": c.resent,
            "timed_out": c.timed_out,
            "keys_held": len(self.held()),
        }

    def held(self) -> list[tuple[float, list[int]]]:
        """(seconds, event ids) of each key whose task is out longer than ``task_timeout``."""
        now = self._monotonic()
        with self._lock:
            found = [
                (now - task.since, [int(e["id"]) for e in task.events])
                for task in self._out.values()
                if task.since is not None and now - task.since > self._timeout
            ]
        return sorted(found, reverse=True)

    def status(self) -> dict[str, Any]:
        """What ``status`` shows of this plugin's executor (the runner adds it per plugin)."""
        shown: dict[str, Any] = {
            "executor": "celery",
            "queue": self.queue,
            **self.figures(),
            "events_held": len(self.in_flight()),
            "refused": self.counters.refused,
        }
        held = self.held()
        if held:
            seconds, ids = held[0]
            shown["oldest_held"] = {"seconds": round(seconds, 1), "events": ids}
        if self._describe is not None:
            shown.update(self._describe(self))
        return shown

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
        self._hub.remove(self)

    # -- called by the hub -----------------------------------------------------

    def on_result(self, task_id: str, result: TaskResult) -> None:
        """Apply one task's result: report handled events, decide on a failure."""
        with self._lock:
            task = self._by_id.pop(task_id, None)
            if task is None or self._out.get(task.key) is not task or self._closed:
                return  # an answer to a copy that was already sent again
            task.task_id = None
        finished: list[tuple[Event, Outcome]] = []
        handled = set(result.handled)
        ran = set(result.ran)
        rest = [e for e in task.events if int(e["id"]) not in handled]
        for event in task.events:
            if int(event["id"]) in handled:
                outcome = Outcome.DONE if int(event["id"]) in ran else Outcome.SKIPPED
                finished.append((event, outcome))
        if result.status == DONE or not rest:
            self._finish(task, finished, keep=[])
        elif result.status == REJECTED:
            self._rejected(task, finished, rest, result)
        elif result.status == FAILED:
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

    # -- inside ----------------------------------------------------------------

    def _pump(self) -> None:
        """Send the head of every idle key's line, and every task that is due."""
        now = self._monotonic()
        to_send: list[Task] = []
        with self._lock:
            if self._closed or not self.plugin.active:
                return
            for task in self._out.values():
                if task.due is not None and task.due <= now:
                    task.due = None
                    to_send.append(task)
            for key in list(self._lines):
                if key in self._out:
                    continue
                line = self._lines[key]
                events = [line.popleft()]
                while (
                    line
                    and len(events) < self._batch
                    and int(line[0]["id"]) > int(events[-1]["id"])
                ):
                    events.append(line.popleft())
                if not line:
                    del self._lines[key]
                task = Task(key=key, events=events, since=now)
                self._out[key] = task
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
        self, task: Task, finished: list[tuple[Event, Outcome]], keep: list[Event]
    ) -> None:
        with self._lock:
            if keep:
                task.events = keep
            else:
                del self._out[task.key]
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
        event = rest[0]
        event_id = int(event["id"])
        callback = next((c for c in self.plugin.callbacks if c.name == result.callback), None)
        retries = self._policy.retries if callback is None else self._policy.attempts_for(callback)
        with self._lock:
            attempt = self._failures.get(event_id, 0) + 1
            self._failures[event_id] = attempt
        self.counters.failed += 1
        if attempt <= retries:
            delay = (
                self._policy.delay * 2.0 ** (attempt - 1)
                if callback is None
                else self._policy.wait_before(callback, attempt)
            )
            delay = min(delay, self._policy.max_delay)
            self.plugin.logger.warning(
                "%s failed on event %d on worker %s (%s); retry %d of %d in %.1f s",
                result.callback or "a callback",
                event_id,
                result.worker,
                result.error,
                attempt,
                retries,
                delay,
            )
            with self._lock:
                task.due = self._monotonic() + delay
            self.counters.resent += 1
            self._finish(task, finished, keep=rest)
            return
        if result.stop_on_error:
            self.plugin.logger.error(
                "%s failed on event %d on worker %s (%s); stopping plugin %s until its file "
                "changes; it will resume from this event",
                result.callback,
                event_id,
                result.worker,
                result.error,
                self.plugin.name,
            )
            self.plugin.deactivate(
                f"callback {result.callback} failed on event {event_id}: {result.error}",
                by_callback=True,
            )
            dropped = [(e, Outcome.FAILED) for e in rest[:1]]
            dropped += [(e, Outcome.INTERRUPTED) for e in rest[1:]]
            with self._lock:
                for line in self._lines.values():
                    dropped += [(e, Outcome.INTERRUPTED) for e in line]
                self._lines.clear()
            self._finish(task, finished + dropped, keep=[])
            return
        self.plugin.logger.error(
            "%s failed on event %d on worker %s (%s); giving it up (stopOnError=False)",
            result.callback,
            event_id,
            result.worker,
            result.error,
        )
        if self._dead_letters is not None:
            self._dead_letters.record(
                self.plugin.name, event_id, result.error, reason="stopOnError=False"
            )
        self.counters.dead_letters += 1
        with self._lock:
            task.due = self._monotonic()
        self._finish(task, [*finished, (event, Outcome.DONE)], keep=rest[1:])

    def _rejected(
        self,
        task: Task,
        finished: list[tuple[Event, Outcome]],
        rest: list[Event],
        result: TaskResult,
    ) -> None:
        if len(rest) > 1:
            # Which event a worker cannot take is unknown: send the first alone.
            log.warning(
                "%s: task for events %s came back %s; sending event %s alone, the rest after it",
                self.plugin.name,
                _ids(rest),
                result.error,
                rest[0]["id"],
            )
            with self._lock:
                self._lines.setdefault(task.key, deque()).extendleft(reversed(rest[1:]))
                task.due = self._monotonic()
            self._finish(task, finished, keep=rest[:1])
            return
        event, event_id = rest[0], int(rest[0]["id"])
        with self._lock:
            attempt = self._failures.get(event_id, 0) + 1
            self._failures[event_id] = attempt
        self.counters.failed += 1
        if attempt <= self._policy.retries:
            delay = min(self._policy.delay * 2.0 ** (attempt - 1), self._policy.max_delay)
            self.plugin.logger.warning(
                "event %d came back %s; retry %d of %d in %.1f s",
                event_id,
                result.error,
                attempt,
                self._policy.retries,
                delay,
            )
            with self._lock:
                task.due = self._monotonic() + delay
            self.counters.resent += 1
            self._finish(task, finished, keep=rest)
            return
        self.plugin.logger.error(
            "event %d cannot be run on a worker: it came back %s; giving it up (see "
            "dead letters)",
            event_id,
            result.error,
        )
        if self._dead_letters is not None:
            self._dead_letters.record(
                self.plugin.name, event_id, result.error, reason="rejected by the workers"
            )
        self.counters.dead_letters += 1
        self._finish(task, [*finished, (event, Outcome.DONE)], keep=[])

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
        with self._lock:
            task.due = self._monotonic() + wait
        self._finish(task, finished, keep=rest)


def _ids(events: list[Event]) -> str:
    first, last = int(events[0]["id"]), int(events[-1]["id"])
    return str(first) if first == last else f"{first}-{last} ({len(events)})"
