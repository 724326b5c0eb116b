"""CeleryExecutor decisions, with a hub that records tasks and lets the test answer them.

The real broker and workers are exercised in tests/celery; here the
sequencing rules are checked one by one: one task in flight per key, batching
of one key's consecutive events, results reported per event, retries,
dead letters, stopOnError, refusals and time-outs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from shotgun_events.delivery.celery.codec import (
    BUSY,
    DONE,
    FAILED,
    REJECTED,
    WRONG_VERSION,
    TaskResult,
    decode_task,
)
from shotgun_events.delivery.celery.executor import CeleryExecutor
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.executors import RejectedError
from shotgun_events.delivery.failures import DeadLetters, FailurePolicy, RetryPolicy
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.events import Event
from tests.unit.fakes import FakeStore, make_event, recording_plugin

HASH = "a" * 40


@dataclass
class Sent:
    task_id: str
    queue: str
    body: dict[str, Any]

    @property
    def ids(self) -> list[int]:
        return [int(e["id"]) for e in decode_task([self.body], {}).events]


@dataclass
class FakeHub:
    sent: list[Sent] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    down: bool = False
    clients: list[Any] = field(default_factory=list)

    def add(self, client: Any) -> None:
        self.clients.append(client)

    def remove(self, client: Any) -> None:
        self.clients.remove(client)

    def send(self, client: Any, queue: str, body: dict[str, Any], task_id: str) -> bool:
        if self.down:
            return False
        self.sent.append(Sent(task_id, queue, body))
        return True

    def forget(self, task_id: str) -> None:
        self.forgotten.append(task_id)


class Rig:
    def __init__(self, *, retries: int = 0, stop_on_error: bool = True, batch: int = 20) -> None:
        self.plugin: Any = recording_plugin("p1", stop_on_error=stop_on_error)
        self.plugin.fingerprint = (0, 0, HASH)
        self.hub = FakeHub()
        self.now = 100.0
        self.done: list[tuple[int, Outcome]] = []
        self.store = FakeStore()
        self.executor = CeleryExecutor(
            self.plugin,
            hub=self.hub,
            queue="se.p1",
            on_done=self.on_done,
            order_key=lambda e: e["entity"]["id"],
            policy=FailurePolicy(
                RetryPolicy(retries=retries, delay=2.0, max_delay=60.0), DeadLetters(self.store)
            ),
            registry=InFlight(lambda: self.now),
            task_batch=batch,
            task_timeout=30.0,
        )

    def on_done(self, event: Event, outcome: Outcome) -> None:
        self.done.append((int(event["id"]), outcome))

    def submit(self, event_id: int, entity: int) -> None:
        self.executor.submit(make_event(event_id, entity={"type": "Shot", "id": entity}))

    def answer(self, sent: Sent, status: str = DONE, **kw: Any) -> None:
        handled = kw.pop("handled", sent.ids if status == DONE else [])
        result = TaskResult(status=status, handled=tuple(handled), ran=tuple(handled), **kw)
        self.executor.on_result(sent.task_id, result)


def test_one_task_per_key_and_later_events_of_the_key_wait() -> None:
    # Given events of two entities
    rig = Rig()
    rig.submit(1, entity=10)
    rig.submit(2, entity=20)
    rig.submit(3, entity=10)
    # Then one task per key went out; event 3 waits behind event 1
    assert [s.ids for s in rig.hub.sent] == [[1], [2]]
    assert rig.executor.in_flight() == {1, 2, 3}
    # When key 10's task answers
    rig.answer(rig.hub.sent[0])
    # Then event 3 goes out and event 1 is reported done
    assert rig.hub.sent[2].ids == [3]
    assert rig.done == [(1, Outcome.DONE)]
    assert rig.hub.sent[0].queue == "se.p1"


def test_consecutive_events_of_one_key_travel_in_one_task() -> None:
    # Given a key busy with a task while four more of its events arrive
    rig = Rig(batch=3)
    for event_id in range(1, 6):
        rig.submit(event_id, entity=10)
    assert [s.ids for s in rig.hub.sent] == [[1]]
    # When it answers
    rig.answer(rig.hub.sent[0])
    # Then the next three go together, in id order, then the last one
    assert rig.hub.sent[1].ids == [2, 3, 4]
    rig.answer(rig.hub.sent[1])
    assert rig.hub.sent[2].ids == [5]
    rig.answer(rig.hub.sent[2])
    assert [i for i, _ in rig.done] == [1, 2, 3, 4, 5]
    assert rig.executor.drain(0.0)


def test_a_failing_event_is_sent_again_after_the_wait_then_dead_lettered() -> None:
    # Given one retry and stopOnError=False
    rig = Rig(retries=1, stop_on_error=False)
    rig.submit(1, entity=10)
    rig.submit(2, entity=20)
    failed = dict(failed_id=1, error="callback: RuntimeError: boom", callback="callback")
    # When event 1 fails
    rig.answer(rig.hub.sent[0], FAILED, **failed)
    # Then it is not sent again before its wait, and the other key goes on
    rig.executor.tick(rig.now)
    assert [s.ids for s in rig.hub.sent] == [[1], [2]]
    rig.answer(rig.hub.sent[1])
    assert rig.done == [(2, Outcome.DONE)]
    rig.now += 2.0
    rig.executor.tick(rig.now)
    assert rig.hub.sent[2].ids == [1]
    # When it fails again
    rig.answer(rig.hub.sent[2], FAILED, **failed)
    # Then it is given up: a dead letter, reported handled, the plugin stays on
    assert rig.done[-1] == (1, Outcome.DONE)
    letters = DeadLetters(rig.store).entries()
    assert [(d["plugin"], d["event_id"]) for d in letters] == [("p1", 1)]
    assert rig.plugin.active


def test_stop_on_error_switches_the_plugin_off_without_handling_the_event() -> None:
    # Given a stopOnError plugin with events queued behind a failing one
    rig = Rig()
    rig.submit(1, entity=10)
    rig.submit(2, entity=10)
    # When event 1 fails with no retries left
    rig.answer(
        rig.hub.sent[0], FAILED, failed_id=1, error="x", callback="callback", stop_on_error=True
    )
    # Then the plugin is off, event 1 failed, event 2 not handled, nothing more sent
    assert not rig.plugin.active
    assert rig.done == [(1, Outcome.FAILED), (2, Outcome.INTERRUPTED)]
    assert len(rig.hub.sent) == 1
    assert rig.executor.in_flight() == set()


def test_a_partly_handled_task_reports_the_handled_events_and_resends_the_rest() -> None:
    # Given a task of three events where the worker handled the first, then answered busy
    rig = Rig()
    for event_id in (1, 2, 3):
        rig.submit(event_id, entity=10)
    rig.answer(rig.hub.sent[0])
    batch = rig.hub.sent[1]
    assert batch.ids == [2, 3]
    rig.answer(batch, BUSY, handled=[2], failed_id=3)
    # Then 2 is done and 3 is sent again after a short wait
    assert rig.done[-1] == (2, Outcome.DONE)
    rig.now += 1.0
    rig.executor.tick(rig.now)
    assert rig.hub.sent[-1].ids == [3]


def test_a_task_refused_for_another_plugin_version_carries_the_new_hash_when_resent() -> None:
    # Given a worker with another copy of the plugin
    rig = Rig()
    rig.submit(1, entity=10)
    rig.answer(rig.hub.sent[0], WRONG_VERSION, worker_hash="b" * 40, worker="w1")
    # When the daemon reloads the plugin (new hash) and the wait is over
    rig.plugin.fingerprint = (0, 0, "b" * 40)
    rig.now += 1.0
    rig.executor.tick(rig.now)
    # Then the task goes again with the daemon's new hash
    resent = rig.hub.sent[-1]
    assert resent.ids == [1]
    assert resent.body["hash"] == "b" * 40
    assert rig.done == []


def test_an_unanswered_task_is_sent_again_after_task_timeout_and_the_old_answer_ignored() -> None:
    # Given a task out
    rig = Rig()
    rig.submit(1, entity=10)
    first = rig.hub.sent[0]
    # When task_timeout passes without an answer
    rig.now += 29.0
    rig.executor.tick(rig.now)
    assert len(rig.hub.sent) == 1
    rig.now += 1.0
    rig.executor.tick(rig.now)
    # Then it is sent again under a new id; a late answer to the old id changes nothing
    second = rig.hub.sent[1]
    assert second.ids == [1] and second.task_id != first.task_id
    assert first.task_id in rig.hub.forgotten
    rig.answer(first)
    assert rig.done == []
    rig.answer(second)
    assert rig.done == [(1, Outcome.DONE)]


def test_while_redis_is_away_events_are_held_and_sent_once_it_is_back() -> None:
    # Given Redis down when an event arrives
    rig = Rig()
    rig.hub.down = True
    rig.submit(1, entity=10)
    assert rig.hub.sent == [] and rig.executor.in_flight() == {1}
    # When it is back
    rig.hub.down = False
    rig.now += 1.0
    rig.executor.tick(rig.now)
    # Then the event goes out; after resend_all (outage of the result store) it goes again
    assert [s.ids for s in rig.hub.sent] == [[1]]
    rig.executor.resend_all()
    rig.executor.tick(rig.now)
    assert [s.ids for s in rig.hub.sent] == [[1], [1]]
    assert rig.executor.counters.timed_out == 0


def test_a_full_executor_rejects_and_the_producer_waits_for_room() -> None:
    # Given a capacity of two events
    rig = Rig()
    executor = CeleryExecutor(
        rig.plugin,
        hub=rig.hub,
        queue="q",
        on_done=rig.on_done,
        order_key=lambda e: e["id"],
        capacity=2,
    )
    executor.submit(make_event(1))
    executor.submit(make_event(2))
    # Then a third is rejected until answers free room
    with pytest.raises(RejectedError):
        executor.submit(make_event(3))
    executor.on_result(rig.hub.sent[0].task_id, TaskResult(DONE, handled=(1,), ran=(1,)))
    executor.submit(make_event(3))
    assert executor.in_flight() == {2, 3}


def test_a_late_event_runs_after_the_later_events_of_its_key_in_a_task_of_its_own() -> None:
    # Given a key with a task out and later events waiting
    rig = Rig(batch=10)
    for event_id in (10, 11, 12):
        rig.submit(event_id, entity=1)
    # When a late event of the same key turns up
    rig.submit(5, entity=1)
    rig.answer(rig.hub.sent[0])
    # Then the next task carries the waiting ones in increasing order, the late one after
    assert rig.hub.sent[1].ids == [11, 12]
    rig.answer(rig.hub.sent[1])
    assert rig.hub.sent[2].ids == [5]
    rig.answer(rig.hub.sent[2])
    assert [i for i, _ in rig.done] == [10, 11, 12, 5]


def test_a_rejected_task_is_sent_again_one_event_first_then_retried_then_given_up() -> None:
    # Given one retry, and events 1-3 of one key in one task
    rig = Rig(retries=1, batch=10)
    rig.submit(9, entity=1)
    for event_id in (10, 11, 12):
        rig.submit(event_id, entity=1)
    rig.answer(rig.hub.sent[0])
    assert rig.hub.sent[1].ids == [10, 11, 12]
    # When the task comes back rejected
    rig.answer(rig.hub.sent[1], REJECTED, error="REJECTED (Reject: bad datetime)")
    # Then its first event goes again alone, at once
    assert rig.hub.sent[2].ids == [10]
    # When that one is rejected too: after the policy's wait it is retried, then given up
    rig.answer(rig.hub.sent[2], REJECTED, error="REJECTED (Reject: bad datetime)")
    rig.now += 2.0
    rig.executor.tick(rig.now)
    assert rig.hub.sent[3].ids == [10]
    rig.answer(rig.hub.sent[3], REJECTED, error="REJECTED (Reject: bad datetime)")
    # Even with stopOnError: a dead letter, the plugin stays on, the key goes on
    assert rig.plugin.active
    assert [d["event_id"] for d in DeadLetters(rig.store).entries()] == [10]
    assert rig.hub.sent[4].ids == [11, 12]
    rig.answer(rig.hub.sent[4])
    assert [i for i, _ in rig.done] == [9, 10, 11, 12]


def test_a_key_held_past_task_timeout_is_counted_and_shown() -> None:
    # Given a task out
    rig = Rig()
    rig.submit(1, entity=10)
    rig.submit(2, entity=10)
    assert rig.executor.figures()["keys_held"] == 0
    # When task_timeout passes (it is sent again) and more
    rig.now += 31.0
    rig.executor.tick(rig.now)
    # Then the key counts as held, since its first sending, with the events it holds
    assert rig.executor.figures() | {"sent": 0} == {
        "tasks_in_flight": 1,
        "sent": 0,
        "resent": 0,
        "timed_out": 1,
        "keys_held": 1,
    }
    assert rig.executor.status()["oldest_held"] == {"seconds": 31.0, "events": [1]}
    rig.answer(rig.hub.sent[-1])
    assert rig.executor.figures()["keys_held"] == 0
