"""The chaos checker and plan on made-up runs: each rule must catch what it is there for.

The chaos run itself passes on a sound daemon; these show that every one of
its checks fails when its promise is broken, without starting a process.
"""

from __future__ import annotations

from pathlib import Path

from .checker import SiteEvent, check_plugin
from .driver import Garbled, Timeline
from .logs import rejection_findings, tight_loops, unexplained_errors
from .plan import DISRUPTIVE, QUIET, build_plan
from .plugins import PLUGINS, Delivery, PluginSpec

T0 = 1_000.0
SPECS = {spec.name: spec for spec in PLUGINS}


def events(*ids: int, key: str = "Shot:1") -> list[SiteEvent]:
    return [SiteEvent(i, "Shotgun_Shot_Change", "sg_status_list", key) for i in ids]


def run(plugin: str, pid: int, *rows: tuple[int, float], key: str = "Shot:1") -> list[Delivery]:
    return [Delivery(plugin, i, key, pid, T0 + at, 1) for i, at in rows]


def test_a_strict_plugin_may_get_one_event_again_per_daemon_kill_and_no_more() -> None:
    # Given a strict plugin whose daemon (pid 1) was killed, and its successor (pid 2)
    spec = SPECS["quick_all"]
    timeline = Timeline(started=T0, daemon_kills=[(T0 + 2.5, 1)])
    # When the successor delivers the last event again
    once = run("quick_all", 1, (1, 1), (2, 2)) + run("quick_all", 2, (2, 3), (3, 4))
    verdict = check_plugin(spec, once, events(1, 2, 3), timeline)
    # Then that is within the README's bound
    assert verdict.ok and verdict.duplicates == {"daemon kill": 1}
    # And two events again after one kill are not
    twice = run("quick_all", 1, (1, 1), (2, 2)) + run("quick_all", 2, (1, 3), (2, 3.5), (3, 4))
    verdict = check_plugin(spec, twice, events(1, 2, 3), timeline)
    assert not verdict.ok
    assert any("after one daemon kill" in p and "allows 1" in p for p in verdict.problems)


def test_a_repeat_no_kill_explains_is_reported() -> None:
    # Given one daemon that was never killed delivering an event twice
    deliveries = run("quick_all", 1, (1, 1), (1, 2), (2, 3))
    # When checked
    verdict = check_plugin(SPECS["quick_all"], deliveries, events(1, 2), Timeline(T0))
    # Then the repeat is a finding
    assert verdict.duplicates == {"unexplained": 1}
    assert any("no kill or restart" in p for p in verdict.problems)


def test_lost_and_unexpected_ids_are_reported_with_where_they_fell() -> None:
    # Given a plugin that missed event 2 around a kill and got 9, which the site never had
    timeline = Timeline(started=T0, daemon_kills=[(T0 + 1.5, 1)])
    deliveries = run("quick_all", 1, (1, 1)) + run("quick_all", 2, (3, 2), (9, 3))
    # When checked
    verdict = check_plugin(SPECS["quick_all"], deliveries, events(1, 2, 3), timeline)
    # Then both are findings, the lost one with the kill next to it
    assert verdict.lost == [2] and verdict.unexpected == [9]
    assert any(p.startswith("lost 2:") and "daemon 1 at 1.50s" in p for p in verdict.problems)


def test_order_is_by_id_for_strict_plugins_and_per_key_for_keyed_ones_late_ids_exempt() -> None:
    # Given a strict plugin that ran 3 before 2, and a late id 1 that ran last
    strict = run("quick_all", 1, (3, 1), (2, 2), (1, 3))
    timeline = Timeline(started=T0, late_ids={1: T0 + 2.5})
    verdict = check_plugin(SPECS["quick_all"], strict, events(1, 2, 3), timeline)
    # Then 2 after 3 is an order violation, the late 1 is not
    orders = [p for p in verdict.problems if p.startswith("order")]
    assert len(orders) == 1 and "event 2 ran after 3" in orders[0]
    # Given a keyed plugin interleaving two keys, each in order
    keyed = run("keyed", 1, (2, 1), key="Shot:2") + run("keyed", 1, (1, 2), (3, 3))
    both = [*events(1, 3), *events(2, key="Shot:2")]
    # Then nothing is wrong; and a key going backwards is
    assert check_plugin(SPECS["keyed"], keyed, both, Timeline(T0)).ok
    backwards = run("keyed", 1, (3, 1), (1, 2))
    verdict = check_plugin(SPECS["keyed"], backwards, events(1, 3), Timeline(T0))
    assert any("on key Shot:1: event 1 ran after 3" in p for p in verdict.problems)


def test_celery_repeats_are_allowed_after_a_worker_kill_but_not_after_a_daemon_kill() -> None:
    spec: PluginSpec = SPECS["celery_rec"]
    # Given worker pid 5 killed after running event 1, which worker 6 ran again
    timeline = Timeline(started=T0, worker_kills=[(T0 + 1.5, 5)])
    deliveries = run("celery_rec", 5, (1, 1)) + run("celery_rec", 6, (1, 2))
    verdict = check_plugin(spec, deliveries, events(1), timeline)
    assert verdict.ok and verdict.duplicates == {"worker kill": 1}
    # Given a Redis restart right after worker 5 ran event 1, and the worker killed later
    timeline = Timeline(
        started=T0, worker_kills=[(T0 + 20, 5)], redis_restarts=[(T0 + 1.2, T0 + 3)]
    )
    deliveries = run("celery_rec", 5, (1, 1)) + run("celery_rec", 6, (1, 30))
    verdict = check_plugin(spec, deliveries, events(1), timeline)
    # Then the restart, not the later kill, explains the repeat
    assert verdict.ok and verdict.duplicates == {"redis restart": 1}
    # Given instead a daemon kill between two runs by one live worker
    timeline = Timeline(started=T0, daemon_kills=[(T0 + 1.5, 1)])
    deliveries = run("celery_rec", 6, (1, 1), (1, 2))
    verdict = check_plugin(spec, deliveries, events(1), timeline)
    # Then that repeat breaks the README (workers skip what they recorded done)
    assert any("after one daemon kill" in p and "allows 0" in p for p in verdict.problems)


def test_a_garbled_tasks_rejection_must_be_read_once_and_handled_by_the_policy(
    tmp_path: Path,
) -> None:
    stamp = "2026-01-01 10:00:00,000"
    task = "celery_rec-7-3-ab12cd34"
    garbled = [Garbled(task, 7)]
    rejected = (
        f"{stamp} - engine.celery.worker - ERROR - malformed task {task} rejected (wire "
        "version 99, this worker speaks 1); it is dropped, nothing ran\n"
    )
    gave_up = (
        f"{stamp} - plugin.celery_rec - CRITICAL - the task failed on event 7 (FAILURE (not a "
        "result of ours)); giving it up (it cannot be run; see dead letters)\n"
    )
    worker, daemon = tmp_path / "worker.log", tmp_path / "daemon.log"
    worker.write_text(rejected)
    # Given a worker that rejected the garbled task once, and a daemon whose failure policy
    # gave its event up once
    daemon.write_text(gave_up)
    # Then nothing is wrong, and neither line is an unexplained ERROR
    assert rejection_findings([worker, daemon], garbled) == []
    assert unexplained_errors([worker, daemon], garbled) == []
    # Given instead a daemon that read the same answer again and again, deciding nothing
    looping = f"{stamp} - engine.celery - ERROR - task {task} answered something unreadable\n"
    daemon.write_text(looping * 20)
    # Then that is a finding
    [finding] = rejection_findings([worker, daemon], garbled)
    assert f"garbled task {task}" in finding and "decided nothing" in finding
    # And so are an answer handled twice, and a worker that never took the task
    daemon.write_text(gave_up * 2)
    [finding] = rejection_findings([worker, daemon], garbled)
    assert "['giving it up', 'giving it up']" in finding
    worker.write_text("")
    daemon.write_text(gave_up)
    assert rejection_findings([worker, daemon], garbled) == [
        f"garbled task {task}: rejected by a worker 0 times, not once"
    ]


def test_a_garbled_tasks_event_is_given_up_on_celery_and_runs_everywhere_else() -> None:
    # Given event 2's one task garbled (its event given up by the policy)
    timeline = Timeline(started=T0, garbled=[Garbled("celery_rec-2-5-ab12cd34", 2)])
    site = events(1, 2, 3)
    # Then Celery must not run it
    on_celery = run("celery_rec", 5, (1, 1), (3, 2))
    assert check_plugin(SPECS["celery_rec"], on_celery, site, timeline).ok
    ran = run("celery_rec", 5, (1, 1), (3, 2), (2, 3))
    verdict = check_plugin(SPECS["celery_rec"], ran, site, timeline)
    assert any("event 2 ran at 3.0s" in p and "given it up" in p for p in verdict.problems)
    # And the plugins in the daemon get it like any other event
    local = run("quick_all", 1, (1, 1), (3, 2))
    assert check_plugin(SPECS["quick_all"], local, site, timeline).lost == [2]


def test_an_error_repeated_in_a_tight_loop_is_found_and_a_steady_one_is_not(
    tmp_path: Path,
) -> None:
    line = "2026-01-01 10:00:{s:02d},{ms:03d} - engine.celery - ERROR - task x unreadable\n"
    # Given eleven identical ERROR lines within one second, and ten more one per second
    tight = tmp_path / "tight.log"
    tight.write_text("".join(line.format(s=1, ms=i * 50) for i in range(11)))
    steady = tmp_path / "steady.log"
    steady.write_text("".join(line.format(s=i, ms=0) for i in range(10)))
    # When the logs are scanned
    loops = tight_loops([tight, steady])
    # Then only the tight one is a loop
    assert [(loop.file, loop.most_in_a_second, loop.total) for loop in loops] == [
        ("tight.log", 11, 11)
    ]


def test_only_errors_an_injected_fault_explains_pass(tmp_path: Path) -> None:
    # Given ERROR lines caused by site faults, Redis, the garbled task of event 7, and two
    # that nothing injected explains: an event given up, another task of ours rejected
    stamp = "2026-01-01 10:00:00,000"
    log = tmp_path / "daemon.log"
    log.write_text(
        f"{stamp} - engine.source - ERROR - reading the event log failed 5 times in a row "
        "(ProtocolError: 503); retrying in 60.0 s\n"
        f"{stamp} - engine.site - ERROR - the site is unavailable (HTTP 503 busy)\n"
        f"{stamp} - engine.celery - ERROR - Redis at redis://:***@h:1/0 unreachable\n"
        f"{stamp} - celery.worker - CRITICAL - Unrecoverable error: AttributeError('x')\n"
        f"{stamp} - celery.app.trace - ERROR - Task run_events[t-1] raised unexpected: "
        "network:ConnectionError\n"
        f"{stamp} - celery.bootsteps - ERROR - Error on stopping Hub: AttributeError('x')\n"
        f"{stamp} - engine.celery.worker - ERROR - malformed task celery_rec-7-3-ab12 rejected "
        "(wire version 99, this worker speaks 1); it is dropped, nothing ran\n"
        f"{stamp} - plugin.celery_rec - CRITICAL - the task failed on event 8 (x); giving it up\n"
        f"{stamp} - engine.celery.worker - ERROR - malformed task celery_rec-7-4-cd34 rejected "
        "(events not in increasing id order); it is dropped, nothing ran\n"
        f"{stamp} - engine.runner - INFO - not an error at all\n"
    )
    # When the logs are scanned
    found = unexplained_errors([log], [Garbled("celery_rec-7-3-ab12", 7)])
    # Then the two unexplained ones are reported (another task of event 7 is not excused)
    assert len(found) == 2
    assert any("failed on event 8" in line for line in found)
    assert any("not in increasing id order" in line for line in found)


def test_a_seed_gives_one_plan_and_every_cycle_gets_the_whole_mix() -> None:
    # Given the same seed twice and another seed
    first, again, other = build_plan(5, 600), build_plan(5, 600), build_plan(6, 600)
    # Then the same seed gives the same plan, another a different one
    assert first == again and first.steps != other.steps
    # And each of the five cycles has its worker kill, restart, edit, SIGHUP and faults
    counts = first.counts()
    for kind in ("kill_worker", "stop_redis", "edit_plugin", "sighup", "garble"):
        assert counts[kind] == 5, kind
    # And each garbled task falls clear of the kills and restarts, whatever the seed
    for plan in (first, *(build_plan(seed, 150) for seed in range(300))):
        busy = [s.at for s in plan.steps if s.kind in DISRUPTIVE]
        garbles = [s.at for s in plan.steps if s.kind == "garble"]
        assert all(abs(at - b) >= QUIET for at in garbles for b in busy), plan.seed
    assert counts["burst"] == 15
    # And the daemon is killed in the first cycle (of every five) only: it also lives long
    kills = [s.at for s in first.steps if s.kind == "kill_daemon"]
    assert len(kills) >= 2 and max(kills) < first.seconds / 5
    assert counts["site_fault"] == 40 and counts["webhook_fault"] == 20
    starts = [s for s in first.steps if s.kind.startswith("start_")]
    assert all(s.at <= first.seconds for s in starts)
