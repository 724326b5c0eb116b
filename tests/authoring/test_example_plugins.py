"""The shipped example plugins, tested the way a plugin author tests: with the pytest fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.demo import example_plugins
from shotgun_events.testing import make_event

PLUGINS = example_plugins()


def _shot_with_open_tasks(sg: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    shot = sg.find_one("Shot", [["sg_status_list", "is", "ip"]], ["code", "sg_status_list"])
    assert shot is not None
    tasks = sg.find(
        "Task", [["entity", "is", {"type": "Shot", "id": shot["id"]}]], ["sg_status_list"]
    )
    return shot, tasks


def test_rollup_finals_the_shot_when_its_last_task_is_finalled(
    local_site: Any, plugin_under_test: Any
) -> None:
    # Given the rollup plugin and a shot in progress whose tasks are not all final
    plugin = plugin_under_test(PLUGINS / "shotStatusRollup.py")
    shot, tasks = _shot_with_open_tasks(local_site.sg)
    open_tasks = [t for t in tasks if t["sg_status_list"] != "fin"]
    assert open_tasks
    # When every open task but the last is finalled, and each event is delivered
    for task in open_tasks[:-1]:
        for event in local_site.change("Task", task["id"], sg_status_list="fin"):
            plugin.deliver(event)
    # Then nothing was written yet
    assert plugin.writes == []
    # When the last one is finalled
    events = local_site.change("Task", open_tasks[-1]["id"], sg_status_list="fin")
    assert [e["event_type"] for e in events] == ["Shotgun_Task_Change"]
    assert plugin.deliver(events[0]) is Outcome.DONE
    # Then the plugin sets the shot final, once, and the site has it
    assert plugin.writes == [
        {
            "method": "update",
            "entity_type": "Shot",
            "entity_id": shot["id"],
            "data": {"sg_status_list": "fin"},
        }
    ]
    now = local_site.sg.find_one("Shot", [["id", "is", shot["id"]]], ["sg_status_list"])
    assert now["sg_status_list"] == "fin"
    assert plugin.errors == []
    assert any("-> fin" in r.getMessage() for r in plugin.logs)


def test_rollup_sees_its_own_write_on_the_next_poll_and_does_nothing(
    local_site: Any, plugin_under_test: Any
) -> None:
    # Given the rollup plugin on a shot whose tasks are all final but one
    plugin = plugin_under_test(PLUGINS / "shotStatusRollup.py")
    shot, tasks = _shot_with_open_tasks(local_site.sg)
    open_tasks = [t for t in tasks if t["sg_status_list"] != "fin"]
    for task in open_tasks:
        local_site.sg.update("Task", task["id"], {"sg_status_list": "fin"})
    # When the daemon would poll: every event since the plugin loaded is delivered
    delivered = plugin.process_new_events()
    # Then each task change was delivered and the shot was updated once
    assert [e["entity"]["id"] for e in delivered] == [t["id"] for t in open_tasks]
    assert [w["method"] for w in plugin.writes] == ["update"]
    # And the next poll delivers the Shot change the plugin caused, which it ignores
    again = plugin.process_new_events()
    assert [e["event_type"] for e in again] == ["Shotgun_Shot_Change"]
    assert again[0]["entity"]["id"] == shot["id"]
    assert len(plugin.writes) == 1


def test_rollup_ignores_other_fields_and_types(local_site: Any, plugin_under_test: Any) -> None:
    # Given the rollup plugin and its registration
    plugin = plugin_under_test(PLUGINS / "shotStatusRollup.py")
    assert [(r.name, r.match_events) for r in plugin.registered] == [
        ("rollupShotStatus", {"Shotgun_Task_Change": ["sg_status_list"]})
    ]
    # When a task's due date and a shot's status change
    task = local_site.sg.find_one("Task", [], ["id"])
    events = local_site.change("Task", task["id"], due_date="2030-01-01")
    shot = local_site.sg.find_one("Shot", [], ["id"])
    events += local_site.change("Shot", shot["id"], sg_status_list="hld")
    # Then no callback runs
    assert [plugin.deliver(e) for e in events] == [Outcome.SKIPPED, Outcome.SKIPPED]
    assert plugin.writes == []


def test_a_failing_callback_is_reported_and_switches_the_plugin_off(
    local_site: Any, plugin_under_test: Any, tmp_path: Path
) -> None:
    # Given a plugin that raises on every task status change (stopOnError by default)
    path = tmp_path / "broken.py"
    path.write_text(
        "def registerCallbacks(reg):\n"
        "    reg.registerCallback('someone', 'anykey', cb, {'Shotgun_Task_Change': None})\n"
        "def cb(sg, logger, event, args):\n"
        "    sg.find_one('Shot', [['id', 'is', 1]])\n"
        "    raise ValueError('no such thing')\n"
    )
    plugin = plugin_under_test(path)
    task = local_site.sg.find_one("Task", [], ["id"])
    (event,) = local_site.change("Task", task["id"], sg_status_list="hld")
    # When the event is delivered
    outcome = plugin.deliver(event)
    # Then the test did not see an exception; the error, log line and switch-off are there
    assert outcome is Outcome.FAILED
    (error,) = plugin.errors
    assert isinstance(error.exception, ValueError) and error.event_id == event["id"]
    assert "raise ValueError" in error.traceback
    assert not plugin.active
    # (at CRITICAL, with the callback frame's locals, as the original logs it)
    assert any(
        r.levelname == "CRITICAL" and "stopping plugin" in r.getMessage() for r in plugin.logs
    )
    # And the site accepted the plugin's own script name and key (its read worked)
    assert plugin.deliver(event) is Outcome.SKIPPED
    plugin.reload()
    assert plugin.active


def test_event_counter_shares_state_between_its_callbacks(plugin_under_test: Any) -> None:
    # Given the event counter
    plugin = plugin_under_test(PLUGINS / "eventCounter.py")
    # When 50 events are delivered
    for n in range(1, 51):
        plugin.deliver(make_event("Shotgun_Shot_Change", id=n, entity_id=n % 3 + 1))
    # Then both callbacks counted into the one args dict and the summary was logged
    state = plugin.registered[0].args
    assert state is plugin.registered[1].args
    assert state["total"] == 50 and state["byType"]["Shotgun_Shot_Change"] == 50
    assert any("50 events so far" in r.getMessage() for r in plugin.logs)


def test_log_args_logs_each_event_and_replays_a_capture(
    local_site: Any, plugin_under_test: Any, tmp_path: Path
) -> None:
    # Given logArgs and a capture of three events
    from shotgun_events.testing.capture import dump_event

    plugin = plugin_under_test(PLUGINS / "logArgs.py")
    shot = local_site.sg.find_one("Shot", [], ["id"])
    events = local_site.change("Shot", shot["id"], sg_status_list="hld", description="x")
    _, created = local_site.create("Asset", code="cup", project={"type": "Project", "id": 1})
    capture = tmp_path / "events.jsonl"
    capture.write_text("".join(dump_event(e) + "\n" for e in [*events, *created]))
    # When the capture is replayed
    outcomes = plugin.replay(capture)
    # Then one line per event, naming the entity (logArgs sets DEBUG on its logger, so the
    # daemon's "Dispatching event N to callback logArgs." precedes each, as in the original)
    assert outcomes == [Outcome.DONE] * (len(events) + len(created))
    lines = [r.getMessage() for r in plugin.logs if r.name == "plugin.logArgs.logArgs"]
    assert len(lines) == len(outcomes)
    dispatching = [r.getMessage() for r in plugin.logs if r.name == "plugin.logArgs"]
    assert dispatching[-1] == f"Dispatching event {created[-1]['id']} to callback logArgs."
    assert "Asset" in lines[-1] and "cup" in lines[-1]
