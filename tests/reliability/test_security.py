"""Secrets stay out of everything the daemon writes; risky permissions are reported; modes."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.integration.conftest import wait_for

from .conftest import (
    PROXY_PASSWORD,
    SCRIPT_KEY,
    SECRETS,
    SMTP_PASSWORD,
    Rig,
    free_port,
    leaked_secrets,
)
from .summary import SUMMARY

EMAILS = """
[emails]
enabled = True
server = 127.0.0.1
port = {port}
username = mailer
password = {password}
from = daemon@example.com
to = ops@example.com
timeout = 2
"""


def test_secrets_never_reach_logs_status_or_stderr(rig: Rig) -> None:
    # Given a proxy with credentials that is not there, and an SMTP server that is not there,
    # so the daemon logs connection errors and fails to send error emails
    proxy = f"http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:{free_port()}"
    rig.write_config(
        request_timeout=2,
        shotgun_extra=f"proxy_server = {proxy}",
        sections=EMAILS.format(port=free_port(), password=SMTP_PASSWORD),
    )
    rig.add_recorder("rec")
    rig.start()
    # When it has failed to reach the site a few times, and status is asked
    wait_for(lambda: rig.log_text().count("failed") >= 3, timeout=60, what="failed reads")
    status = rig.run_cli("status")
    json_status = rig.run_cli("status", "--json")
    SUMMARY.fault("proxy unreachable")
    assert rig.alive()
    assert rig.stop() == 0

    # Then no secret is in the logs, stderr, status output (the rig also checks every file)
    outputs = [status.stdout, status.stderr, json_status.stdout, json_status.stderr]
    for secret in SECRETS:
        assert all(secret not in text for text in outputs), secret[:8]
    assert not leaked_secrets(rig.folder)
    assert "proxyuser" not in rig.log_text() or PROXY_PASSWORD not in rig.log_text()


def test_config_readable_by_others_holding_a_secret_warns(rig: Rig) -> None:
    # Given a config readable by everyone with the script key in it
    rig.config.chmod(0o644)
    rig.add_recorder("rec")
    # When the daemon starts
    rig.start()
    rig.wait_ready()
    rig.stop()
    # Then it warned, naming the file and the fix, without the key
    stderr = rig.stderr_text()
    assert "readable by other users" in stderr and "chmod o-r" in stderr
    assert SCRIPT_KEY not in stderr
    SUMMARY.answered("security", "config readable by others (literal key)", _warning(stderr))


def _warning(text: str) -> str:
    return next(line for line in text.splitlines() if "warning" in line)


def test_plugin_folder_or_file_writable_by_others_warns_or_fails_strictly(rig: Rig) -> None:
    # Given a plugin folder and a plugin file anyone may write
    plugin = rig.add_recorder("rec")
    plugin.chmod(0o666)
    rig.plugins.chmod(0o777)
    # When the daemon starts normally
    rig.start()
    rig.wait_ready()
    rig.stop()
    stderr = rig.stderr_text()
    # Then it warns about both
    assert f"{rig.plugins}: plugin folder writable by other users" in stderr
    assert f"{plugin}: plugin writable by other users" in stderr
    SUMMARY.answered("security", "plugin folder writable by others", _warning(stderr))
    # When strict_permissions is on
    rig.write_config(daemon_extra="strict_permissions = True")
    result = rig.run_cli("foreground")
    # Then it refuses to start with EX_CONFIG
    assert result.returncode == 78, result.stderr
    assert "strict_permissions" in result.stderr
    SUMMARY.answered(
        "security", "same, with strict_permissions = True", f"exit 78: {result.stderr}"
    )


def test_control_files_are_owner_only(rig: Rig) -> None:
    # Given a daemon that ran and wrote its pid file, state file and journal
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    pid_file = rig.folder / "daemon.pid"
    journal = rig.state_file.with_name(rig.state_file.name + ".journal")
    wait_for(lambda: pid_file.exists() and journal.exists(), what="control files")
    # Then each is readable and writable by its owner only
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (pid_file, rig.state_file, journal)}
    rig.stop()
    assert all(mode & 0o077 == 0 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}
    logs = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in Path(rig.folder, "logs").iterdir()}
    SUMMARY.notes.append(
        "modes: "
        + ", ".join(f"{k} {oct(v)}" for k, v in modes.items())
        + f"; log files: {sorted(set(logs.values()))}"
    )
