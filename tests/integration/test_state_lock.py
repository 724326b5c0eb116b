"""One owner per state file: a second daemon and offline commands are fenced off by the lock."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from .conftest import DaemonRig, daemon_cli, daemon_command, wait_for


def second_config(rig: DaemonRig) -> Path:
    """A config of its own (pid file, logs, socket) that shares the rig's eventIdFile."""
    other = rig.folder / "second"
    other.mkdir(exist_ok=True)
    text = rig.config.read_text()
    text = text.replace(f"pidFile = {rig.folder}/daemon.pid", f"pidFile = {other}/daemon.pid")
    text = text.replace(f"logPath = {rig.folder}/logs", f"logPath = {other}/logs")
    path = other / "second.conf"
    path.write_text(text)
    path.chmod(0o600)
    return path


def run_with(rig: DaemonRig, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*daemon_command(), "-c", str(config), *args],
        env=rig.env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def lock_text(rig: DaemonRig) -> str:
    path = rig.state_file.with_name(rig.state_file.name + ".lock")
    return path.read_text() if path.exists() else ""


def test_a_second_daemon_on_the_same_state_exits_75_and_the_first_goes_on(
    rig: DaemonRig,
) -> None:
    # Given a daemon delivering to a plugin, and a second config sharing its state file
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    assert rig.proc is not None
    first_pid = rig.proc.pid
    other = second_config(rig)
    # When a second daemon is started on it
    second = run_with(rig, other, "foreground")
    # Then it exits 75 with one line naming the state file and the first daemon's pid
    assert second.returncode == 75, second.stderr
    lines = [line for line in second.stderr.splitlines() if str(rig.state_file) in line]
    assert len(lines) == 1, second.stderr
    assert f"pid {first_pid}" in lines[0] and "in use by shotgunEventDaemon" in lines[0]
    # And `start` (detached) says the same on the terminal, before detaching
    detached = run_with(rig, other, "start")
    assert detached.returncode == 75 and f"pid {first_pid}" in detached.stderr, detached.stderr
    # And after a SIGHUP reload the first daemon still holds the lock
    rig.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: configuration re-read" in rig.log_text(), what="reload")
    again = run_with(rig, other, "foreground")
    assert again.returncode == 75 and f"pid {first_pid}" in again.stderr, again.stderr
    # And the lock file, owner-only, names the first daemon
    assert lock_text(rig).split() == [str(first_pid), "daemon"]
    mode = rig.state_file.with_name("state.json.lock").stat().st_mode & 0o777
    assert mode == 0o600
    # And the first daemon goes on untouched: it delivers every new event once
    first, last = rig.site.append_events(5)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="deliveries by the first daemon")
    assert rig.ids_for("rec") == list(range(first, last + 1))
    assert rig.proc.poll() is None
    # When the first daemon is killed with SIGKILL
    rig.kill()
    # Then the lock is free at once: the second config's daemon starts and takes over
    proc = subprocess.Popen(
        [*daemon_command(), "-c", str(other), "foreground"],
        env=rig.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: lock_text(rig).split()[:1] == [str(proc.pid)], what="lock taken")
        _, more_last = rig.site.append_events(3)
        wait_for(lambda: rig.ids_for("rec")[-1:] == [more_last], what="second daemon delivers")
        assert rig.ids_for("rec") == list(range(first, more_last + 1))
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_offline_reset_refuses_while_a_daemon_of_another_config_owns_the_state(
    rig: DaemonRig,
) -> None:
    # Given a daemon running, and a config with another pid file on the same state
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    assert rig.proc is not None
    other = second_config(rig)
    before = rig.state_file.read_bytes()
    # When an offline reset is run through that config (its pid file says "stopped")
    refused = run_with(rig, other, "reset", "rec", "--to", "1", "--reason", "test")
    # Then it refuses, naming the daemon, and writes nothing
    assert refused.returncode == 75, refused.stderr
    assert f"pid {rig.proc.pid}" in refused.stderr and "stop it first" in refused.stderr
    assert rig.state_file.read_bytes() == before
    # And an offline skip is refused the same way, pointing at the control socket
    skipped = run_with(rig, other, "disable", "rec", "--reason", "test")
    assert skipped.returncode == 75 and "control socket" in skipped.stderr, skipped.stderr
    assert rig.stop() == 0


def test_a_daemon_starting_during_an_offline_reset_waits_for_it(rig: DaemonRig) -> None:
    # Given a plugin with a saved position, the daemon stopped, and five events since
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    assert rig.stop() == 0
    missed_first, missed_last = rig.site.append_events(5)
    # And an offline reset to the newest event, held up on its read of the site
    rig.site.inject_fault("hang", 1, seconds=120, method="read")
    reset = subprocess.Popen(
        [
            *daemon_command(),
            "-c",
            str(rig.config),
            "reset",
            "rec",
            "--to",
            "latest",
            "--reason",
            "skip what came while stopped",
        ],
        env=rig.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: lock_text(rig).split()[1:] == ["reset"], what="reset to take the lock")
        # When the daemon starts meanwhile
        rig.start()
        wait_for(lambda: "waiting for operator command 'reset'" in rig.stderr_text(), what="wait")
        assert rig.proc is not None and rig.proc.poll() is None
        # And the reset then finishes
        rig.site.clear_faults()
        out, err = reset.communicate(timeout=60)
    finally:
        if reset.poll() is None:
            reset.kill()
            reset.wait()
    assert reset.returncode == 0, err
    assert f"start after event {missed_last}" in out
    # Then the daemon read the state the reset wrote: the five events are not delivered
    wait_for(lambda: lock_text(rig).split()[1:] == ["daemon"], what="daemon takes the lock")
    new_first, new_last = rig.site.append_events(2)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [new_last], what="new events")
    assert not set(range(missed_first, missed_last + 1)) & set(rig.ids_for("rec"))
    assert rig.ids_for("rec")[-2:] == [new_first, new_last]
    assert rig.stop() == 0


def test_an_offline_command_takes_the_lock_and_releases_it(rig: DaemonRig) -> None:
    # Given a stopped daemon with a saved position
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    assert rig.stop() == 0
    # When an offline command runs
    done = daemon_cli(rig, "disable", "rec", "--reason", "maintenance")
    # Then it succeeds and leaves the lock free (an empty lock file) for the daemon
    assert done.returncode == 0, done.stderr
    assert lock_text(rig) == ""
    rig.start()
    wait_for(lambda: lock_text(rig).split()[1:] == ["daemon"], what="daemon takes the lock")
    assert rig.stop() == 0


def test_a_reload_that_changes_the_state_file_keeps_the_running_one(rig: DaemonRig) -> None:
    # Given a running daemon holding the lock of its state file
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    assert rig.proc is not None
    # When its config is edited to another eventIdFile and it is told to reload
    text = rig.config.read_text()
    rig.config.write_text(text.replace("state.json", "other-state.json"))
    rig.proc.send_signal(signal.SIGHUP)
    # Then it keeps the state file it owns, says why, and goes on delivering into it
    wait_for(lambda: "eventIdFile changed" in rig.log_text(), what="the refusal")
    _, last = rig.site.append_events(2)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="deliveries")
    assert lock_text(rig).split() == [str(rig.proc.pid), "daemon"]
    assert not (rig.folder / "other-state.json").exists()
    assert rig.stop() == 0


def test_reset_and_daemon_start_at_the_same_instant_never_both_write(rig: DaemonRig) -> None:
    # Given a stopped daemon whose plugin missed events while it was stopped
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    assert rig.stop() == 0
    outcomes = []
    for trial in range(4):
        missed_first, missed_last = rig.site.append_events(3)
        missed = set(range(missed_first, missed_last + 1))
        # When an offline reset past them and a daemon start are launched together
        out = rig.folder / f"reset-{trial}.txt"
        with out.open("w") as sink:
            reset = subprocess.Popen(
                [
                    *daemon_command(),
                    "-c",
                    str(rig.config),
                    "reset",
                    "rec",
                    "--to",
                    str(missed_last + 1),
                    "--reason",
                    "race",
                ],
                env=rig.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            rig.start()
            code = reset.wait(timeout=120)
        said = out.read_text()
        rig.wait_ready()
        _, marker = rig.site.append_events(1)
        wait_for(lambda m=marker: rig.ids_for("rec")[-1:] == [m], what="marker delivered")
        assert rig.stop() == 0
        got = set(rig.ids_for("rec")) & missed
        # Then exactly one of them wrote the state:
        if code == 0 and "to start after event" in said:
            # the offline reset went first and the daemon waited, then read what it wrote
            assert got == set(), said
            outcomes.append("offline reset first")
        elif code == 0:
            # the daemon was up: the reset went through its control socket
            assert "continues after event" in said, said
            outcomes.append("sent to the daemon")
        else:
            # the daemon held the lock: the reset was refused, the daemon delivered
            assert code in (1, 75), said
            assert any(w in said for w in ("in use by", "is running", "daemon runs")), said
            assert got == missed, said
            outcomes.append("refused")
    assert len(outcomes) == 4
