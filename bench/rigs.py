"""The benchmarks' rigs: the local site as a process, the daemon in-process and as a process.

The local site runs as its own process (``shotgunEventDaemon site``), as a
real site would: the daemon under test then gets a core of its own and does
not share the GIL with the server. The daemon is built in-process through
``Daemon.build`` (the wiring ``shotgunEventDaemon foreground`` uses) when a
benchmark drives it step by step, and run as the real CLI when the figure is
about a process (RSS, connections, idle reads).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from common import rss_mb

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
        """Start watching plugin files (as ``Daemon.run`` does), load state and plugins."""
        if self.daemon.watcher is not None:
            self.daemon.watcher.start()
        if not self.engine.start():
            raise RuntimeError("the engine did not start")

    def run_until(self, names: Iterable[str], last: int) -> float:
        """Run the engine's real loop until every named plugin handled ``last``.

        Returns the seconds from the loop's start to the last of those
        plugins' last event (``start()`` must have run). The loop is stopped
        afterwards.
        """
        wanted = list(names)
        start = time.perf_counter()
        loop = threading.Thread(target=self.engine.run, name="bench-engine")
        loop.start()
        try:
            while True:
                stats = self.plugin_stats()
                if all(stats[name]["last_id"] >= last for name in wanted):
                    return float(max(stats[name]["last_at"] for name in wanted)) - start
                if not loop.is_alive():
                    raise RuntimeError("the engine stopped before the plugins were done")
                time.sleep(0.005)
        finally:
            self.flag.stop_requested.set()
            loop.join()

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
