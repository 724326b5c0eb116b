"""A plugin's timer runs on Celery: one task per run, and the timer's thread waits for its answer.

The timer schedule (engine/timers.py) calls ``run`` from the timer's own
thread at its due time; the run is sent as a task of its own (no event, the
timer's name) to the plugin's queue, and the thread waits until a worker
answers or ``task_timeout`` passes. Only an answer that the timer ran and
raised is the plugin's failure (decided by the daemon's policy, as for a
callback); a run that no worker took (another version, no such timer), that
came back rejected, that went unanswered, or whose broker went away is
skipped until the timer's next time. A timer's run is never sent twice: a
timer that ran twice would be worse than one that skipped a time.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shotgun_events.delivery.celery.codec import (
    DONE,
    FAILED,
    WRONG_VERSION,
    TaskResult,
    TaskSpec,
    encode_task,
)
from shotgun_events.delivery.celery.tasks import Hub
from shotgun_events.delivery.dispatch import TimerFailure
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.plugins.registrar import Timer

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin


@dataclass
class _Waiting:
    """One timer run sent, and its answer when it comes."""

    answered: threading.Event = field(default_factory=threading.Event)
    result: TaskResult | None = None
    #: Why the run was given up without an answer (the broker went away, the daemon stops).
    dropped: str = ""


class CeleryTimers:
    """Send a plugin's timer runs as tasks and hand each answer to the thread waiting for it."""

    def __init__(
        self,
        plugin: Plugin,
        *,
        hub: Hub,
        client: Any,
        queue: str,
        registry: InFlight,
        timeout: float,
    ) -> None:
        self._plugin = plugin
        self._hub = hub
        self._client = client
        self._queue = queue
        self._registry = registry
        self._timeout = timeout
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiting] = {}

    def run(self, timer: Timer) -> TimerFailure | None:
        """Send one run of ``timer`` and wait for its answer (at most ``task_timeout``)."""
        plugin = self._plugin
        task_id = f"{plugin.name}-timer-{timer.name}-{uuid.uuid4().hex[:12]}"
        waiting = _Waiting()
        with self._lock:
            self._waiting[task_id] = waiting
        work = self._registry.start(plugin, 0, task=("celery-timer", task_id), timer=timer.name)
        try:
            spec = TaskSpec(plugin.name, plugin.fingerprint[2], (), timer=timer.name)
            if not self._hub.send(self._client, self._queue, encode_task(spec), task_id):
                return TimerFailure("Redis is unavailable", not_run=True)
            timeout = self._timeout
            if not waiting.answered.wait(timeout):
                self._hub.forget(task_id)
                return TimerFailure(
                    f"no worker answered within task_timeout ({timeout:.0f} s)", not_run=True
                )
        finally:
            with self._lock:
                self._waiting.pop(task_id, None)
            self._registry.end(work)
        if waiting.result is None:
            return TimerFailure(waiting.dropped, not_run=True)
        return _failure(waiting.result, plugin)

    def answer(self, task_id: str, result: TaskResult) -> bool:
        """Hand a result to the run waiting for it; False when the task is not a timer's."""
        with self._lock:
            waiting = self._waiting.get(task_id)
        if waiting is None:
            return False
        waiting.result = result
        waiting.answered.set()
        return True

    def drop_all(self, why: str) -> None:
        """Stop waiting for every run out (their answers may be lost); each is skipped."""
        with self._lock:
            waiting = list(self._waiting.values())
        for run in waiting:
            run.dropped = why
            run.answered.set()


def _failure(result: TaskResult, plugin: Plugin) -> TimerFailure | None:
    """What a worker's answer means for the timer's run."""
    if result.status == DONE:
        return None
    where = f" on worker {result.worker}" if result.worker else ""
    if result.status == FAILED:
        return TimerFailure(result.error or "no error text", result.unavailable, where)
    if result.status == WRONG_VERSION:
        why = (
            f"worker {result.worker} runs version {result.worker_hash[:12]} of the plugin, "
            f"the daemon {plugin.fingerprint[2][:12]}"
        )
    else:
        why = f"worker {result.worker or '?'} could not run it ({result.error or result.status})"
    return TimerFailure(why, where=where, not_run=True)
