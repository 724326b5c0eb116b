"""Fixtures that run the real daemon as a subprocess against a local site on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shotgun_events.site import LocalSite

RECORDER = '''\
"""Records every event it gets as '<plugin> <id>' lines (test plugin)."""
import os

RECORD = os.environ["RECORD_FILE"]
FAIL_ON = {{int(x) for x in os.environ.get("FAIL_ON_{name}", "").split(",") if x}}


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", record, {match!r}, None, stopOnError={stop})


def record(sg, logger, event, args):
    if event["id"] in FAIL_ON:
        raise RuntimeError("failing on purpose on event %d" % event["id"])
    # One write per line with O_APPEND: lines from several plugins never interleave.
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("{name} %d\\n" % event["id"]).encode())
    finally:
        os.close(fd)
'''

CONFIG = """\
[daemon]
pidFile = {folder}/daemon.pid
eventIdFile = {folder}/state.json
logMode = 1
logPath = {folder}/logs
logFile = shotgunEventDaemon.log
logging = 10
fetch_interval = 0.2
max_event_batch_size = {batch}
conn_retry_sleep = 1
max_conn_retries = 3
backlog_timeout = {backlog_timeout}
backlog_poll_interval = 0.3
{extra}

[shotgun]
timeout_secs = {request_timeout}
server = {url}
name = shotgun_events
key = {key}

[plugins]
paths = {plugins}
"""


def daemon_command() -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).parent / "shotgunEventDaemon"
    if script.exists():
        return [str(script)]
    found = shutil.which("shotgunEventDaemon")
    return [found] if found else [sys.executable, "-m", "shotgun_events.cli"]


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll until predicate() holds; fail with ``what`` after a generous bound."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class DaemonRig:
    """A folder with a config, plugins, a record file, and the daemon process."""

    def __init__(self, folder: Path, site: LocalSite) -> None:
        self.folder = folder
        self.site = site
        self.plugins = folder / "plugins"
        self.plugins.mkdir(exist_ok=True)
        self.record_file = folder / "record.txt"
        self.config = folder / "shotgunEventDaemon.conf"
        self.state_file = folder / "state.json"
        self.log_file = folder / "logs" / "shotgunEventDaemon.log"
        self.env = dict(os.environ, RECORD_FILE=str(self.record_file))
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_config()

    def write_config(
        self,
        *,
        batch: int = 500,
        backlog_timeout: float = 300,
        extra: str = "",
        request_timeout: float = 10,
        key: str = "local",
        plugins_extra: str = "",
    ) -> None:
        """Write the config; ``extra`` lines go in [daemon], ``plugins_extra`` in [plugins]."""
        self.config.write_text(
            CONFIG.format(
                folder=self.folder,
                url=self.site.url,
                plugins=self.plugins,
                batch=batch,
                backlog_timeout=backlog_timeout,
                extra=extra,
                request_timeout=request_timeout,
                key=key,
            )
            + (f"{plugins_extra}\n" if plugins_extra else "")
        )
        self.config.chmod(0o600)

    def add_recorder(self, name: str, match: object = None, stop_on_error: bool = True) -> Path:
        path = self.plugins / f"{name}.py"
        path.write_text(RECORDER.format(name=name, match=match, stop=stop_on_error))
        return path

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        assert self.proc is None or self.proc.poll() is not None
        with open(self.folder / "stderr.txt", "ab") as stderr:
            # The child keeps its own copy of the descriptor.
            self.proc = subprocess.Popen(
                [*daemon_command(), "-c", str(self.config), "foreground", *args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        return self.proc

    def wait_ready(self) -> None:
        """Wait until the daemon has made its first fetch (its log says so)."""
        wait_for(
            lambda: "plugin" in self.log_text() and self.state_file.exists(), what="daemon start"
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=60)

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_text(self) -> str:
        path = self.folder / "stderr.txt"
        return path.read_text(errors="replace") if path.exists() else ""

    def deliveries(self) -> list[tuple[str, int]]:
        if not self.record_file.exists():
            return []
        rows = []
        text = self.record_file.read_text()
        # A plugin may be appending right now: a last line without its newline is not whole.
        for line in text.splitlines()[: text.count("\n")]:
            name, event_id = line.split()
            rows.append((name, int(event_id)))
        return rows

    def ids_for(self, name: str) -> list[int]:
        return [i for n, i in self.deliveries() if n == name]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with LocalSite(scripts={"shotgun_events": "local"}) as running:
        yield running


@pytest.fixture
def rig(tmp_path: Path, site: LocalSite) -> Iterator[DaemonRig]:
    rig = DaemonRig(tmp_path, site)
    try:
        yield rig
    finally:
        rig.close()


# -- helpers for the service, systemd and email tests (appended; nothing above changed) --


def daemon_cli(
    rig: DaemonRig, *args: str, env: dict[str, str] | None = None, timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Run one ``shotgunEventDaemon -c CONF <args>`` command to completion, capturing output."""
    return subprocess.run(
        [*daemon_command(), "-c", str(rig.config), *args],
        env=rig.env if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pids_running_with(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``text`` (Linux /proc)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state = stat[stat.rfind(")") + 2 :].split()[:1]
        if needle in cmdline and state not in (["Z"], ["X"]):
            found.append(int(entry.name))
    return found


def kill_daemons_of(rig: DaemonRig) -> None:
    """SIGKILL every daemon still running with this rig's config (detached ones included)."""
    for pid in pids_running_with(str(rig.config)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pids_running_with(str(rig.config)), what="leftover daemons to die")


@pytest.fixture
def detached_rig(rig: DaemonRig) -> Iterator[DaemonRig]:
    """The rig, for tests that detach the daemon with ``start``: no daemon outlives the test."""
    try:
        yield rig
    finally:
        kill_daemons_of(rig)
