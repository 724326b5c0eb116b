"""Real parts for the Celery tests: redis-server on a free 127.0.0.1 port, worker subprocesses.

Each test gets its own redis-server in a temporary folder (never the system
service) and a config whose [celery] section points at it; workers are the
real ``shotgunEventDaemon -c CONF worker`` command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.config.load import load_config
from shotgun_events.config.model import Config
from shotgun_events.delivery.celery.app import queue_name
from shotgun_events.delivery.celery.executor import CeleryExecutor
from shotgun_events.delivery.celery.hub import CeleryHub
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.events import Event
from shotgun_events.plugins.loader import Plugin, PluginLoader
from shotgun_events.site import LocalSite
from tests.integration.conftest import daemon_command, wait_for

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

RECORDER = '''\
"""Celery test plugin: records what it got, with the types it got, and can fail or hang."""
import os
import time

RECORD = os.environ.get("RECORD_FILE", os.devnull)
HANG = os.environ.get("HANG_FILE", "")
SLOW = float(os.environ.get("SLOW", "0"))
FAIL_ON = {{int(x) for x in os.environ.get("FAIL_ON", "").split(",") if x}}
VERSION = "{version}"


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", record, None, {{"tag": "{name}"}},
                         stopOnError={stop})


def _write(line):
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


def record(sg, logger, event, args):
    if event["id"] in FAIL_ON:
        raise RuntimeError("failing on purpose on event %d" % event["id"])
    if HANG and os.path.exists(HANG):
        _write("start %d %d" % (event["id"], os.getpid()))
        time.sleep(600)
    if SLOW:
        time.sleep(SLOW)
    created = event["created_at"]
    aware = created.tzinfo is not None and created.utcoffset() is not None
    _write("%s %d %s %s %s %s %s" % (
        args["tag"], event["id"], VERSION, type(created).__name__, aware,
        type(event["meta"]).__name__, event["entity"]["id"]))
'''

CONFIG = """\
[daemon]
pidFile = {folder}/daemon.pid
eventIdFile = {folder}/state.json
logMode = 1
logPath = {folder}/logs
logFile = shotgunEventDaemon.log
logging = 20
dispatch = celery

[shotgun]
server = {url}
name = shotgun_events
key = local

[plugins]
paths = {plugins}
poll_interval = 0.2

[celery]
broker_url = redis://127.0.0.1:{port}/0
queue_prefix = t{port}
task_timeout = {task_timeout}
task_batch = 5
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1, restartable on the same port and folder."""

    def __init__(self, folder: Path, *, persistent: bool = True) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        args += ["--save", "", "--daemonize", "no", "--protected-mode", "yes"]
        args += (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.folder
        )
        wait_for(self._answers, 20, "redis-server to answer")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if self.persistent else signal.SIGKILL)
            self.proc.wait(20)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if not os.path.exists(REDIS):
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing; .ci/run should have installed it")
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


class CeleryRig:
    """A config, plugins, worker processes and an in-process daemon side (hub + executors)."""

    def __init__(self, folder: Path, site: LocalSite, redis: RedisServer) -> None:
        self.folder = folder
        self.site = site
        self.redis = redis
        self.plugins = folder / "plugins"
        self.plugins.mkdir(exist_ok=True)
        self.record_file = folder / "record.txt"
        self.config_path = folder / "shotgunEventDaemon.conf"
        self.env = dict(os.environ, RECORD_FILE=str(self.record_file))
        self.workers: list[subprocess.Popen[bytes]] = []
        self.hub: CeleryHub | None = None
        self.done: list[tuple[str, int, Outcome]] = []
        self._lock = threading.Lock()
        self.write_config()

    def write_config(self, task_timeout: float = 300) -> None:
        self.config_path.write_text(
            CONFIG.format(
                folder=self.folder,
                url=self.site.url,
                plugins=self.plugins,
                port=self.redis.port,
                task_timeout=task_timeout,
            )
        )
        self.config_path.chmod(0o600)

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    def add_plugin(self, name: str, *, version: str = "v1", stop: bool = False) -> Path:
        path = self.plugins / f"{name}.py"
        path.write_text(RECORDER.format(name=name, version=version, stop=stop))
        return path

    def start_worker(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with open(self.folder / f"worker{len(self.workers)}.err", "wb") as err:
            proc = subprocess.Popen(
                [*daemon_command(), "-c", str(self.config_path), "worker", *args],
                env={**self.env, **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        self.workers.append(proc)
        return proc

    def wait_workers(self, count: int = 1) -> None:
        hub = self.daemon_hub()
        wait_for(lambda: len(hub.workers()) >= count, 60, f"{count} worker beacon(s)")

    def daemon_hub(self) -> CeleryHub:
        if self.hub is None:
            self.hub = CeleryHub(self.config.celery)
            self.hub.start()
        return self.hub

    def load_plugin(self, name: str) -> Plugin:
        loader = PluginLoader(paths=[self.plugins])
        loader.scan()
        plugin = next(p for p in loader.plugins if p.name == name)
        plugin._loader = loader  # type: ignore[attr-defined]  # keep the module alive
        return plugin

    def executor(self, plugin: Plugin, **kw: Any) -> CeleryExecutor:
        config = self.config

        def on_done(event: Event, outcome: Outcome) -> None:
            with self._lock:
                self.done.append((plugin.name, int(event["id"]), outcome))

        kw.setdefault("hub", self.daemon_hub())
        kw.setdefault("task_batch", config.celery.task_batch)
        kw.setdefault("task_timeout", config.celery.task_timeout)
        return CeleryExecutor(
            plugin,
            queue=queue_name(config.celery, plugin.name),
            on_done=on_done,
            order_key=lambda e: (e.get("entity") or {}).get("id"),
            **kw,
        )

    def records(self) -> list[list[str]]:
        if not self.record_file.exists():
            return []
        return [line.split() for line in self.record_file.read_text().splitlines()]

    def done_ids(self, name: str) -> list[int]:
        with self._lock:
            return [i for n, i, _ in self.done if n == name]

    def close(self) -> None:
        if self.hub is not None:
            self.hub.close()
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with LocalSite() as running:
        yield running


@pytest.fixture
def celery_rig(tmp_path: Path, site: LocalSite, redis_server: RedisServer) -> Iterator[CeleryRig]:
    rig = CeleryRig(tmp_path, site, redis_server)
    yield rig
    rig.close()


class DaemonProcess:
    """``shotgunEventDaemon -c CONF foreground`` for a CeleryRig's config."""

    def __init__(self, rig: CeleryRig) -> None:
        self.rig = rig
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = rig.folder / "logs" / "shotgunEventDaemon.log"

    def start(self) -> None:
        with open(self.rig.folder / "daemon.err", "ab") as err:
            self.proc = subprocess.Popen(
                [*daemon_command(), "-c", str(self.rig.config_path), "foreground"],
                env=self.rig.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        # Ready once the first scan saved the state file and the control socket answers.
        wait_for(lambda: (self.rig.folder / "state.json").exists(), 60, "daemon ready")
        wait_for(lambda: self.cli("status", "--json").returncode == 0, 60, "control channel")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*daemon_command(), "-c", str(self.rig.config_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.rig.env,
        )

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def plugin(self, name: str) -> dict[str, Any]:
        return next(p for p in self.status()["plugins"] if p["name"] == name)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture
def daemon(celery_rig: CeleryRig) -> Iterator[DaemonProcess]:
    running = DaemonProcess(celery_rig)
    yield running
    running.close()
