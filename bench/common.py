"""Shared pieces of the benchmark suite: sizes, result rows, the site process, daemons.

Every benchmark module returns a list of ``Row``; ``run.py`` prints them as one
table with the target next to each figure. Nothing here asserts on time.

The local site runs as its own process (``shotgunEventDaemon site``), as a
real site would: the daemon under test then gets a core of its own and does
not share the GIL with the server. The daemon is built in-process through
``Daemon.build`` (the wiring ``shotgunEventDaemon foreground`` uses) when a
benchmark drives it step by step, and run as the real CLI when the figure is
about a process (RSS, connections, idle reads).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from shotgun_events.app import Daemon, Options
from shotgun_events.config.load import load_config
from shotgun_events.service.sdnotify import Notifier, NullReporter
from shotgun_events.service.signals import StopFlag
from shotgun_events.state.store import read_positions

#: Credentials every benchmark site accepts: the daemon's, then three plugin scripts.
SCRIPTS: dict[str, str] = {
    "shotgun_events": "local",
    "bench_a": "key-a",
    "bench_b": "key-b",
    "bench_c": "key-c",
}
ENTITY = {"type": "Shot", "id": 1, "name": "SQ010_0010"}
PROJECT = {"type": "Project", "id": 1, "name": "Demo"}
USER = {"type": "HumanUser", "id": 1, "name": "Mara Okafor"}


# -- sizes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """How big each benchmark is; ``full`` is what the issue asks for."""

    name: str
    runs: int
    catchup_events: int
    dispatch_miss_events: int
    dispatch_call_events: int
    dispatch_mixed_events: int
    isolation_events: int
    load_events: int
    idle_window: float
    idle_fetch_interval: float
    state_records: int
    state_slow_records: int
    state_catchup_events: int
    memory_small: int
    memory_large: int
    reloads: int
    latency_window: float


PROFILES: dict[str, Profile] = {
    "full": Profile(
        name="full",
        runs=3,
        catchup_events=100_000,
        dispatch_miss_events=1_000_000,
        dispatch_call_events=100_000,
        dispatch_mixed_events=1_000_000,
        isolation_events=10_000,
        load_events=5_000,
        idle_window=30.0,
        idle_fetch_interval=5.0,
        state_records=20_000,
        state_slow_records=200,
        state_catchup_events=20_000,
        memory_small=100_000,
        memory_large=1_000_000,
        reloads=1_000,
        latency_window=60.0,
    ),
    "quick": Profile(
        name="quick",
        runs=1,
        catchup_events=10_000,
        dispatch_miss_events=20_000,
        dispatch_call_events=5_000,
        dispatch_mixed_events=20_000,
        isolation_events=1_000,
        load_events=2_000,
        idle_window=4.0,
        idle_fetch_interval=1.0,
        state_records=2_000,
        state_slow_records=30,
        state_catchup_events=5_000,
        memory_small=3_000,
        memory_large=15_000,
        reloads=100,
        latency_window=3.0,
    ),
    # For the smoke test: every row, as small as it gets.
    "tiny": Profile(
        name="tiny",
        runs=1,
        catchup_events=1_200,
        dispatch_miss_events=300,
        dispatch_call_events=100,
        dispatch_mixed_events=300,
        isolation_events=120,
        load_events=600,
        idle_window=1.5,
        idle_fetch_interval=0.5,
        state_records=100,
        state_slow_records=5,
        state_catchup_events=600,
        memory_small=600,
        memory_large=1_200,
        reloads=10,
        latency_window=1.5,
    ),
}


# -- results -------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure of the table: what, how much, and the target it is held against."""

    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    #: True/False when the figure has a target, None when it is only informative.
    met: bool | None = None
    note: str = ""
    runs: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "section": self.section,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
            "note": self.note,
            "runs": self.runs,
        }


def at_most(value: float | None, bound: float) -> bool | None:
    """``value <= bound``, or None when nothing was measured."""
    return None if value is None else value <= bound


def at_least(value: float | None, bound: float) -> bool | None:
    """``value >= bound``, or None when nothing was measured."""
    return None if value is None else value >= bound


def median(values: Iterable[float]) -> float:
    """The median of the runs (the figure quoted in the table)."""
    return float(statistics.median(list(values)))


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    """Render rows as a Markdown table (readable in a terminal, pasteable in docs)."""
    header = ["#", "benchmark", "measure", "value", "unit", "target", "met", "note"]
    lines = [header]
    for row in rows:
        verdict = {True: "yes", False: "NO", None: ""}[row.met]
        number, _, section = row.section.partition(" ")
        lines.append(
            [number, section, row.name, _fmt(row.value), row.unit, row.target, verdict, row.note]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


# -- the site as a process -----------------------------------------------------------------


def daemon_command() -> list[str]:
    """The installed console script next to this Python, else the module."""
    script = Path(sys.executable).parent / "shotgunEventDaemon"
    if script.exists():
        return [str(script)]
    found = shutil.which("shotgunEventDaemon")
    return [found] if found else [sys.executable, "-m", "shotgun_events.cli"]


class SiteProcess:
    """``shotgunEventDaemon site`` in a child process, driven through its /_local controls."""

    def __init__(self, folder: Path, *, activity: float = 0.0) -> None:
        self.folder = folder
        self._activity = activity
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> SiteProcess:
        scripts = ",".join(f"{name}:{key}" for name, key in SCRIPTS.items())
        command = [*daemon_command(), "site", "--db", str(self.folder / "site.sqlite3")]
        command += ["--scripts", scripts]
        if self._activity:
            command += ["--activity", str(self._activity)]
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if "serving at " not in line:
            self.close()
            raise RuntimeError(f"the local site did not start: {line!r}")
        self.url = line.split("serving at ", 1)[1].split()[0]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The site's process id."""
        assert self._proc is not None
        return self._proc.pid

    def close(self) -> None:
        """Stop the site (SIGTERM, then wait)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def control(self, action: str, **kwargs: Any) -> Any:
        """Call one /_local/<action> control and return its result."""
        request = urllib.request.Request(
            f"{self.url}/_local/{action}",
            data=json.dumps(kwargs).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=900) as reply:
            return json.loads(reply.read())["result"]

    def append(self, n: int, **fields: Any) -> tuple[int, int]:
        """Append ``n`` synthetic Shot status changes; returns (first id, last id)."""
        first, last = (0, 0)
        fields = {"entity": ENTITY, "project": PROJECT, "user": USER, **fields}
        # Chunks keep each control call (one transaction) well under any timeout.
        remaining = n
        while remaining > 0:
            chunk = min(remaining, 500_000)
            a, b = self.control("append_events", n=chunk, **fields)
            first = first or a
            last = b
            remaining -= chunk
        return first, last

    def newest(self) -> int:
        """The highest visible event id."""
        return int(self.control("newest_event_id"))

    def reset_counts(self) -> None:
        """Zero the call and connection counters."""
        self.control("reset_counts")

    def counts(self) -> tuple[dict[str, int], int]:
        """(API calls by method, TCP connections accepted) since the last reset.

        Each control call opens a connection of its own: the one asking for the
        count is taken off, and the calls are read after it (they count API calls only).
        """
        connections = int(self.control("connection_count")) - 1
        return dict(self.control("call_counts")), connections


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder (under $BENCH_DIR when set), removed afterwards."""
    folder = tempfile.mkdtemp(prefix=f"bench_{prefix}_", dir=os.environ.get("BENCH_DIR"))
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- plugins and configs -------------------------------------------------------------------

PLUGIN = '''\
"""Benchmark plugin {name}: one callback for every event; keeps a few counters."""
import time

SLEEP = {sleep!r}
USE_SG = {use_sg!r}
STATS = {{"calls": 0, "last_id": 0, "out_of_order": 0, "last_at": 0.0}}
STARTS = []


def registerCallbacks(reg):
    reg.registerCallback({script!r}, {key!r}, on_event, None, None)


def on_event(sg, logger, event, args):
    started = time.time()
    if {record_starts!r}:
        STARTS.append((event["id"], started))
    if event["id"] <= STATS["last_id"]:
        STATS["out_of_order"] += 1
    if USE_SG and not STATS["calls"]:
        sg.find_one("Project", [], ["id"])
    if SLEEP:
        time.sleep(SLEEP)
    STATS["last_id"] = event["id"]
    STATS["calls"] += 1
    STATS["last_at"] = time.perf_counter()
'''

CONFIG = """\
[daemon]
pidFile = {folder}/daemon.pid
eventIdFile = {folder}/state.json
logMode = 1
logPath = {folder}/logs
logFile = shotgunEventDaemon.log
logging = 20
fetch_interval = {fetch_interval}
max_event_batch_size = 500
conn_retry_sleep = 1
max_conn_retries = 3
dispatch = {dispatch}
{extra}

[shotgun]
server = {url}
name = shotgun_events
key = local

[plugins]
paths = {plugins}
watch = {watch}
"""


@dataclass(frozen=True)
class PluginSpec:
    """What one generated plugin does."""

    name: str
    sleep: float = 0.0
    script: tuple[str, str] = ("shotgun_events", "local")
    use_sg: bool = False
    record_starts: bool = False


def write_plugins(folder: Path, specs: Sequence[PluginSpec]) -> Path:
    """Write one plugin file per spec into ``folder`` (created); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        (folder / f"{spec.name}.py").write_text(
            PLUGIN.format(
                name=spec.name,
                sleep=spec.sleep,
                script=spec.script[0],
                key=spec.script[1],
                use_sg=spec.use_sg,
                record_starts=spec.record_starts,
            )
        )
    return folder


def trivial_plugins(count: int) -> list[PluginSpec]:
    """``count`` plugins with trivial callbacks on the daemon's own credentials."""
    return [PluginSpec(f"plugin{n:02d}") for n in range(count)]


def write_config(
    folder: Path,
    *,
    url: str,
    plugins: Path,
    dispatch: str = "parallel",
    fetch_interval: float = 5.0,
    extra: str = "",
    watch: str = "off",
) -> Path:
    """Write a daemon config whose files all live in ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shotgunEventDaemon.conf"
    path.write_text(
        CONFIG.format(
            folder=folder,
            url=url,
            plugins=plugins,
            dispatch=dispatch,
            fetch_interval=fetch_interval,
            extra=extra,
            watch=watch,
        )
    )
    path.chmod(0o600)
    return path


# -- the daemon in-process -----------------------------------------------------------------


class InProcessDaemon:
    """The daemon's real parts, wired by ``Daemon.build``, driven step by step."""

    def __init__(self, config_path: Path, *, from_id: int | None = None) -> None:
        self.config = load_config(config_path)
        self.flag = StopFlag()
        self.daemon = Daemon.build(
            self.config,
            Options(foreground=False, from_id=from_id),
            flag=self.flag,
            reporter=NullReporter(),
            systemd=Notifier.from_environ(),
        )
        self.engine = self.daemon.engine

    def start(self) -> None:
        """Load state and plugins (engine.start)."""
        if not self.engine.start():
            raise RuntimeError("the engine did not start")

    def catch_up(self, timeout: float = 600.0) -> None:
        """Read until a short batch comes back, then wait until every plugin handled it."""
        while self.engine.run_once():
            pass
        if not self.engine.drain(timeout):
            raise RuntimeError("plugins did not drain in time")

    def plugin_stats(self) -> dict[str, dict[str, Any]]:
        """Each plugin's STATS dict (the generated plugins keep counters there)."""
        return {
            plugin.name: plugin.callbacks[0].func.__globals__["STATS"]
            for plugin in self.daemon.loader.plugins
            if plugin.callbacks
        }

    def plugin_globals(self, name: str) -> dict[str, Any]:
        """The module globals of one loaded plugin."""
        for plugin in self.daemon.loader.plugins:
            if plugin.name == name and plugin.callbacks:
                return plugin.callbacks[0].func.__globals__
        raise KeyError(name)

    def close(self) -> None:
        """Stop the workers, persist state, close connections and logs."""
        self.flag.stop_requested.set()
        self.engine.close()
        self.daemon.close()


# -- the daemon as a process ---------------------------------------------------------------


class DaemonProcess:
    """``shotgunEventDaemon -c CONF foreground`` in a child process."""

    def __init__(self, config_path: Path, *, from_id: int | None = None) -> None:
        self.config_path = config_path
        self.config = load_config(config_path)
        command = [*daemon_command(), "-c", str(config_path), "foreground"]
        if from_id is not None:
            command += ["--from-id", str(from_id)]
        self._stderr = open(config_path.parent / "stderr.txt", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._stderr)

    def positions(self) -> dict[str, int]:
        """Every plugin's saved last id (read from the state file while it runs)."""
        try:
            saved = read_positions(self.config.event_id_file)
        except Exception:  # caught mid-compaction: the next poll reads it whole
            return {}
        return {key[1]: cursor.last_id for key, cursor in (saved or {}).items()}

    def wait_positions(self, names: Iterable[str], last_id: int, timeout: float = 900.0) -> float:
        """Wait until every named plugin saved ``last_id``; returns the seconds waited."""
        wanted = set(names)
        start = time.monotonic()
        while True:
            positions = self.positions()
            if all(positions.get(name, -1) >= last_id for name in wanted):
                return time.monotonic() - start
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.proc.returncode}")
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"plugins did not reach event {last_id}: {positions}")
            time.sleep(0.1)

    def rss_mb(self) -> float:
        """The daemon's resident set size, MiB."""
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM, then wait for a clean exit."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def rss_mb(pid: int | None = None) -> float:
    """VmRSS of a process (this one by default), MiB, from /proc."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes (perf_counter)."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
