"""start/stop/restart/status with real detached processes, and the systemd unit file."""

from __future__ import annotations

import configparser
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shotgun_events.errors import ConfigError
from shotgun_events.service.lifecycle import ReadyReporter, foreground, status_process, stop
from shotgun_events.service.pidfile import PidFile, is_alive, is_daemon_process

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX daemons")

UNIT = Path(__file__).resolve().parents[2] / "conf" / "shotgunEventDaemon.service"

# The CLI stand-in: `start` (or `restart`) with a fake engine whose behaviour is `mode`.
_LAUNCHER = """
import os, signal, sys, time
from pathlib import Path
from shotgun_events.service import lifecycle as service
from shotgun_events.errors import ConfigError, SiteAuthError
from shotgun_events.service.signals import StopFlag

command, mode, pid_file, workdir, ready_timeout = sys.argv[1:6]
workdir = Path(workdir)

def run(reporter):
    (workdir / "run-called").write_text(str(os.getpid()))
    flag = StopFlag()
    flag.install()
    if mode == "fail-early":
        reporter.failed("site unreachable; giving up", 69)
        return 69
    if mode == "raise-early":
        raise SiteAuthError("the site rejected script 'events'")
    if mode == "return-early":
        return 0
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode != "never-ready":
        time.sleep(0.2)  # the first fetch takes a moment
        (workdir / "ready-called").touch()
        reporter.ready()
    while mode == "ignore-term":
        time.sleep(1)
    flag.wait(3600)
    if mode == "slow-stop":
        time.sleep(60)  # busy with one long event
    return 0

def prepare():
    (workdir / "prepare-called").touch()
    if mode == "bad-config":
        raise ConfigError("[shotgun] server is missing; set it to your site URL")
    return run

command = getattr(service, command)
launch = service.LaunchOptions(pid_file=Path(pid_file), working_directory=workdir,
                               ready_timeout=float(ready_timeout),
                               config_path=Path("/etc/sg.conf"))
sys.exit(command(prepare=prepare, launch=launch))
"""

Launch = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def pid_path(tmp_path: Path) -> Path:
    return tmp_path / "shotgunEventDaemon.pid"


@pytest.fixture
def launch(tmp_path: Path, pid_path: Path) -> Iterator[Launch]:
    """Run `shotgunEventDaemon start` (the stand-in); kill whatever it left running."""
    started: list[int] = []

    def _launch(
        mode: str = "normal", command: str = "start", ready_timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        argv = [command, mode, str(pid_path), str(tmp_path), str(ready_timeout)]
        result = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True, timeout=120
        )
        for marker in ("run-called",):
            if (tmp_path / marker).exists():
                started.append(int((tmp_path / marker).read_text()))
        return result

    yield _launch
    for pid in started:
        if is_daemon_process(pid):
            os.kill(pid, signal.SIGKILL)


def _stop(pid_path: Path, *, timeout: float = 30.0, force: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = stop(pid_file=pid_path, timeout=timeout, force=force, out=out)
    return code, out.getvalue()


def test_start_returns_0_only_once_the_daemon_is_ready(
    launch: Launch, pid_path: Path, tmp_path: Path
) -> None:
    # Given no daemon running, when started
    result = launch()
    # Then start returned 0 after the daemon reported ready, and it is detached and running
    assert result.returncode == 0, result.stderr
    pid = PidFile(pid_path).read()
    assert pid is not None
    assert result.stdout == f"shotgunEventDaemon started (pid {pid})\n"
    assert (tmp_path / "ready-called").exists()
    assert is_daemon_process(pid)
    # A new session that it does not lead: it can never get a controlling terminal back
    assert os.getsid(pid) not in (os.getsid(0), pid)
    assert status_process(pid_file=pid_path).exit_code == 0
    # When stopped
    code, out = _stop(pid_path)
    # Then it is gone along with its pid file
    assert (code, out) == (0, f"shotgunEventDaemon stopped (pid {pid})\n")
    assert not is_alive(pid)
    assert not pid_path.exists()


def test_stale_pid_file_is_replaced_at_start(launch: Launch, pid_path: Path) -> None:
    # Given a pid file left by a daemon that died
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_path.write_text(f"{dead.pid}\n")
    # When started
    result = launch()
    # Then the stale file is replaced, and the operator is told
    assert result.returncode == 0, result.stderr
    assert f"removed stale pid file {pid_path} (pid {dead.pid} was not running)" in result.stdout
    pid = PidFile(pid_path).read()
    assert pid is not None and pid != dead.pid and is_daemon_process(pid)
    assert _stop(pid_path)[0] == 0


def test_second_start_is_refused_while_one_runs(
    launch: Launch, pid_path: Path, tmp_path: Path
) -> None:
    # Given a running daemon
    assert launch().returncode == 0
    pid = PidFile(pid_path).read()
    (tmp_path / "prepare-called").unlink()
    # When started again
    result = launch()
    # Then it is refused, before any check or fork, with the fix in the message
    assert result.returncode == 1
    assert f"already running as pid {pid} (pid file {pid_path})" in result.stderr
    assert "stop it first with: shotgunEventDaemon -c /etc/sg.conf stop" in result.stderr
    assert not (tmp_path / "prepare-called").exists()
    assert PidFile(pid_path).read() == pid
    assert _stop(pid_path)[0] == 0


def test_config_error_is_reported_on_the_terminal_and_nothing_detaches(
    launch: Launch, pid_path: Path, tmp_path: Path
) -> None:
    # Given a broken configuration, when started
    result = launch("bad-config")
    # Then the message and EX_CONFIG come back to the terminal, and no daemon was forked
    assert result.returncode == 78
    assert result.stderr == (
        "shotgunEventDaemon: [shotgun] server is missing; set it to your site URL\n"
    )
    assert not (tmp_path / "run-called").exists()
    assert not pid_path.exists()


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("fail-early", 69, "shotgunEventDaemon: site unreachable; giving up\n"),
        ("raise-early", 77, "shotgunEventDaemon: the site rejected script 'events'\n"),
        (
            "return-early",
            1,
            "shotgunEventDaemon: the daemon stopped before it was ready (exit code 0)\n",
        ),
    ],
)
def test_early_failure_in_the_daemon_reaches_the_terminal(
    launch: Launch, pid_path: Path, mode: str, code: int, message: str
) -> None:
    # Given an engine that fails before its first fetch, when started
    result = launch(mode)
    # Then start exits with the daemon's code and message, and the pid file is released
    assert (result.returncode, result.stderr) == (code, message)
    assert not pid_path.exists()


def test_start_gives_up_waiting_but_says_where_the_daemon_is(
    launch: Launch, pid_path: Path
) -> None:
    # Given an engine that never becomes ready, when started with a short wait
    result = launch("never-ready", ready_timeout=0.5)
    # Then start exits 1 naming the still-starting pid, which the operator can stop
    pid = PidFile(pid_path).read()
    assert result.returncode == 1
    assert f"not ready after 0.5 s; it may still be starting (pid {pid})" in result.stderr
    assert _stop(pid_path) == (0, f"shotgunEventDaemon stopped (pid {pid})\n")


def test_stop_returns_when_the_daemon_is_slow_to_stop(launch: Launch, pid_path: Path) -> None:
    # Given a daemon busy with a long event when SIGTERM arrives
    assert launch("slow-stop").returncode == 0
    pid = PidFile(pid_path).read()
    # When stopped with a short timeout
    code, out = _stop(pid_path, timeout=0.5)
    # Then stop gives up instead of hanging, and says what to do
    assert code == 1
    assert out == (
        f"shotgunEventDaemon (pid {pid}) still running after 0.5 s; "
        "wait for the current event to finish, or use --force\n"
    )
    assert pid is not None and is_daemon_process(pid)
    # When stopped again: the second SIGTERM forces the daemon's exit
    assert _stop(pid_path, timeout=30)[0] == 0
    assert not is_alive(pid)
    assert not pid_path.exists()


def test_force_kills_a_daemon_that_ignores_sigterm(launch: Launch, pid_path: Path) -> None:
    # Given a daemon that ignores SIGTERM entirely
    assert launch("ignore-term").returncode == 0
    pid = PidFile(pid_path).read()
    # When stopped with force
    code, out = _stop(pid_path, timeout=0.3, force=True)
    # Then it is killed and its pid file removed
    assert code == 0
    assert out == (
        f"shotgunEventDaemon killed (pid {pid}) after 0.3 s; removed pid file {pid_path}\n"
    )
    assert pid is not None and not is_alive(pid)
    assert not pid_path.exists()


def test_stop_when_not_running_succeeds(pid_path: Path) -> None:
    # Given no pid file, when stopped, then it is a success (LSB)
    assert _stop(pid_path) == (0, "shotgunEventDaemon is not running\n")
    # Given a stale pid file, when stopped, then it is removed
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_path.write_text(f"{dead.pid}\n")
    assert _stop(pid_path) == (
        0,
        f"shotgunEventDaemon is not running (removed stale pid file {pid_path})\n",
    )
    assert not pid_path.exists()


def test_status_exit_codes(launch: Launch, pid_path: Path) -> None:
    # Given no pid file: not running, 3
    status = status_process(pid_file=pid_path)
    assert (status.running, status.exit_code) == (False, 3)
    assert status.describe() == "shotgunEventDaemon is not running"
    # Given a pid file whose process died: 1
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_path.write_text(f"{dead.pid}\n")
    status = status_process(pid_file=pid_path)
    assert (status.running, status.pid, status.exit_code) == (False, dead.pid, 1)
    assert "the next start replaces it" in status.describe()
    # Given a running daemon: 0, with its pid and uptime
    pid_path.unlink()
    assert launch().returncode == 0
    status = status_process(pid_file=pid_path)
    assert (status.running, status.pid, status.exit_code) == (True, PidFile(pid_path).read(), 0)
    assert status.uptime is not None and status.uptime >= 0
    assert status.describe().startswith(f"shotgunEventDaemon is running (pid {status.pid}, up ")
    assert _stop(pid_path)[0] == 0


def test_restart_checks_the_config_before_stopping(launch: Launch, pid_path: Path) -> None:
    # Given a running daemon
    assert launch().returncode == 0
    old = PidFile(pid_path).read()
    # When restarted with a broken configuration
    result = launch("bad-config", command="restart")
    # Then the running daemon is left alone
    assert result.returncode == 78
    assert "not restarted; the running daemon (if any) was left alone" in result.stderr
    assert PidFile(pid_path).running_pid() == old
    # When restarted with a good one
    result = launch(command="restart")
    # Then the old daemon stopped and a new one runs
    new = PidFile(pid_path).read()
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"shotgunEventDaemon stopped (pid {old})\nshotgunEventDaemon started (pid {new})\n"
    )
    assert old is not None and not is_alive(old)
    assert new != old
    assert _stop(pid_path)[0] == 0


class _Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def ready(self) -> None:
        self.events.append("ready")

    def failed(self, message: str, exit_code: int = 1) -> None:
        self.events.append(f"failed {exit_code} {message}")


def test_foreground_holds_the_pid_file_while_running(pid_path: Path) -> None:
    # Given an engine that checks the pid file and reports ready
    recorder = _Recorder()

    def run(reporter: ReadyReporter) -> int:
        assert PidFile(pid_path).still_ours()
        reporter.ready()
        return 0

    # When run in the foreground
    code = foreground(pid_file=pid_path, prepare=lambda: run, reporter=recorder)
    # Then readiness was reported and the pid file released
    assert code == 0
    assert recorder.events == ["ready"]
    assert not pid_path.exists()


def test_foreground_reports_errors_with_their_exit_code(pid_path: Path) -> None:
    # Given a configuration error, and then an engine error
    err = io.StringIO()

    def bad_prepare() -> Callable[[ReadyReporter], int]:
        raise ConfigError("bad [daemon] section")

    def run(reporter: ReadyReporter) -> int:
        raise ConfigError("plugin folder /x does not exist")

    # When run in the foreground, then each error is printed with its exit code
    assert foreground(pid_file=pid_path, prepare=bad_prepare, err=err) == 78
    recorder = _Recorder()
    assert foreground(pid_file=pid_path, prepare=lambda: run, reporter=recorder, err=err) == 78
    assert err.getvalue() == (
        "shotgunEventDaemon: bad [daemon] section\n"
        "shotgunEventDaemon: plugin folder /x does not exist\n"
    )
    assert recorder.events == ["failed 78 plugin folder /x does not exist"]
    assert not pid_path.exists()


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_systemd_unit_key_directives() -> None:
    # Given the shipped unit, when parsed, then the directives the docs rely on are there
    unit = _unit()
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": "/usr/local/bin/shotgunEventDaemon -c /etc/shotgunEventDaemon.conf foreground",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "78",
        "TimeoutStopSec": "60",
        "WatchdogSec": "120",
        "User": "shotgun",
        "Group": "shotgun",
        "UMask": "0027",
        "StandardOutput": "journal",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "StateDirectory": "shotgunEventDaemon",
        "LogsDirectory": "shotgunEventDaemon",
        "RuntimeDirectory": "shotgunEventDaemon",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert "/var/lib/shotgunEventDaemon" in service["ReadWritePaths"].split()
    assert "/var/log/shotgunEventDaemon" in service["ReadWritePaths"].split()
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]
