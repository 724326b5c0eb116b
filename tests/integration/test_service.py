"""The daemon as a service: start, status, stop, restart, signals and the pid file, for real.

Every test runs the installed ``shotgunEventDaemon`` command; ``start`` detaches a
real daemon process, which the ``detached_rig`` fixture kills if a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shotgun_events.service.pidfile import is_alive
from shotgun_events.site import LocalSite

from .conftest import DaemonRig, daemon_cli, daemon_command, pids_running_with, wait_for

#: The daemon's own script credentials: the key must never show in logs or status.
DAEMON_SCRIPT = "event_daemon"
DAEMON_KEY = "Sc1ptKey-4f2a9c-never-logged"

SLOW = '''\
"""Records events like the recorder, sleeping on each; can hang once on one event (test plugin)."""
import os
import time

RECORD = os.environ["RECORD_FILE"]
PER_EVENT = float(os.environ.get("SLEEP_PER_EVENT", "0"))
HANG_ON = int(os.environ.get("HANG_ON", "0"))
HANG_MARK = os.environ.get("HANG_MARK", "")


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", record, None, None)


def _write(line):
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def record(sg, logger, event, args):
    logger.debug("got event %d", event["id"])
    if event["id"] == HANG_ON and not os.path.exists(HANG_MARK):
        open(HANG_MARK, "w").close()
        _write("hanging %d\\n" % event["id"])
        time.sleep(30)
    if PER_EVENT:
        time.sleep(PER_EVENT)
    _write("{name} %d\\n" % event["id"])
'''


@pytest.fixture
def site() -> Iterator[LocalSite]:
    """A site that also knows the daemon's own script, so the config can use a secret key."""
    scripts = {"shotgun_events": "local", DAEMON_SCRIPT: DAEMON_KEY}
    with LocalSite(scripts=scripts) as running:
        yield running


def use_daemon_script(rig: DaemonRig) -> None:
    """Point the config's [shotgun] credentials at the daemon script with the secret key."""
    text = rig.config.read_text()
    assert "name = shotgun_events\nkey = local\n" in text
    rig.config.write_text(
        text.replace(
            "name = shotgun_events\nkey = local\n", f"name = {DAEMON_SCRIPT}\nkey = {DAEMON_KEY}\n"
        )
    )


def add_slow(rig: DaemonRig, name: str, folder: Path | None = None) -> Path:
    path = (folder or rig.plugins) / f"{name}.py"
    path.write_text(SLOW.format(name=name))
    return path


def pid_in_file(rig: DaemonRig) -> int:
    return int((rig.folder / "daemon.pid").read_text().strip())


def started_pid(result: subprocess.CompletedProcess[str]) -> int:
    """The pid printed by a successful ``start``: 'shotgunEventDaemon started (pid N)'."""
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if "started (pid" in x)
    return int(line.rsplit("(pid ", 1)[1].rstrip(")"))


def wait_gone(pid: int) -> None:
    wait_for(lambda: not is_alive(pid), timeout=60, what=f"pid {pid} to exit")


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def all_logs(rig: DaemonRig) -> str:
    return "".join(p.read_text(errors="replace") for p in (rig.folder / "logs").iterdir())


def test_start_returns_once_running_and_status_shows_pid_and_positions(
    detached_rig: DaemonRig,
) -> None:
    rig = detached_rig
    # Given a config with a secret script key and one plugin
    use_daemon_script(rig)
    rig.add_recorder("rec")
    # When the daemon is started
    result = daemon_cli(rig, "start")
    # Then start exits 0 only once the daemon runs: pid file with a live pid, first fetch done
    pid = started_pid(result)
    assert pid_in_file(rig) == pid
    assert is_alive(pid)
    assert rig.site.call_counts().get("read", 0) >= 1
    assert (rig.folder / "daemon.pid").stat().st_mode & 0o777 == 0o600
    # And events appended afterwards are delivered
    first, last = rig.site.append_events(25)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="delivery by the detached daemon")
    assert rig.ids_for("rec") == list(range(first, last + 1))
    # When asking for the status
    status = daemon_cli(rig, "status")
    # Then it exits 0 and prints the pid and the plugin's last event id
    assert status.returncode == 0, status.stderr
    assert f"pid {pid}" in status.stdout
    rec_line = next(line for line in status.stdout.splitlines() if "rec" in line.split())
    assert str(last) in rec_line.split()
    # And --json parses, with the plugin listed
    as_json = daemon_cli(rig, "status", "--json")
    assert as_json.returncode == 0
    report = json.loads(as_json.stdout)
    assert report["running"] is True and report["pid"] == pid
    assert [(p["name"], p["last_event_id"]) for p in report["plugins"]] == [("rec", last)]
    # And the script key shows nowhere: not in status output, not in any log file
    for text in (result.stdout, result.stderr, status.stdout, as_json.stdout, all_logs(rig)):
        assert DAEMON_KEY not in text
    assert daemon_cli(rig, "stop").returncode == 0


def test_stale_pid_file_is_reported_and_replaced_and_a_live_daemon_is_not_started_twice(
    detached_rig: DaemonRig,
) -> None:
    rig = detached_rig
    rig.add_recorder("rec")
    # Given a pid file left by a daemon that died
    gone = dead_pid()
    (rig.folder / "daemon.pid").write_text(f"{gone}\n")
    # Then status says: not running, but the pid file remains (LSB 1)
    assert daemon_cli(rig, "status").returncode == 1
    # When the daemon is started
    result = daemon_cli(rig, "start")
    # Then start reports the stale file and replaces it with the new pid
    pid = started_pid(result)
    assert "stale" in result.stdout and str(gone) in result.stdout
    assert pid_in_file(rig) == pid != gone
    # When it is started a second time
    again = daemon_cli(rig, "start")
    # Then that start refuses with exit 1 and says who runs and how to stop it
    assert again.returncode == 1
    assert f"already running as pid {pid}" in again.stderr
    assert "stop" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    # And the running daemon is untouched
    assert is_alive(pid) and pid_in_file(rig) == pid
    assert daemon_cli(rig, "stop").returncode == 0


def test_stop_ends_the_process_and_status_then_exits_3(detached_rig: DaemonRig) -> None:
    rig = detached_rig
    rig.add_recorder("rec")
    pid = started_pid(daemon_cli(rig, "start"))
    # When it is stopped
    result = daemon_cli(rig, "stop")
    # Then stop exits 0 once the process is gone, and the pid file with it
    assert result.returncode == 0, result.stdout
    assert f"stopped (pid {pid})" in result.stdout
    assert not is_alive(pid)
    assert not (rig.folder / "daemon.pid").exists()
    assert "engine stopping" in rig.log_text()
    # And status says not running (LSB 3); stopping again still succeeds
    assert daemon_cli(rig, "status").returncode == 3
    assert daemon_cli(rig, "stop").returncode == 0


def test_stop_returns_within_its_timeout_while_a_callback_sleeps_and_force_kills(
    detached_rig: DaemonRig,
) -> None:
    rig = detached_rig
    # Given a plugin that sleeps 30 s in its callback on one event (only the first time)
    rig.write_config(extra="stop_timeout = 10")
    add_slow(rig, "rec")
    hang_on = rig.site.newest_event_id() + 1
    rig.env.update(HANG_ON=str(hang_on), HANG_MARK=str(rig.folder / "hung-once"))
    pid = started_pid(daemon_cli(rig, "start"))
    first, last = rig.site.append_events(6)
    assert first == hang_on
    wait_for(lambda: rig.ids_for("hanging") == [hang_on], what="the callback to start sleeping")
    # When stop is asked to wait only 2 s
    began = time.monotonic()
    result = daemon_cli(rig, "stop", "--timeout", "2")
    waited = time.monotonic() - began
    # Then it gives up long before the callback wakes: exit 1, "still running"
    assert result.returncode == 1, result.stdout
    assert "still running" in result.stdout and str(pid) in result.stdout
    assert waited < 20
    assert is_alive(pid)
    # When stop --force is used
    forced = daemon_cli(rig, "stop", "--force")
    # Then the daemon is gone and its pid file removed
    assert forced.returncode == 0, forced.stdout
    wait_gone(pid)
    assert not (rig.folder / "daemon.pid").exists()
    assert rig.ids_for("rec") == []
    # When it is started again
    started_pid(daemon_cli(rig, "start"))
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="delivery after the forced stop")
    assert daemon_cli(rig, "stop").returncode == 0
    # Then the interrupted event was delivered once more (and only once), nothing lost
    assert rig.ids_for("rec") == list(range(first, last + 1))
    assert rig.ids_for("hanging") == [hang_on]


def test_restart_loses_and_repeats_nothing(detached_rig: DaemonRig) -> None:
    rig = detached_rig
    # Given a daemon catching up on 500 events at about 2 ms each
    add_slow(rig, "rec")
    rig.env["SLEEP_PER_EVENT"] = "0.002"
    old = started_pid(daemon_cli(rig, "start"))
    first, _ = rig.site.append_events(500)
    wait_for(lambda: len(rig.ids_for("rec")) >= 50, what="catch-up to begin")
    # When it is restarted in the middle of the catch-up
    result = daemon_cli(rig, "restart")
    # Then restart stopped the old process and started a new one
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"stopped (pid {old})" in result.stdout
    new = started_pid(result)
    assert new != old and not is_alive(old) and pid_in_file(rig) == new
    # And with more events afterwards, every event arrives exactly once, in order
    _, last = rig.site.append_events(100)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="all events after the restart")
    assert daemon_cli(rig, "stop").returncode == 0
    assert rig.ids_for("rec") == list(range(first, last + 1))


def test_sighup_rereads_config_and_plugins_and_keeps_pid_and_positions(
    detached_rig: DaemonRig,
) -> None:
    rig = detached_rig
    # Given a running daemon at log level DEBUG with one plugin that logs each event at DEBUG
    add_slow(rig, "rec")
    pid = started_pid(daemon_cli(rig, "start"))
    first, mid = rig.site.append_events(20)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [mid], what="events before the reload")
    plugin_log = rig.folder / "logs" / "plugin.rec"
    wait_for(lambda: f"got event {mid}" in plugin_log.read_text(), what="debug lines")
    # When the config changes (level INFO, a second plugin folder) and SIGHUP is sent
    second = rig.folder / "more_plugins"
    second.mkdir()
    add_slow(rig, "late", second)
    text = rig.config.read_text()
    rig.config.write_text(
        text.replace("logging = 10", "logging = 20").replace(
            f"paths = {rig.plugins}", f"paths = {rig.plugins}, {second}"
        )
    )
    os.kill(pid, signal.SIGHUP)
    # Then the daemon says it got the request, and picks up the new plugin folder
    wait_for(lambda: "SIGHUP received" in rig.log_text(), what="the reload request")
    wait_for(lambda: "loaded plugin late" in rig.log_text(), what="the reload")
    _, last = rig.site.append_events(20)
    wait_for(
        lambda: rig.ids_for("rec")[-1:] == [last] and rig.ids_for("late")[-1:] == [last],
        what="events after the reload",
    )
    # And the same process did it, with every event delivered once, before and after
    assert is_alive(pid) and pid_in_file(rig) == pid
    assert rig.ids_for("rec") == list(range(first, last + 1))
    assert rig.ids_for("late") == list(range(mid + 1, last + 1))
    # And the new level applies: no DEBUG line for events after the reload
    assert f"got event {mid}" in plugin_log.read_text()
    assert f"got event {last}" not in plugin_log.read_text()
    assert daemon_cli(rig, "stop").returncode == 0


def test_sighup_reload_is_written_to_the_log_file(detached_rig: DaemonRig) -> None:
    rig = detached_rig
    # Given a running daemon
    rig.add_recorder("rec")
    pid = started_pid(daemon_cli(rig, "start"))
    # When its config is broken and SIGHUP is sent, then fixed and SIGHUP is sent again
    good = rig.config.read_text()
    rig.config.write_text(good.replace("max_event_batch_size = 500", "max_event_batch_size = x"))
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: rig.log_text().count("shotgunEventDaemon starting") == 2, what="reload 1")
    rig.config.write_text(good)
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: rig.log_text().count("shotgunEventDaemon starting") == 3, what="reload 2")
    assert daemon_cli(rig, "stop").returncode == 0
    # Then the operator can read in the log that the broken config was refused, and the reload
    log_text = rig.log_text()
    assert "keeping the running configuration" in log_text
    assert "configuration re-read" in log_text


def test_sigterm_in_the_middle_of_a_batch_saves_the_position(detached_rig: DaemonRig) -> None:
    rig = detached_rig
    # Given a daemon catching up on 2,000 events at about 2 ms each
    add_slow(rig, "rec")
    rig.env["SLEEP_PER_EVENT"] = "0.002"
    pid = started_pid(daemon_cli(rig, "start"))
    first, last = rig.site.append_events(2000)
    wait_for(lambda: len(rig.ids_for("rec")) >= 300, what="catch-up to be under way")
    # When SIGTERM arrives in the middle of a batch
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    stopped_at = len(rig.ids_for("rec"))
    assert stopped_at < 2000
    assert not (rig.folder / "daemon.pid").exists()
    # And the daemon is started again
    started_pid(daemon_cli(rig, "start"))
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], timeout=60, what="the rest of the catch-up")
    assert daemon_cli(rig, "stop").returncode == 0
    # Then no event was lost and none delivered twice
    assert rig.ids_for("rec") == list(range(first, last + 1))


def test_deleting_the_pid_file_stops_the_daemon(detached_rig: DaemonRig) -> None:
    rig = detached_rig
    rig.add_recorder("rec")
    pid = started_pid(daemon_cli(rig, "start"))
    # When the pid file is deleted
    (rig.folder / "daemon.pid").unlink()
    # Then the daemon notices, says why, and exits
    wait_gone(pid)
    assert "was removed or replaced; stopping" in rig.log_text()
    assert daemon_cli(rig, "status").returncode == 3


def test_config_error_on_start_is_printed_with_exit_78_and_nothing_runs(
    detached_rig: DaemonRig,
) -> None:
    rig = detached_rig
    # Given a config without [shotgun] key
    rig.add_recorder("rec")
    rig.config.write_text(rig.config.read_text().replace("key = local\n", ""))
    # When the daemon is started
    result = daemon_cli(rig, "start")
    # Then the error is on the terminal with EX_CONFIG, and nothing was left behind
    assert result.returncode == 78
    assert "[shotgun]" in result.stderr and "key" in result.stderr
    assert str(rig.config) in result.stderr
    assert not (rig.folder / "daemon.pid").exists()
    assert pids_running_with(str(rig.config)) == []


def test_restart_with_a_broken_config_leaves_the_running_daemon_alone(
    detached_rig: DaemonRig,
) -> None:
    rig = detached_rig
    rig.add_recorder("rec")
    pid = started_pid(daemon_cli(rig, "start"))
    # When the config gets a typo and restart is asked for
    good = rig.config.read_text()
    rig.config.write_text(good.replace("fetch_interval = 0.2", "fetch_interval = soon"))
    result = daemon_cli(rig, "restart")
    # Then restart refuses with EX_CONFIG and the daemon keeps running and delivering
    assert result.returncode == 78
    assert "fetch_interval" in result.stderr
    assert is_alive(pid) and pid_in_file(rig) == pid
    _, last = rig.site.append_events(3)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="delivery after the refused restart")
    rig.config.write_text(good)
    assert daemon_cli(rig, "stop").returncode == 0


def test_two_starts_at_once_leave_exactly_one_daemon(detached_rig: DaemonRig) -> None:
    rig = detached_rig
    rig.add_recorder("rec")
    # When two operators run start at the same moment
    command = [*daemon_command(), "-c", str(rig.config), "start"]
    racers = [
        subprocess.Popen(command, env=rig.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=90)
        outcomes.append((racer.returncode, out.decode() + err.decode()))
    # Then exactly one started, the other said the daemon is already running
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 1], outcomes
    loser = next(text for code, text in outcomes if code == 1)
    assert "already running" in loser
    # And exactly one daemon process runs, the one in the pid file
    wait_for(lambda: len(pids_running_with(str(rig.config))) == 1, what="the loser to exit")
    assert pids_running_with(str(rig.config)) == [pid_in_file(rig)]
    _, last = rig.site.append_events(5)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="delivery")
    assert daemon_cli(rig, "stop").returncode == 0
    assert len(rig.ids_for("rec")) == 5


def test_second_sigterm_forces_exit_during_a_long_callback(rig: DaemonRig) -> None:
    # Given a foreground daemon whose callback sleeps 30 s on the next event
    add_slow(rig, "rec")
    hang_on = rig.site.newest_event_id() + 1
    rig.env.update(HANG_ON=str(hang_on), HANG_MARK=str(rig.folder / "hung-once"))
    proc = rig.start()
    rig.wait_ready()
    rig.site.append_events(1)
    wait_for(lambda: rig.ids_for("hanging") == [hang_on], what="the callback to start sleeping")
    # When SIGTERM comes twice
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM received" in rig.log_text(), what="the first SIGTERM to be seen")
    proc.send_signal(signal.SIGTERM)
    # Then it exits at once with 128 + SIGTERM, saying so, and leaves a stale pid file
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert "forced exit" in rig.stderr_text()
    assert (rig.folder / "daemon.pid").exists()
    # And the next start replaces the stale pid file and delivers the event
    result = daemon_cli(rig, "start")
    started_pid(result)
    assert "stale" in result.stdout
    wait_for(lambda: rig.ids_for("rec") == [hang_on], what="the interrupted event")
    assert daemon_cli(rig, "stop").returncode == 0
