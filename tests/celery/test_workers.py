"""The daemon side (hub + CeleryExecutor) against a real redis-server and real worker processes."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import defaultdict
from datetime import UTC, datetime

import pytest
import redis

from shotgun_events.delivery.celery.app import make_app, queue_name
from shotgun_events.delivery.celery.codec import TASK_NAME
from shotgun_events.delivery.dispatch import Outcome
from tests.celery.conftest import CeleryRig
from tests.integration.conftest import wait_for
from tests.unit.fakes import make_event

T = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def event(event_id: int, entity: int) -> dict[str, object]:
    return make_event(
        event_id,
        created_at=T,
        entity={"type": "Shot", "id": entity, "name": f"sh{entity}"},
        meta={"type": "attribute_change", "new_value": "ip", "nested": {"a": [1, 2]}},
    )


def test_events_run_on_two_workers_in_order_per_key_with_local_types(
    celery_rig: CeleryRig,
) -> None:
    # Given a plugin and two workers of two threads
    celery_rig.add_plugin("rec")
    celery_rig.start_worker("--concurrency", "2")
    celery_rig.start_worker("--concurrency", "2")
    celery_rig.wait_workers(2)
    executor = celery_rig.executor(celery_rig.load_plugin("rec"))
    # When 60 events over 6 entities are submitted in id order
    for event_id in range(1, 61):
        executor.submit(event(event_id, entity=event_id % 6))
    # Then every one is reported done once, ran once, in id order per entity
    assert executor.drain(60), "events not all answered"
    assert sorted(celery_rig.done_ids("rec")) == list(range(1, 61))
    records = celery_rig.records()
    assert sorted(int(r[1]) for r in records) == list(range(1, 61))
    per_key: dict[str, list[int]] = defaultdict(list)
    for record in records:
        per_key[record[6]].append(int(record[1]))
    assert all(ids == sorted(ids) for ids in per_key.values())
    # And the callback saw an aware datetime and a dict meta, as locally
    assert {tuple(r[3:6]) for r in records} == {("datetime", "True", "dict")}
    status = {w["hostname"] for w in celery_rig.daemon_hub().workers()}
    assert len(status) == 2


def test_a_re_sent_task_does_not_run_the_callback_again(celery_rig: CeleryRig) -> None:
    # Given events done by a worker
    celery_rig.add_plugin("rec")
    celery_rig.start_worker()
    celery_rig.wait_workers()
    plugin = celery_rig.load_plugin("rec")
    first = celery_rig.executor(plugin)
    for event_id in (1, 2, 3):
        first.submit(event(event_id, entity=1))
    assert first.drain(30)
    first.close(1)
    # When the daemon sends them again (as after a restart from an older position)
    again = celery_rig.executor(plugin)
    for event_id in (1, 2, 3, 4):
        again.submit(event(event_id, entity=1))
    assert again.drain(30)
    # Then only the new one ran; the old ones are reported done without running
    assert [int(r[1]) for r in celery_rig.records()] == [1, 2, 3, 4]
    assert celery_rig.done_ids("rec") == [1, 2, 3, 1, 2, 3, 4]


def test_a_forged_task_is_rejected_and_the_worker_goes_on(celery_rig: CeleryRig) -> None:
    # Given a running worker
    celery_rig.add_plugin("rec")
    worker = celery_rig.start_worker()
    celery_rig.wait_workers()
    config = celery_rig.config.celery
    app = make_app(config)
    queue = queue_name(config, "rec")
    # When someone with broker access puts forged tasks on the queue: bad shape, and pickle
    sent = [
        app.send_task(TASK_NAME, args=["rm -rf /"], queue=queue),
        app.send_task(TASK_NAME, args=[{"v": 1, "plugin": "rec"}], queue=queue),
        app.send_task(TASK_NAME, args=[{}], queue=queue, serializer="pickle"),
    ]
    for result in sent:
        result.backend = None  # no result is awaited: nothing to unsubscribe at exit
    # Then the worker logs them, keeps running and still runs real tasks
    executor = celery_rig.executor(celery_rig.load_plugin("rec"))
    executor.submit(event(5, entity=1))
    assert executor.drain(30)
    assert worker.poll() is None
    assert [int(r[1]) for r in celery_rig.records()] == [5]
    logs = "".join(p.read_text() for p in (celery_rig.folder / "logs" / "workers").glob("*.log"))
    assert logs.count("malformed task") == 2
    err = (celery_rig.folder / "worker0.err").read_text()
    assert "pickle" in err or "untrusted" in err.lower() or "Refusing" in err


def test_a_worker_with_another_plugin_version_refuses_until_it_matches(
    celery_rig: CeleryRig,
) -> None:
    # Given the daemon's copy of the plugin is v2 while the worker's folder has v1
    celery_rig.add_plugin("rec", version="v2")
    plugin = celery_rig.load_plugin("rec")
    celery_rig.add_plugin("rec", version="v1")
    celery_rig.start_worker()
    celery_rig.wait_workers()
    executor = celery_rig.executor(plugin)
    # When an event is sent
    executor.submit(event(1, entity=1))
    wait_for(lambda: executor.counters.refused >= 1, 30, "a refusal")
    # Then nothing ran with the old copy; once the worker's file is updated it runs with v2
    assert celery_rig.records() == []
    celery_rig.add_plugin("rec", version="v2")
    assert executor.drain(30)
    assert [r[2] for r in celery_rig.records()] == ["v2"]


def test_a_poison_event_is_retried_then_dead_lettered_while_other_keys_go_on(
    celery_rig: CeleryRig,
) -> None:
    # Given a plugin failing on event 2 (entity 1), with one retry
    from shotgun_events.delivery.failures import DeadLetters, FailurePolicy, RetryPolicy
    from tests.unit.fakes import FakeStore

    celery_rig.add_plugin("rec", stop=False)
    celery_rig.start_worker(env={"FAIL_ON": "2"})
    celery_rig.wait_workers()
    store = FakeStore()
    executor = celery_rig.executor(
        celery_rig.load_plugin("rec"),
        policy=FailurePolicy(RetryPolicy(retries=1, delay=0.2), DeadLetters(store)),
    )
    # When events of entity 1 and entity 2 arrive
    for event_id, entity in ((1, 1), (2, 1), (3, 2), (4, 1), (5, 2)):
        executor.submit(event(event_id, entity))
    # Then everything is answered; 2 is a dead letter; 4 ran after 2 was given up
    assert executor.drain(60)
    assert sorted(int(r[1]) for r in celery_rig.records()) == [1, 3, 4, 5]
    assert [d["event_id"] for d in DeadLetters(store).entries()] == [2]
    assert executor.counters.failed == 2
    assert (("rec", 2, Outcome.DONE)) in celery_rig.done


def test_a_worker_killed_inside_a_callback_loses_nothing_and_runs_it_once_more(
    celery_rig: CeleryRig,
) -> None:
    # Given a short task_timeout and a worker that hangs inside the callback
    celery_rig.write_config(task_timeout=3)
    celery_rig.add_plugin("rec")
    hang = celery_rig.folder / "hang"
    hang.write_text("")
    worker = celery_rig.start_worker(env={"HANG_FILE": str(hang)})
    celery_rig.wait_workers()
    executor = celery_rig.executor(celery_rig.load_plugin("rec"))
    executor.submit(event(1, entity=1))
    executor.submit(event(2, entity=2))
    wait_for(lambda: len(celery_rig.records()) >= 2, 30, "both callbacks to start")
    # When the worker is killed with SIGKILL and a healthy one starts
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)
    hang.unlink()
    celery_rig.start_worker(env={"HANG_FILE": str(hang)})
    # Then both events are done, each callback started once more at most
    assert executor.drain(60)
    runs = [int(r[1]) for r in celery_rig.records() if r[0] == "rec"]
    assert sorted(runs) == [1, 2]
    assert executor.counters.timed_out >= 1


@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "no-persistence"])
def test_redis_stopped_and_started_again_loses_nothing(
    celery_rig: CeleryRig, persistent: bool
) -> None:
    # Given a worker and events flowing, Redis with or without persistence
    celery_rig.redis.persistent = persistent
    celery_rig.add_plugin("rec")
    celery_rig.start_worker()
    celery_rig.wait_workers()
    executor = celery_rig.executor(celery_rig.load_plugin("rec"))
    for event_id in range(1, 11):
        executor.submit(event(event_id, entity=event_id % 3))
    assert executor.drain(30)
    # When Redis stops for a while (events keep arriving) and starts again
    celery_rig.redis.stop()
    for event_id in range(11, 21):
        executor.submit(event(event_id, entity=event_id % 3))
    # The outage itself (the 30 s, shortened to keep the suite quick: what is
    # checked is that positions are held and nothing is lost, not how long it lasted).
    time.sleep(3)
    assert executor.in_flight() >= set(range(11, 21))
    celery_rig.redis.start()
    # Then everything is delivered, each event ran once. Celery's worker may stop on the
    # lost connection (an unrecoverable error in kombu's restore): the service manager
    # restarts it (conf/shotgun-events-worker@.service, Restart=always), as here.
    deadline = time.monotonic() + 90
    while not executor.drain(1.0) and time.monotonic() < deadline:
        if all(w.poll() is not None for w in celery_rig.workers):
            celery_rig.start_worker()
    assert executor.drain(0), f"left: {sorted(executor.in_flight())}"
    assert sorted(int(r[1]) for r in celery_rig.records()) == list(range(1, 21))


def test_worker_beacons_name_the_plugins_and_versions(celery_rig: CeleryRig) -> None:
    celery_rig.add_plugin("rec")
    celery_rig.add_plugin("other")
    celery_rig.start_worker("--plugins", "rec", "--hostname", "w1@test")
    celery_rig.wait_workers()
    (beacon,) = celery_rig.daemon_hub().workers()
    assert beacon["hostname"] == "w1@test"
    assert list(beacon["plugins"]) == ["rec"]
    client = redis.Redis(port=celery_rig.redis.port)
    assert json.loads(client.get(f"t{celery_rig.redis.port}:worker:w1@test") or b"{}")


def test_status_shows_tasks_in_flight_queue_length_and_workers(celery_rig: CeleryRig) -> None:
    # Given a factory-built executor with a task waiting on a queue no worker serves yet
    from shotgun_events.delivery.celery.factory import CeleryFactory
    from shotgun_events.delivery.executors import CELERY, ExecutorSpec
    from shotgun_events.delivery.failures import FailurePolicy
    from shotgun_events.delivery.inflight import InFlight

    celery_rig.add_plugin("rec")
    config = celery_rig.config
    factory = CeleryFactory(
        celery_rig.daemon_hub(), config.celery, policy=FailurePolicy(), registry=InFlight()
    )
    spec = ExecutorSpec(CELERY, 1, "entity")
    executor = factory(celery_rig.load_plugin("rec"), spec, lambda e, o: None)
    executor.submit(event(1, entity=1))
    # Then status shows the task in flight and on the queue, no worker, no secret
    status = executor.status()
    assert status["tasks_in_flight"] == 1 and status["queue_length"] == 1
    assert status["workers"] == [] and status["redis_reachable"]
    assert "redis://" not in json.dumps(status)
    # When a worker starts, it takes the task and shows up
    celery_rig.start_worker("--hostname", "w9@test")
    assert executor.drain(60)
    celery_rig.wait_workers()
    status = executor.status()
    assert status["tasks_in_flight"] == 0
    assert status["workers"] == ["w9@test"]
