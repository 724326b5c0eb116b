"""Operator commands against the real daemon: live through the control socket, and stopped."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonRig, daemon_cli, wait_for


def run_ok(rig: DaemonRig, *args: str) -> str:
    """Run a command that must succeed; return its output."""
    result = daemon_cli(rig, *args)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def status(rig: DaemonRig) -> dict[str, Any]:
    result = daemon_cli(rig, "status", "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def plugin_status(rig: DaemonRig, name: str) -> dict[str, Any]:
    return next(p for p in status(rig)["plugins"] if p["name"] == name)


def audit_entries(rig: DaemonRig, command: str) -> list[dict[str, Any]]:
    return [entry for entry in status(rig)["audit"] if entry["command"] == command]


def socket_path(rig: DaemonRig) -> Path:
    return rig.folder / "daemon.pid.sock"


@pytest.fixture(params=["parallel", "serial"])
def dispatch(request: pytest.FixtureRequest, rig: DaemonRig) -> str:
    """Run a test with each dispatch mode: operations pause and resume workers differently."""
    mode: str = request.param
    rig.write_config(extra=f"dispatch = {mode}")
    return mode


def start_live(rig: DaemonRig, *names: str) -> None:
    """Start the daemon with recording plugins and wait until it takes commands."""
    for name in names:
        rig.add_recorder(name)
    rig.start()
    rig.wait_ready()
    wait_for(socket_path(rig).exists, what="control socket")


def test_the_control_socket_is_owner_only_and_status_comes_from_the_daemon(
    rig: DaemonRig,
) -> None:
    # Given a running daemon with one plugin that handled some events
    start_live(rig, "rec")
    _, last = rig.site.append_events(5)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="delivery")
    # Then its control socket is a socket only its owner may use
    mode = socket_path(rig).stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    # And status --json comes from the daemon, with state, position, backlog and lag
    report = status(rig)
    assert report["running"] is True and report["source"] == "daemon"
    rec = next(p for p in report["plugins"] if p["name"] == "rec")
    assert rec["state"] == "active" and rec["last_event_id"] == last
    assert {"backlog", "lag_events", "lag_seconds", "retrying", "dead_letters"} <= set(rec)
    # And the plain status prints the plugin's line
    text = run_ok(rig, "status")
    assert any(line.split()[:2] == ["rec", "active"] for line in text.splitlines())
    # When the daemon stops, Then the socket is gone
    assert rig.stop() == 0
    assert not socket_path(rig).exists()


def test_replay_delivers_a_range_again_to_one_plugin_only(rig: DaemonRig, dispatch: str) -> None:
    # Given two plugins that handled ten events
    start_live(rig, "a", "b")
    first, last = rig.site.append_events(10)
    wait_for(lambda: rig.ids_for("a")[-1:] == [last] and rig.ids_for("b")[-1:] == [last])
    # When events first+2..first+5 are replayed to a
    out = run_ok(
        rig,
        "replay",
        "a",
        "--from-id",
        str(first + 2),
        "--to-id",
        str(first + 5),
        "--reason",
        "re-run after the fix",
    )
    # Then a got exactly those again, b got nothing more
    assert "replayed 4 event(s)" in out
    replayed = list(range(first + 2, first + 6))
    assert rig.ids_for("a") == list(range(first, last + 1)) + replayed
    assert rig.ids_for("b") == list(range(first, last + 1))
    # And a's position did not move: new events reach both once
    assert plugin_status(rig, "a")["last_event_id"] == last
    new_first, new_last = rig.site.append_events(2)
    wait_for(lambda: rig.ids_for("a")[-1:] == [new_last] and rig.ids_for("b")[-1:] == [new_last])
    assert rig.ids_for("a")[-2:] == [new_first, new_last]
    # And the reason is in the log and in the audit list
    assert "re-run after the fix" in rig.log_text()
    entry = audit_entries(rig, "replay")[-1]
    assert (entry["plugin"], entry["reason"]) == ("a", "re-run after the fix")
    assert rig.stop() == 0


def test_skip_gives_up_the_event_a_crashed_plugin_is_stuck_on(
    rig: DaemonRig, dispatch: str
) -> None:
    # Given a plugin that fails on one event (stopOnError) and one that does not
    base, _ = rig.site.append_events(1)
    bad = base + 3
    rig.env["FAIL_ON_crashy"] = str(bad)
    start_live(rig, "crashy", "other")
    _, last = rig.site.append_events(5)
    wait_for(lambda: rig.ids_for("other")[-1:] == [last], what="delivery to other")
    wait_for(lambda: plugin_status(rig, "crashy")["state"] == "inactive", what="crashy stopped")
    assert rig.ids_for("crashy") == [base + 1, base + 2]
    # When the operator skips an event it is not stuck on, Then it is refused
    wrong = daemon_cli(rig, "skip", "crashy", "--event", str(bad + 1))
    assert wrong.returncode == 1 and f"not stuck on event {bad + 1}" in wrong.stderr
    # When the operator skips the event it is stuck on
    out = run_ok(rig, "skip", "crashy", "--event", str(bad), "--reason", "bad data in 3")
    assert f"skipped event {bad}" in out
    # Then the plugin resumes after it
    wait_for(lambda: rig.ids_for("crashy")[-1:] == [last], what="crashy resumes")
    assert rig.ids_for("crashy") == [base + 1, base + 2, bad + 1, last]
    # And status --json shows it active again, with the dead letter
    report = status(rig)
    crashy = next(p for p in report["plugins"] if p["name"] == "crashy")
    assert crashy["state"] == "active" and crashy["dead_letters"] == 1
    letter = report["dead_letters"][-1]
    assert (letter["plugin"], letter["event_id"]) == ("crashy", bad)
    assert "bad data in 3" in letter["reason"]
    # And the reason is logged and audited
    assert "bad data in 3" in rig.log_text()
    assert audit_entries(rig, "skip")[-1]["event_id"] == bad
    assert rig.stop() == 0


def test_reset_moves_one_plugin_to_an_id_and_to_the_newest_event(
    rig: DaemonRig, dispatch: str
) -> None:
    # Given a plugin that handled ten events, and another one
    start_live(rig, "rec", "other")
    first, last = rig.site.append_events(10)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last] and rig.ids_for("other")[-1:] == [last])
    # When rec is reset to first+6
    out = run_ok(rig, "reset", "rec", "--to", str(first + 6), "--reason", "redo the tail")
    assert f"continues after event {first + 5}" in out
    # Then it gets first+6..last again, and the other plugin nothing
    again = list(range(first + 6, last + 1))
    wait_for(lambda: rig.ids_for("rec") == list(range(first, last + 1)) + again, what="redo")
    # When it is reset to the newest event and two more events come
    run_ok(rig, "reset", "rec", "--to", "latest", "--reason", "skip the rest")
    new_first, new_last = rig.site.append_events(2)
    wait_for(lambda: rig.ids_for("other")[-1:] == [new_last], what="new events")
    wait_for(lambda: rig.ids_for("rec")[-1:] == [new_last], what="new events to rec")
    # Then rec got only those after the redo, and the other plugin every event once
    assert rig.ids_for("rec") == list(range(first, last + 1)) + again + [new_first, new_last]
    assert rig.ids_for("other") == list(range(first, new_last + 1))
    # And both reasons were audited
    assert [e["reason"] for e in audit_entries(rig, "reset")] == ["redo the tail", "skip the rest"]
    assert "redo the tail" in rig.log_text() and "skip the rest" in rig.log_text()
    # And a reset naming no plugin is refused
    refused = daemon_cli(rig, "reset", "--to", "latest")
    assert refused.returncode == 1 and "name the plugins" in refused.stderr
    assert rig.stop() == 0


def test_a_disabled_plugin_gets_nothing_and_catches_up_when_enabled(
    rig: DaemonRig, dispatch: str
) -> None:
    # Given two plugins that are up to date
    start_live(rig, "rec", "other")
    first, last = rig.site.append_events(3)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last] and rig.ids_for("other")[-1:] == [last])
    # When rec is disabled and five events come
    run_ok(rig, "disable", "rec", "--reason", "maintenance window")
    _, down_last = rig.site.append_events(5)
    wait_for(lambda: rig.ids_for("other")[-1:] == [down_last], what="delivery to other")
    # Then status shows it disabled with the reason, and it got none of them
    rec = plugin_status(rig, "rec")
    assert rec["state"] == "disabled" and "maintenance window" in rec["reason"]
    assert rig.ids_for("rec") == list(range(first, last + 1))
    # When it is enabled
    out = run_ok(rig, "enable", "rec", "--reason", "window over")
    assert "enabled rec" in out
    # Then it catches up from where it stopped, each event once
    wait_for(lambda: rig.ids_for("rec")[-1:] == [down_last], what="catch-up")
    assert rig.ids_for("rec") == list(range(first, down_last + 1))
    # And both commands are logged and audited with their reasons
    assert "maintenance window" in rig.log_text() and "window over" in rig.log_text()
    assert audit_entries(rig, "disable")[-1]["reason"] == "maintenance window"
    assert audit_entries(rig, "enable")[-1]["reason"] == "window over"
    assert rig.stop() == 0


def test_reload_reloads_one_plugin_or_all_and_unknown_names_are_refused(rig: DaemonRig) -> None:
    # Given two plugins
    start_live(rig, "rec", "other")
    # When one is reloaded, then all
    assert "reloaded rec" in run_ok(rig, "reload", "rec", "--reason", "new helper")
    assert "reloaded other, rec" in run_ok(rig, "reload")
    # Then both still deliver
    _, last = rig.site.append_events(2)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last] and rig.ids_for("other")[-1:] == [last])
    # And the reasons are audited (the default when none was given)
    assert [e["reason"] for e in audit_entries(rig, "reload")] == [
        "new helper",
        "no reason given",
    ]
    # And a plugin that does not exist is refused with the known names
    unknown = daemon_cli(rig, "disable", "nope")
    assert unknown.returncode == 1 and "no plugin named 'nope'" in unknown.stderr
    assert rig.stop() == 0


def test_commands_while_stopped_edit_the_state_and_replay_runs_at_the_next_start(
    rig: DaemonRig,
) -> None:
    # Given two plugins that handled ten events, and a stopped daemon
    start_live(rig, "rec", "other")
    first, last = rig.site.append_events(10)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last] and rig.ids_for("other")[-1:] == [last])
    assert rig.stop() == 0
    # And two events created while it is stopped
    stuck, after = rig.site.append_events(2)
    # When the operator queues a replay, skips rec's next event, disables other, reloads
    out = run_ok(
        rig,
        "replay",
        "rec",
        "--from-id",
        str(first + 1),
        "--to-id",
        str(first + 3),
        "--reason",
        "queued replay",
    )
    assert "runs it when it next starts" in out
    wrong = daemon_cli(rig, "skip", "rec", "--event", str(after))
    assert wrong.returncode == 1 and f"next event is {stuck}" in wrong.stderr
    assert "skipped event" in run_ok(
        rig, "skip", "rec", "--event", str(stuck), "--reason", "known bad"
    )
    run_ok(rig, "disable", "other", "--reason", "offline disable")
    assert "nothing to do" in run_ok(rig, "reload")
    # Then status (stopped) shows it from the state file
    stopped = daemon_cli(rig, "status", "--json")
    assert stopped.returncode == 3
    report = json.loads(stopped.stdout)
    assert report["running"] is False and report["source"] == "state file"
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["rec"]["last_event_id"] == stuck and plugins["rec"]["dead_letters"] == 1
    assert plugins["other"]["state"] == "disabled"
    assert report["pending_replays"][0]["from_id"] == first + 1
    assert [e["command"] for e in report["audit"]] == ["replay", "skip", "disable"]
    assert {e["daemon"] for e in report["audit"]} == {"stopped"}
    assert "queued replay" in daemon_cli(rig, "status").stdout
    # When the daemon starts again
    rig.start()
    wait_for(socket_path(rig).exists, what="control socket")
    wait_for(lambda: rig.ids_for("rec")[-1:] == [after], what="rec after the restart")
    # Then rec got the replayed range and the event after the skipped one, other nothing
    assert rig.ids_for("rec") == (
        list(range(first, last + 1)) + list(range(first + 1, first + 4)) + [after]
    )
    assert rig.ids_for("other") == list(range(first, last + 1))
    assert status(rig)["pending_replays"] == []
    # When other is enabled (live), Then it catches up with both events
    run_ok(rig, "enable", "other", "--reason", "back")
    wait_for(lambda: rig.ids_for("other")[-1:] == [after], what="other catches up")
    assert rig.ids_for("other") == list(range(first, after + 1))
    assert rig.stop() == 0
    # And enabling a plugin that is not disabled, while stopped, changes nothing
    assert "nothing to change" in run_ok(rig, "enable", "other")


def test_the_command_line_names_missing_arguments(rig: DaemonRig) -> None:
    # When replay is run without --from-id, Then argparse reports it (exit 2)
    result = daemon_cli(rig, "replay", "rec")
    assert result.returncode == 2 and "--from-id" in result.stderr
    # When a plugin unknown to a stopped daemon is disabled, Then the error names it
    result = daemon_cli(rig, "disable", "ghost")
    assert result.returncode == 1 and "no plugin named 'ghost'" in result.stderr
