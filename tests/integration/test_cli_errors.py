"""Bad input stops the daemon with one clear line and a non-zero exit code; legacy state imports."""

from __future__ import annotations

import pickle
import subprocess

from .conftest import DaemonRig, daemon_command, wait_for


def run_cli(rig: DaemonRig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*daemon_command(), "-c", str(rig.config), *args],
        env=rig.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_required_key_exits_78_naming_file_and_key(rig: DaemonRig) -> None:
    # Given a config without [shotgun] key
    rig.config.write_text(rig.config.read_text().replace("key = local\n", ""))
    # When the daemon is started
    result = run_cli(rig, "foreground")
    # Then it exits with EX_CONFIG and one line naming the file, section and key
    assert result.returncode == 78
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert str(rig.config) in lines[0]
    assert "[shotgun]" in lines[0] and "key" in lines[0]


def test_unreadable_plugin_folder_exits_78(rig: DaemonRig) -> None:
    rig.plugins.rmdir()
    result = run_cli(rig, "foreground")
    assert result.returncode == 78
    assert "paths" in result.stderr and str(rig.plugins) in result.stderr


def test_corrupt_state_file_stops_with_recovery_command_and_keeps_the_file(rig: DaemonRig) -> None:
    # Given an empty state file (what a crash of the original leaves behind)
    rig.state_file.write_bytes(b"")
    rig.add_recorder("rec")
    # When the daemon starts
    result = run_cli(rig, "foreground")
    # Then it refuses with a non-zero code, names the file and the way out
    assert result.returncode != 0
    assert str(rig.state_file) in result.stderr
    assert "reset" in result.stderr
    # And the file is left for the operator
    assert rig.state_file.exists()


def test_original_pickle_state_is_imported(rig: DaemonRig) -> None:
    # Given the original daemon's pickle state for plugin "rec", ten events back
    first, last = rig.site.append_events(20)
    legacy = {str(rig.plugins): {"rec": (first + 9, {})}}
    rig.state_file.write_bytes(pickle.dumps(legacy, protocol=2))
    rig.add_recorder("rec")
    # When the daemon starts
    rig.start()
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="resume from legacy state")
    assert rig.stop() == 0
    # Then it resumed right after the legacy position and now writes JSON
    assert rig.ids_for("rec") == list(range(first + 10, last + 1))
    assert rig.state_file.read_bytes().lstrip().startswith(b"{")


def test_reset_all_recovers_a_corrupt_state_file_without_deleting_it(rig: DaemonRig) -> None:
    # Given a truncated state file
    rig.state_file.write_bytes(b'{"format": "shotgun_events.state", "vers')
    rig.add_recorder("rec")
    first, last = rig.site.append_events(5)
    # When the operator runs the command the error message names, from event first+2
    result = run_cli(rig, "reset", "--all", "--to", str(first + 2), "--reason", "disk trouble")
    assert result.returncode == 0, result.stderr
    # Then the bad file was set aside, not deleted, and the daemon starts there
    assert list(rig.folder.glob("state.json.corrupt-*"))
    rig.start()
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="start after reset")
    assert rig.stop() == 0
    assert rig.ids_for("rec") == list(range(first + 2, last + 1))


def test_reset_one_plugin_while_stopped_and_an_unknown_one_is_refused_while_running(
    rig: DaemonRig,
) -> None:
    rig.add_recorder("a")
    rig.add_recorder("b")
    rig.start()
    rig.wait_ready()
    first, last = rig.site.append_events(3)
    wait_for(lambda: rig.ids_for("b")[-1:] == [last], what="delivery")
    # While running, reset goes to the daemon (tests/integration/test_operator.py),
    # which refuses a plugin it has not loaded
    busy = run_cli(rig, "reset", "ghost", "--to", str(first))
    assert busy.returncode == 1 and "no plugin named 'ghost'" in busy.stderr
    assert rig.stop() == 0
    # When plugin a is reset to replay from `first`
    done = run_cli(rig, "reset", "a", "--to", str(first), "--reason", "replay for test")
    assert done.returncode == 0, done.stderr
    rig.start()
    wait_for(lambda: len(rig.ids_for("a")) == 6, what="replay")
    assert rig.stop() == 0
    # Then only a got the events again
    assert rig.ids_for("a") == list(range(first, last + 1)) * 2
    assert rig.ids_for("b") == list(range(first, last + 1))
    status = run_cli(rig, "status", "--json")
    assert '"name": "a"' in status.stdout
