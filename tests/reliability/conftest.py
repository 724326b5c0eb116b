"""The reliability rig: the real daemon subprocess, a local site, recording plugins, faults.

Scale: the fast variant runs in every CI run; ``--soak`` (option declared in
``tests/conftest.py``) runs the full sizes of issue 6.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.site import LocalSite
from tests.integration.conftest import DaemonRig, daemon_command, wait_for

from .checker import Report, compare, site_event_ids
from .summary import SUMMARY

#: Secrets used by every rig; the suite fails if any file the daemon wrote contains one.
SCRIPT_NAME = "shotgun_events"
SCRIPT_KEY = "Rel-ScriptKey-5f2a9c-never-logged"
SMTP_PASSWORD = "Rel-SmtpPass-81d3e0-never-logged"
PROXY_PASSWORD = "Rel-ProxyPass-c44b17-never-logged"
SECRETS = (SCRIPT_KEY, SMTP_PASSWORD, PROXY_PASSWORD)

CONFIG = """\
[daemon]
pidFile = {folder}/daemon.pid
eventIdFile = {state}
logMode = 1
logPath = {folder}/logs
logFile = shotgunEventDaemon.log
logging = 10
fetch_interval = {fetch_interval}
max_event_batch_size = {batch}
conn_retry_sleep = {conn_retry_sleep}
max_conn_retries = {max_conn_retries}
backlog_timeout = {backlog_timeout}
backlog_poll_interval = {backlog_poll_interval}
dispatch = {dispatch}
stop_timeout = 10
{daemon_extra}

[shotgun]
timeout_secs = {request_timeout}
server = {url}
name = {script}
key = {key}
{shotgun_extra}

[plugins]
paths = {plugins}
watch = off
{sections}
"""

#: A recording plugin; optional slowness, a self-kill at one event, a hang at one event.
RECORDER = '''\
"""Records every event it gets as '<plugin> <id>' lines (reliability test plugin)."""
import os
import signal
import time

RECORD = os.environ["RECORD_FILE"]
SLEEP = {sleep!r}
KILL_AT = {kill_at!r}
KILL_MARK = {kill_mark!r}
HANG_AT = {hang_at!r}


def registerCallbacks(reg):
    reg.registerCallback("{script}", "plugin-key", record, {match!r}, None, stopOnError=True)


def record(sg, logger, event, args):
    if KILL_AT is not None and event["id"] >= KILL_AT and not os.path.exists(KILL_MARK):
        # Die like kill -9 inside the callback: the previous event's state write was the last.
        open(KILL_MARK, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    if HANG_AT is not None and event["id"] == HANG_AT:
        time.sleep(3600)
    # One write per line with O_APPEND: lines from several plugins never interleave.
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("{name} %d\\n" % event["id"]).encode())
    finally:
        os.close(fd)
    if SLEEP:
        time.sleep(SLEEP)
'''


@dataclass(frozen=True)
class Scale:
    """Sizes of the fast and the soak variant."""

    soak: bool
    catch_up_events: int
    kills: int
    outage_seconds: float
    gaps: int


FAST = Scale(soak=False, catch_up_events=3000, kills=6, outage_seconds=4.0, gaps=4_000)
SOAK = Scale(soak=True, catch_up_events=20_000, kills=20, outage_seconds=30.0, gaps=10_000)


class Rig(DaemonRig):
    """DaemonRig with every knob of the reliability tests and the suite's secrets."""

    def __init__(self, folder: Path, site: LocalSite | SiteProcess) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.state_path = folder / "state.json"
        super().__init__(folder, site)  # type: ignore[arg-type]
        self.state_file = self.state_path

    @property
    def url(self) -> str:
        return self.site.url

    def write_config(  # type: ignore[override]
        self,
        *,
        batch: int = 500,
        backlog_timeout: float = 300,
        backlog_poll_interval: float = 0.3,
        fetch_interval: float = 0.2,
        conn_retry_sleep: float = 1,
        max_conn_retries: int = 3,
        request_timeout: float = 10,
        dispatch: str = "auto",
        daemon_extra: str = "",
        shotgun_extra: str = "",
        sections: str = "",
        state: Path | None = None,
        key: str = SCRIPT_KEY,
    ) -> None:
        if state is not None:
            self.state_path = state
            self.state_file = state
        self.config.write_text(
            CONFIG.format(
                folder=self.folder,
                state=self.state_path,
                url=self.site.url,
                script=SCRIPT_NAME,
                key=key,
                plugins=self.plugins,
                batch=batch,
                backlog_timeout=backlog_timeout,
                backlog_poll_interval=backlog_poll_interval,
                fetch_interval=fetch_interval,
                conn_retry_sleep=conn_retry_sleep,
                max_conn_retries=max_conn_retries,
                request_timeout=request_timeout,
                dispatch=dispatch,
                daemon_extra=daemon_extra,
                shotgun_extra=shotgun_extra,
                sections=sections,
            )
        )
        self.config.chmod(0o600)

    def add_recorder(  # type: ignore[override]
        self,
        name: str,
        match: object = None,
        *,
        sleep: float = 0.0,
        kill_at: int | None = None,
        hang_at: int | None = None,
    ) -> Path:
        path = self.plugins / f"{name}.py"
        path.write_text(
            RECORDER.format(
                name=name,
                match=match,
                sleep=sleep,
                kill_at=kill_at,
                kill_mark=str(self.folder / f"killed-{name}"),
                hang_at=hang_at,
                script=SCRIPT_NAME,
            )
        )
        return path

    def run_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``shotgunEventDaemon -c CONF <args>`` to completion."""
        return subprocess.run(
            [*daemon_command(), "-c", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the daemon and count it."""
        self.kill()
        SUMMARY.kills += 1

    def site_ids(self, after: int, upto: int | None = None) -> list[int]:
        return site_event_ids(self.url, SCRIPT_NAME, SCRIPT_KEY, after, upto)

    def check(
        self,
        after: int,
        plugins: list[str],
        *,
        allowed_duplicates: int = 0,
        upto: int | None = None,
    ) -> Report:
        """Compare deliveries with the site's event log after ``after``."""
        # Faults still queued (the daemon caught up before reading them all) are for
        # the daemon's reads; the checker's own read of the log must not meet them.
        self.site.clear_faults()
        return compare(
            self.deliveries(),
            self.site_ids(after, upto),
            plugins,
            allowed_duplicates=allowed_duplicates,
        )

    def wait_delivered(self, plugins: list[str], last: int, timeout: float = 120) -> None:
        """Wait until every plugin recorded ``last`` (the daemon must stay up meanwhile)."""

        def done() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode}: {self.stderr_text()[-2000:]}"
                )
            got = {n for n, i in self.deliveries() if i == last}
            return all(p in got for p in plugins)

        wait_for(done, timeout=timeout, what=f"event {last} delivered to {plugins}")

    def wait_delivered_while_progressing(
        self, plugins: list[str], last: int, *, stall: float = 120.0
    ) -> None:
        """Wait until every plugin recorded ``last``, for as long as deliveries keep coming.

        Fails when the daemon exits or no delivery is recorded for ``stall`` seconds: how
        long a catch-up takes depends on the machine (fsync latency on a busy disk above
        all), whether it is still making progress does not.
        """
        count, since = -1, time.monotonic()
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode}: {self.stderr_text()[-2000:]}"
                )
            rows = self.deliveries()
            if all(p in {n for n, i in rows if i == last} for p in plugins):
                return
            if len(rows) != count:
                count, since = len(rows), time.monotonic()
            elif time.monotonic() - since > stall:
                raise AssertionError(
                    f"no delivery for {stall:.0f} s and event {last} not delivered to {plugins}"
                )
            time.sleep(0.05)

    def written_files(self) -> list[Path]:
        return [p for p in self.folder.rglob("*") if p.is_file() and p.suffix != ".py"]


class SiteProcess:
    """The local site as its own process (``shotgunEventDaemon site``) on a fixed port."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.db = folder / "site.sqlite3"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with open(self.folder / "site-out.txt", "ab") as out:
            self.proc = subprocess.Popen(
                [
                    *daemon_command(),
                    "site",
                    "--port",
                    str(self.port),
                    "--db",
                    str(self.db),
                    "--scripts",
                    f"{SCRIPT_NAME}:{SCRIPT_KEY}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._answers, timeout=30, what="site process to listen")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"site process exited with {self.proc.returncode}")
        try:
            self.control("newest_event_id")
        except OSError:
            return False
        return True

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def clear_faults(self) -> None:
        self.control("clear_faults")

    def control(self, action: str, **kwargs: Any) -> Any:
        request = urllib.request.Request(
            f"{self.url}/_local/{action}",
            data=json.dumps(kwargs).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())["result"]

    def append_events(self, n: int) -> tuple[int, int]:
        first, last = self.control("append_events", n=n)
        return int(first), int(last)

    def newest_event_id(self) -> int:
        return int(self.control("newest_event_id"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def leaked_secrets(folder: Path) -> list[str]:
    """Files under ``folder`` (not the config or plugins) that contain one of the secrets."""
    found = []
    for path in folder.rglob("*"):
        if not path.is_file() or path.suffix in (".py", ".conf") or path.name.endswith(".sqlite3"):
            continue
        data = path.read_bytes()
        found.extend(f"{path}: {s[:8]}..." for s in SECRETS if s.encode() in data)
    return found


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    """The fast sizes, or the soak sizes with --soak."""
    return SOAK if request.config.getoption("--soak", default=False) else FAST


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with LocalSite(scripts={SCRIPT_NAME: SCRIPT_KEY}) as running:
        yield running


@pytest.fixture
def rig(tmp_path: Path, site: LocalSite) -> Iterator[Rig]:
    rig = Rig(tmp_path, site)
    try:
        yield rig
    finally:
        rig.close()
    # Every test doubles as a secrets check: nothing the daemon wrote may hold one.
    leaks = leaked_secrets(tmp_path)
    assert not leaks, f"secrets found in daemon output: {leaks}"


# -- hooks ------------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test here ``reliability``; skip ``soak``-only tests without --soak."""
    here = Path(__file__).parent
    soak = config.getoption("--soak", default=False)
    skip = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)
            if item.get_closest_marker("soak") and not soak:
                item.add_marker(skip)


__all__ = ["Rig", "SiteProcess", "free_port", "os", "rss_kib", "sys"]
