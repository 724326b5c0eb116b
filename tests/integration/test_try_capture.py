"""``try`` and ``capture`` run as the real CLI against a seeded local site."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.demo import example_plugins
from shotgun_events.testing.capture import load_events

from .conftest import CONFIG, DaemonRig, daemon_cli


@pytest.fixture
def seeded_rig(tmp_path: Path, local_site: Any) -> DaemonRig:
    folder = tmp_path / "rig"
    folder.mkdir()
    rig = DaemonRig(folder, local_site.site)
    for plugin in example_plugins().glob("*.py"):
        shutil.copy(plugin, rig.plugins / plugin.name)
    return rig


def _site_snapshot(local_site: Any) -> tuple[Any, ...]:
    sg = local_site.sg
    return (
        local_site.newest_event_id(),
        local_site.site.event_count(),
        sorted(
            (e["id"], e["sg_status_list"], str(e["updated_at"]))
            for e in sg.find("Shot", [], ["sg_status_list", "updated_at"])
        ),
        sorted((e["id"], e["sg_status_list"]) for e in sg.find("Task", [], ["sg_status_list"])),
    )


def _final_all_tasks_of_a_shot(local_site: Any) -> tuple[int, dict[str, Any]]:
    sg = local_site.sg
    first = local_site.newest_event_id() + 1
    shot = sg.find_one("Shot", [["sg_status_list", "is", "ip"]], ["code"])
    for task in sg.find("Task", [["entity", "is", shot]], ["sg_status_list"]):
        if task["sg_status_list"] != "fin":
            sg.update("Task", task["id"], {"sg_status_list": "fin"})
    return first, shot


def test_try_shows_the_rollup_writes_and_leaves_site_and_state_untouched(
    seeded_rig: DaemonRig, local_site: Any
) -> None:
    # Given task changes that should roll their shot up, and a saved state file
    first, shot = _final_all_tasks_of_a_shot(local_site)
    seeded_rig.state_file.write_text('{"sentinel": true}\n')
    before_state = seeded_rig.state_file.read_bytes()
    before_site = _site_snapshot(local_site)
    files_before = sorted(p.name for p in seeded_rig.folder.iterdir())
    # When the rollup plugin is tried over those events
    result = daemon_cli(
        seeded_rig,
        "try",
        str(seeded_rig.plugins / "shotStatusRollup.py"),
        "--from-id",
        str(first),
        "--json",
    )
    # Then the report shows the shot update it would have made, for every task change
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == 0 and report["events_read"] >= 2
    writes = [w for e in report["events"] for w in e["writes"]]
    assert writes and all(
        w
        == {
            "method": "update",
            "entity_type": "Shot",
            "entity_id": shot["id"],
            "data": {"sg_status_list": "fin"},
        }
        for w in writes
    )
    # (not sent, so the later events still see the shot in progress and would write again)
    assert report["writes"] == len(writes)
    # And the site and the state file are exactly as they were; no new file appeared
    assert _site_snapshot(local_site) == before_site
    assert seeded_rig.state_file.read_bytes() == before_state
    assert sorted(p.name for p in seeded_rig.folder.iterdir()) == files_before


def test_try_text_report_for_plugins_that_only_log(seeded_rig: DaemonRig, local_site: Any) -> None:
    # Given some events and no state file
    first, _ = _final_all_tasks_of_a_shot(local_site)
    before_site = _site_snapshot(local_site)
    # When logArgs is tried up to a given id
    last = local_site.newest_event_id()
    result = daemon_cli(
        seeded_rig,
        "try",
        str(seeded_rig.plugins / "logArgs.py"),
        "--from-id",
        str(first),
        "--to-id",
        str(last),
    )
    # Then each event is listed as handled with no writes, and nothing changed anywhere
    assert result.returncode == 0, result.stderr
    count = last - first + 1
    assert result.stdout.count(": logArgs\n") == count
    assert result.stdout.count("  no writes\n") == count
    assert result.stdout.count("  log INFO event ") == count
    assert f"{count} events read, {count} matched, 0 writes not sent, 0 errors" in result.stdout
    assert _site_snapshot(local_site) == before_site
    assert not seeded_rig.state_file.exists()


def test_try_reports_errors_with_tracebacks_and_refuses_writes_it_cannot_simulate(
    seeded_rig: DaemonRig, local_site: Any, tmp_path: Path
) -> None:
    # Given a plugin that follows a shot, then schedules work (an unsimulated call), then fails
    plugin = tmp_path / "busy.py"
    plugin.write_text(
        "def registerCallbacks(reg):\n"
        "    reg.registerCallback('busy_bot', 'busy-key', cb, {'Shotgun_Task_Change': None})\n"
        "def cb(sg, logger, event, args):\n"
        "    user = {'type': 'HumanUser', 'id': 1}\n"
        "    sg.follow(user, event['entity'])\n"
        "    sg.batch([{'request_type': 'create', 'entity_type': 'Note',\n"
        "               'data': {'subject': 'x'}}])\n"
        "    sg.work_schedule_update('2030-01-01', False)\n"
    )
    first, _ = _final_all_tasks_of_a_shot(local_site)
    before_site = _site_snapshot(local_site)
    # When it is tried
    result = daemon_cli(seeded_rig, "try", str(plugin), "--from-id", str(first))
    # Then every event shows the follow and the batch, and the refused call as an error
    assert result.returncode == 1
    out = result.stdout
    assert "would follow Task #" in out and '"user": {"id": 1, "type": "HumanUser"}' in out
    assert "would batch" in out and '"subject": "x"' in out
    assert "would work_schedule_update" in out
    assert "ERROR in cb: DryRunRefusedError: dry run: the api3 call 'work_schedule_update'" in out
    assert "Traceback (most recent call last)" in out and "busy.py" in out
    assert "the daemon would switch the plugin off here" in out
    assert _site_snapshot(local_site) == before_site


OWN = """\
import shotgun_api3

def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", cb, {"Shotgun_Task_Change": None})

def cb(sg, logger, event, args):
    mine = shotgun_api3.Shotgun(sg.base_url, "shotgun_events", "local")
    mine.update("Shot", 1, {"description": "written for real"})
"""


def test_try_refuses_a_plugin_with_its_own_connection_unless_allowed(
    seeded_rig: DaemonRig, local_site: Any, tmp_path: Path
) -> None:
    # Given a plugin that opens its own connection in its callback
    plugin = tmp_path / "own.py"
    plugin.write_text(OWN)
    first, _ = _final_all_tasks_of_a_shot(local_site)
    before_site = _site_snapshot(local_site)
    # When it is tried without the override
    result = daemon_cli(seeded_rig, "try", str(plugin), "--from-id", str(first))
    # Then it is refused before running, naming the line and the override
    assert result.returncode == 1
    assert f"{plugin}:7: the plugin opens its own Shotgun connection" in result.stderr
    assert "--allow-own-connection" in result.stderr
    assert _site_snapshot(local_site) == before_site
    # When the connection is hidden from the source (built through getattr)
    plugin.write_text(
        OWN.replace("shotgun_api3.Shotgun(", "getattr(shotgun_api3, 'Shot' + 'gun')(")
    )
    result = daemon_cli(seeded_rig, "try", str(plugin), "--from-id", str(first))
    # Then it is caught when it is made, refused, and nothing was written
    assert result.returncode == 1
    assert "OwnConnectionError" in result.stdout
    assert f"{plugin}:7: the plugin opened its own Shotgun connection; refused" in result.stderr
    assert _site_snapshot(local_site) == before_site
    # When the user allows it
    result = daemon_cli(
        seeded_rig, "try", str(plugin), "--from-id", str(first), "--allow-own-connection"
    )
    # Then it runs, warning that its writes were sent (they were)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "its writes were sent" in result.stderr
    shot = local_site.sg.find_one("Shot", [["id", "is", 1]], ["description"])
    assert shot["description"] == "written for real"


def test_capture_writes_the_events_as_delivered_minus_secrets(
    seeded_rig: DaemonRig, local_site: Any, tmp_path: Path
) -> None:
    # Given a daemon config with its own script key, and events, one carrying secrets
    key = "k3y-of-the-capture-bot"
    seeded_rig.config.write_text(
        CONFIG.format(
            folder=seeded_rig.folder,
            url=local_site.url,
            plugins=seeded_rig.plugins,
            batch=500,
            backlog_timeout=300,
            extra="",
            request_timeout=10,
            key=key,
        ).replace("name = shotgun_events", "name = capture_bot")
    )
    local_site.add_script("capture_bot", key)
    first, _ = _final_all_tasks_of_a_shot(local_site)
    local_site.sg.create(
        "EventLogEntry",
        {
            "event_type": "Shotgun_HumanUser_Change",
            "attribute_name": "password_proxy",
            "meta": {
                "type": "attribute_change",
                "old_value": "old-pass-1",
                "new_value": "hunter2x",
                "note": f"script key {key} pasted here; old-pass-1 too",
            },
        },
    )
    last = local_site.newest_event_id()
    expected = local_site.events_after(first - 1)
    # When they are captured
    result = daemon_cli(seeded_rig, "capture", "--from-id", str(first), "--to-id", str(last))
    # Then one line per event; they load back equal to what the daemon delivers, but secrets
    assert result.returncode == 0, result.stderr
    capture = tmp_path / "events.jsonl"
    capture.write_text(result.stdout)
    events = load_events(capture)
    assert len(events) == len(expected) == last - first + 1
    assert events[:-1] == expected[:-1]
    secret = events[-1]
    assert secret["meta"]["old_value"] == "***" and secret["meta"]["new_value"] == "***"
    assert secret["meta"]["note"] == "script key *** pasted here; *** too"
    assert key not in result.stdout and "hunter2x" not in result.stdout
    assert "old-pass-1" not in result.stdout
    assert {k: v for k, v in secret.items() if k != "meta"} == {
        k: v for k, v in expected[-1].items() if k != "meta"
    }
