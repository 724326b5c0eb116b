"""systemd integration: sd_notify readiness, stopping and watchdog pings, and the unit file."""

from __future__ import annotations

import select
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DaemonRig, daemon_command, wait_for

UNIT = Path(__file__).resolve().parents[2] / "conf" / "shotgunEventDaemon.service"


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        assert len(str(path)) < 100, "AF_UNIX paths are limited to 108 bytes"
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        #: Every line received so far, in order ("READY=1", "WATCHDOG=1", ...).
        self.lines: list[str] = []

    def pending(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])

    def drain(self) -> list[str]:
        """Take every datagram already queued, without waiting."""
        while self.pending():
            self.lines.extend(self.sock.recv(4096).decode().splitlines())
        return self.lines

    def wait_for_line(self, line: str, count: int = 1, timeout: float = 30.0) -> None:
        """Receive until ``line`` has arrived ``count`` times."""
        wait_for(lambda: self.drain().count(line) >= count, timeout=timeout, what=repr(line))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify")
    try:
        yield listener
    finally:
        listener.close()


def test_ready_only_after_the_first_fetch_then_watchdog_then_stopping(
    rig: DaemonRig, notify: NotifySocket
) -> None:
    # Given a site that holds the daemon's first read, and a watchdog of 200 ms
    rig.add_recorder("rec")
    rig.site.inject_fault("hang", method="read")
    rig.env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="200000")
    rig.env.pop("WATCHDOG_PID", None)
    # When the daemon runs in the foreground, as systemd runs it
    rig.start()
    wait_for(lambda: rig.site.call_counts().get("read", 0) >= 1, what="the first read")
    # Then it has not told systemd it is ready while the site has not answered
    assert notify.drain() == []
    # When the site answers
    rig.site.clear_faults()
    # Then READY=1 comes, and after it WATCHDOG=1 pings, several of them
    notify.wait_for_line("READY=1")
    notify.wait_for_line("WATCHDOG=1", count=3)
    assert notify.lines.index("READY=1") < notify.lines.index("WATCHDOG=1")
    # And events flow meanwhile
    _, last = rig.site.append_events(3)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="delivery")
    # When systemd stops it with SIGTERM
    assert rig.stop(signal.SIGTERM) == 0
    # Then STOPPING=1 was the last word
    lines = notify.drain()
    assert "STOPPING=1" in lines
    assert [x for x in lines if x != "WATCHDOG=1"][-1] == "STOPPING=1"


@pytest.mark.parametrize(
    "watchdog",
    [{}, {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}],
    ids=["no-watchdog", "watchdog-for-another-pid"],
)
def test_no_watchdog_pings_unless_meant_for_this_process(
    rig: DaemonRig, notify: NotifySocket, watchdog: dict[str, str]
) -> None:
    # Given no watchdog, or one whose WATCHDOG_PID names another process
    rig.add_recorder("rec")
    for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
        rig.env.pop(name, None)
    rig.env.update(NOTIFY_SOCKET=str(notify.path), **watchdog)
    rig.start()
    notify.wait_for_line("READY=1")
    # When it has gone through several loops (each one would ping)
    reads = rig.site.call_counts().get("read", 0)
    wait_for(lambda: rig.site.call_counts().get("read", 0) >= reads + 5, what="more loops")
    assert rig.stop() == 0
    # Then it said ready and stopping, and never pinged
    lines = notify.drain()
    assert "READY=1" in lines and "STOPPING=1" in lines
    assert "WATCHDOG=1" not in lines


def test_wrong_script_key_never_reports_ready(rig: DaemonRig, notify: NotifySocket) -> None:
    # Given a config whose script key the site rejects
    rig.config.write_text(rig.config.read_text().replace("key = local\n", "key = wrong-key-1234\n"))
    rig.add_recorder("rec")
    rig.env.update(NOTIFY_SOCKET=str(notify.path))
    # When the daemon starts under systemd and the site refuses it several times
    rig.start()
    wait_for(
        lambda: rig.log_text().count("rejected the script credentials") >= 2,
        what="the site to reject the key twice",
    )
    # Then it has not said READY=1 (systemd's TimeoutStartSec fails the start)
    assert "READY=1" not in notify.drain()
    # And SIGTERM still stops it cleanly, saying so
    assert rig.stop() == 0
    lines = notify.drain()
    assert "READY=1" not in lines and "STOPPING=1" in lines
    # And the key is named nowhere
    assert "wrong-key-1234" not in rig.log_text() + rig.stderr_text() + "\n".join(lines)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # Given the shipped unit, with ExecStart pointed at this environment's command
    command = daemon_command()
    assert len(command) == 1, "needs the installed console script"
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/shotgunEventDaemon " in text
    unit = tmp_path / UNIT.name
    unit.write_text(
        text.replace("ExecStart=/usr/local/bin/shotgunEventDaemon ", f"ExecStart={command[0]} ")
    )
    # When systemd checks it
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it passes without a single complaint
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def test_watchdog_keeps_pinging_while_the_site_is_down(
    rig: DaemonRig, notify: NotifySocket
) -> None:
    # Given a ready daemon with a 200 ms watchdog
    rig.add_recorder("rec")
    rig.env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="200000")
    rig.env.pop("WATCHDOG_PID", None)
    rig.start()
    notify.wait_for_line("WATCHDOG=1")
    # When the site answers 503 to every read for a while (the daemon waits and retries)
    rig.site.inject_fault("status", count=1000, status=503, method="read")
    wait_for(lambda: "failed 3 times in a row" in rig.log_text(), what="a failed burst")
    pings = notify.drain().count("WATCHDOG=1")
    wait_for(
        lambda: rig.log_text().count("failed 3 times in a row") >= 2, what="a second failed burst"
    )
    # Then the daemon kept telling systemd it is alive: an outage is not a hang
    try:
        assert notify.drain().count("WATCHDOG=1") > pings
    finally:
        rig.site.clear_faults()
        assert rig.stop() == 0


# -- many sites on one host: the template unit (issue 13) --------------------------------

TEMPLATE = UNIT.with_name("shotgunEventDaemon@.service")
EXAMPLE = UNIT.with_name("shotgunEventDaemon@.conf.example")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_template_unit_passes_systemd_analyze_verify_for_an_instance(tmp_path: Path) -> None:
    # Given the shipped template, with ExecStart pointed at this environment's command
    command = daemon_command()
    assert len(command) == 1, "needs the installed console script"
    text = TEMPLATE.read_text()
    assert (
        "ExecStart=/usr/local/bin/shotgunEventDaemon -c /etc/shotgunEventDaemon/%i.conf "
        "foreground" in text
    )
    text = text.replace("ExecStart=/usr/local/bin/shotgunEventDaemon ", f"ExecStart={command[0]} ")
    # When systemd checks the template and an instance of it
    for name in ("shotgunEventDaemon@.service", "shotgunEventDaemon@studioA.service"):
        unit = tmp_path / name
        unit.write_text(text)
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        # Then both pass without a single complaint
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def test_template_gives_each_instance_its_own_folders() -> None:
    # Given the template unit
    lines = dict(
        line.split("=", 1) for line in TEMPLATE.read_text().splitlines() if "=" in line[:40]
    )
    # Then every writable folder is per instance, and a lost lock race is not restarted
    for key in ("RuntimeDirectory", "StateDirectory", "LogsDirectory"):
        assert lines[key] == "shotgunEventDaemon/%i", key
    assert lines["ReadWritePaths"].split() == [
        "/var/lib/shotgunEventDaemon/%i",
        "/var/log/shotgunEventDaemon/%i",
    ]
    assert "75" in lines["RestartPreventExitStatus"].split()


def test_example_instance_configs_share_no_writable_path(tmp_path: Path) -> None:
    # Given the example instance config copied for two sites, as the README says
    from shotgun_events.config.load import load_config

    configs = []
    for instance in ("studioA", "studioB"):
        path = tmp_path / f"{instance}.conf"
        path.write_text(EXAMPLE.read_text().replace("studioA", instance))
        # When the daemon's loader reads each
        configs.append(load_config(path, environ={"SG_ED_API_KEY": "k"}))
    a, b = configs
    # Then each instance's pid file, state, lock, logs and control socket are its own,
    # inside the folders the template unit creates for it
    for config, instance in ((a, "studioA"), (b, "studioB")):
        assert str(config.pid_file).startswith(f"/run/shotgunEventDaemon/{instance}/")
        assert str(config.control_socket_path).startswith(f"/run/shotgunEventDaemon/{instance}/")
        assert str(config.event_id_file).startswith(f"/var/lib/shotgunEventDaemon/{instance}/")
        assert str(config.log_file_path).startswith(f"/var/log/shotgunEventDaemon/{instance}/")
    paths_a = {a.pid_file, a.event_id_file, a.log_file_path, a.control_socket_path}
    paths_b = {b.pid_file, b.event_id_file, b.log_file_path, b.control_socket_path}
    assert not paths_a & paths_b
