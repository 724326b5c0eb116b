"""Late events and answers that are not results, with a real redis-server and real workers.

A late event (a gap id that commits after later ids of its key were handed
on) must take its place in its key's line by id: workers refuse a task whose
ids are not increasing. A task that comes back without a result of ours
(rejected, revoked, unreadable) is taken once and handled by the failure
policy, never read again in a loop. A key whose task is out longer than
``task_timeout`` is shown as held.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.delivery.celery.hub import CeleryHub
from shotgun_events.delivery.failures import DeadLetters, FailurePolicy, RetryPolicy
from tests.celery.conftest import CeleryRig, DaemonProcess
from tests.celery.test_daemon import append
from tests.integration.conftest import wait_for
from tests.unit.fakes import FakeStore, make_event

T = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


#: A wire version no worker speaks (the workers speak codec.WIRE_VERSION).
FOREIGN_VERSION = 99


class ForeignWire:
    """The daemon's hub, sending every task that carries one event in a foreign wire version.

    As a daemon of another release would: the body reaches a real worker through
    the real broker, which rejects the task (an answer that is not a result).
    """

    def __init__(self, hub: CeleryHub, event_id: int) -> None:
        self.hub = hub
        self.event_id = event_id

    def add(self, client: Any) -> None:
        self.hub.add(client)

    def remove(self, client: Any) -> None:
        self.hub.remove(client)

    def forget(self, task_id: str) -> None:
        self.hub.forget(task_id)

    def send(self, client: Any, queue: str, body: dict[str, Any], task_id: str) -> bool:
        if any(e["id"] == self.event_id for e in body.get("events", [])):
            body = {**body, "v": FOREIGN_VERSION}
        return self.hub.send(client, queue, body, task_id)


def event(event_id: int, entity: int) -> dict[str, object]:
    return make_event(
        event_id,
        created_at=T,
        entity={"type": "Shot", "id": entity, "name": f"sh{entity}"},
        meta={"type": "attribute_change"},
    )


def ran(rig: CeleryRig, entity: int) -> list[int]:
    """Ids the worker ran for one entity, in the order they ran."""
    return [int(r[1]) for r in rig.records() if r[0] == "rec" and int(r[6]) == entity]


def repeated_lines(records: list[logging.LogRecord], most: int) -> list[tuple[str, int]]:
    """Messages logged more than ``most`` times (a loop, not a report)."""
    counts = Counter(r.getMessage() for r in records if r.levelno >= logging.WARNING)
    return [(m, n) for m, n in counts.items() if n > most]


def test_a_late_event_on_a_key_with_a_task_out_runs_once_in_its_place(
    celery_rig: CeleryRig, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a slow worker, so the first task of shot 1 is still out
    celery_rig.add_plugin("rec")
    celery_rig.start_worker(env={"SLOW": "0.4"})
    celery_rig.wait_workers()
    executor = celery_rig.executor(celery_rig.load_plugin("rec"))
    executor.submit(event(10, entity=1))
    for event_id in (11, 12, 13, 14):
        executor.submit(event(event_id, entity=1))
    # When event 5 of the same shot turns up late (a gap that committed late)
    executor.submit(event(5, entity=1))
    # Then every event runs once: the late one when it turned up, after the later events
    # of its key, in a task of its own (workers refuse ids out of order in one task)
    assert executor.drain(60), "the key stalled"
    assert ran(celery_rig, 1) == [10, 11, 12, 13, 14, 5]
    assert sorted(celery_rig.done_ids("rec")) == [5, 10, 11, 12, 13, 14]
    assert executor.counters.refused == 0 and executor.counters.failed == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_task_the_worker_rejects_is_taken_once_and_handled_by_the_failure_policy(
    celery_rig: CeleryRig, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a slow worker, one retry, and a daemon whose tasks carrying event 2 reach the
    # workers in a wire version they do not speak: a worker rejects each of them
    celery_rig.add_plugin("rec")
    celery_rig.start_worker(env={"SLOW": "0.3"})
    celery_rig.wait_workers()
    store = FakeStore()
    executor = celery_rig.executor(
        celery_rig.load_plugin("rec"),
        hub=ForeignWire(celery_rig.daemon_hub(), event_id=2),
        policy=FailurePolicy(RetryPolicy(retries=1, delay=0.2), DeadLetters(store)),
    )
    # When events of shot 1 (2 among them) and of shot 2 are submitted
    for event_id, entity in ((1, 1), (2, 1), (3, 1), (4, 2), (5, 1)):
        executor.submit(event(event_id, entity))
    # Then every event is answered: 2 is sent alone, retried once, then given up to the
    # dead letters; the others ran once, in order per shot
    assert executor.drain(60), "a key stalled behind the rejected task"
    assert ran(celery_rig, 1) == [1, 3, 5] and ran(celery_rig, 2) == [4]
    assert [d["event_id"] for d in DeadLetters(store).entries()] == [2]
    letter = DeadLetters(store).entries()[0]
    # (what came back is named: Celery stores a rejected task as a FAILURE state)
    assert letter["reason"] == "it cannot be run" and "FAILURE" in letter["error"]
    # And each rejection was read once: the worker rejected the batch 2 came in (unless it
    # went alone at once), 2 alone, and its retry; the policy decided twice (retry, give
    # up); nothing was logged in a loop
    worker_logs = "".join(
        p.read_text() for p in (celery_rig.folder / "logs" / "workers").glob("*.log")
    )
    rejected = worker_logs.count("malformed task")
    assert 2 <= rejected <= 3
    alone = [r for r in caplog.records if "sending event 2 alone" in r.getMessage()]
    assert len(alone) == rejected - 2
    assert executor.counters.failed == 2 and executor.counters.resent == 1
    assert executor.counters.dead_letters == 1
    assert repeated_lines(caplog.records, most=1) == []
    gave_up = [r for r in caplog.records if "giving it up (it cannot be run" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.CRITICAL


def test_a_key_held_longer_than_task_timeout_shows_in_the_executor_and_status(
    celery_rig: CeleryRig, tmp_path: Path
) -> None:
    # Given a worker that hangs inside the callback, and a short task_timeout
    hang = tmp_path / "hang"
    hang.touch()
    celery_rig.add_plugin("rec")
    celery_rig.start_worker(env={"HANG_FILE": str(hang)})
    celery_rig.wait_workers()
    executor = celery_rig.executor(celery_rig.load_plugin("rec"), task_timeout=1.0)
    # When an event's task stays out longer than task_timeout
    executor.submit(event(7, entity=1))
    wait_for(lambda: executor.figures()["keys_held"] == 1, 30, "the key to count as held")
    # Then the figures (metrics, page) and what status shows say which events wait, since when
    shown = executor.status()
    assert shown["keys_held"] == 1
    assert shown["oldest_held"]["events"] == [7] and shown["oldest_held"]["seconds"] >= 1.0


def test_the_daemons_status_shows_a_held_key(celery_rig: CeleryRig, tmp_path: Path) -> None:
    # Given the real daemon on Celery with a short task_timeout and a worker that hangs
    hang = tmp_path / "hang"
    hang.touch()
    celery_rig.write_config(task_timeout=1)
    celery_rig.add_plugin("rec")
    celery_rig.start_worker(env={"HANG_FILE": str(hang)})
    celery_rig.wait_workers()
    daemon = DaemonProcess(celery_rig)
    daemon.start()
    try:
        # When an event's task stays out past task_timeout
        [event_id] = append(celery_rig.site, 1, keys=1)
        wait_for(lambda: daemon.plugin("rec").get("keys_held") == 1, 60, "a held key")
        # Then status --json and the plain status name it
        assert daemon.plugin("rec")["oldest_held"]["events"] == [event_id]
        assert "HELD 1 key(s) longer than task_timeout" in daemon.cli("status").stdout
    finally:
        daemon.close()
