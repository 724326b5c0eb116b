"""The system under test, assembled in the shipped example config's layout under a temp root.

``<root>/etc/shotgunEventDaemon.conf`` is ``conf/shotgunEventDaemon.conf``
itself with its paths moved under the root (``run/``, ``var/lib/``,
``var/log/``, ``usr/local/shotgun/plugins``) and its commented ``[http]``,
``[webhooks]`` and ``[celery]`` sections switched on, credentials read from
the environment as the file says. Every other key keeps its shipped
default but one: ``task_timeout`` is 30 s instead of 300 s, because a worker
kill holds its keys for that long and a three-minute run cannot wait five.
The parts are real processes: ``shotgunEventDaemon site`` (small latency,
signed webhooks to the daemon), a password-protected ``redis-server`` with
``appendonly yes``, two ``shotgunEventDaemon worker`` processes and
``shotgunEventDaemon foreground``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import redis

from shotgun_events.config.celery_section import CeleryConfig
from shotgun_events.config.load import load_config
from tests.integration.conftest import daemon_command, wait_for

from .plugins import PLUGINS, write_plugins
from .processes import Lives, Managed, Supervisor

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "conf" / "shotgunEventDaemon.conf"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
SCRIPT = "shotgun_events"
KEY = "Chaos-ScriptKey-3b9e71"
WEBHOOK_SECRET = "Chaos-Webhook-5c1d88"
REDIS_PASSWORD = "Chaos-Redis-a77f02"
TASK_TIMEOUT = 30
WORKERS = 2
WORKER_THREADS = 2
#: The shipped [celery] task_batch default (the most events one task carries).
TASK_BATCH = 20


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _edit(text: str, line: str, new: str) -> str:
    """Replace the one line of the shipped file equal to ``line``."""
    lines = text.split("\n")
    hits = [i for i, current in enumerate(lines) if current == line]
    assert len(hits) == 1, f"{SHIPPED} changed: expected one line {line!r}, found {len(hits)}"
    lines[hits[0]] = new
    return "\n".join(lines)


def shipped_config(root: Path, *, http: int, webhook: int, redis: int) -> str:
    """The shipped example config, moved under ``root`` with [http], [webhooks], [celery] on."""
    text = SHIPPED.read_text()
    for key, path in (
        ("pidFile", "/run/shotgunEventDaemon/shotgunEventDaemon.pid"),
        ("eventIdFile", "/var/lib/shotgunEventDaemon/state.json"),
        ("logPath", "/var/log/shotgunEventDaemon"),
        ("paths", "/usr/local/shotgun/plugins"),
    ):
        text = _edit(text, f"{key} = {path}", f"{key} = {root}{path}")
    for line, new in (
        ("#[http]", "[http]"),
        ("#listen = 127.0.0.1:9464", f"listen = 127.0.0.1:{http}"),
        ("#[webhooks]", "[webhooks]"),
        ("#listen = 127.0.0.1:8090", f"listen = 127.0.0.1:{webhook}"),
        ("#secret = %(SG_ED_WEBHOOK_SECRET)s", "secret = %(SG_ED_WEBHOOK_SECRET)s"),
        ("#path = /", "path = /sg-hook"),
        ("#[celery]", "[celery]"),
        (
            "#broker_url = redis://:%(SG_ED_REDIS_PASSWORD)s@127.0.0.1:6379/0",
            f"broker_url = redis://:%(SG_ED_REDIS_PASSWORD)s@127.0.0.1:{redis}/0",
        ),
        ("#task_timeout = 300", f"task_timeout = {TASK_TIMEOUT}"),
    ):
        text = _edit(text, line, new)
    sections = "\n".join(spec.section for spec in PLUGINS if spec.section)
    return f"{text.rstrip()}\n\n{sections}"


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    """GET a URL: (status, body), (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class System:
    """Site, Redis, workers and daemon of one chaos run; ``close()`` kills all of them."""

    def __init__(self, root: Path, *, latency_ms: float, webhook_batch: bool) -> None:
        """Lay out the folders and choose ports; nothing starts yet."""
        self.root = root
        self.config = root / "etc" / "shotgunEventDaemon.conf"
        self.plugins = root / "usr" / "local" / "shotgun" / "plugins"
        self.logs = root / "var" / "log" / "shotgunEventDaemon"
        self.records = root / "records"
        for folder in (
            self.config.parent,
            self.plugins,
            root / "run" / "shotgunEventDaemon",
            root / "var" / "lib" / "shotgunEventDaemon",
            self.logs,
            self.records,
            root / "site",
            root / "redis",
            root / "out",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in ("site", "http", "webhook", "redis")}
        self.latency_ms = latency_ms
        self.webhook_batch = webhook_batch
        self.versions = {spec.name: 1 for spec in PLUGINS}
        self.env = dict(
            os.environ,
            SG_ED_SITE_URL=self.site_url,
            SG_ED_SCRIPT_NAME=SCRIPT,
            SG_ED_API_KEY=KEY,
            SG_ED_WEBHOOK_SECRET=WEBHOOK_SECRET,
            SG_ED_REDIS_PASSWORD=REDIS_PASSWORD,
            CHAOS_RECORDS=str(self.records),
        )
        self.lives = Lives()
        out = root / "out"
        self.site = Managed("site", self.lives, self._site_command, output=out / "site.txt")
        self.redis = Managed(
            "redis", self.lives, self._redis_command, output=out / "redis.txt", cwd=root / "redis"
        )
        self.workers = [
            Managed(
                f"worker{i}",
                self.lives,
                self._worker_command,
                env=self.env,
                output=out / f"worker{i}.txt",
            )
            for i in range(WORKERS)
        ]
        self.daemon = Managed(
            "daemon", self.lives, self._daemon_command, env=self.env, output=out / "daemon.txt"
        )
        self.supervisor = Supervisor([self.site, self.redis, *self.workers, self.daemon])
        self.rss: dict[str, int] = {}

    # -- commands ----------------------------------------------------------------

    @property
    def site_url(self) -> str:
        """The site's base URL."""
        return f"http://127.0.0.1:{self.ports['site']}"

    @property
    def http_url(self) -> str:
        """The daemon's [http] base URL."""
        return f"http://127.0.0.1:{self.ports['http']}"

    def _site_command(self) -> list[str]:
        command = [*daemon_command(), "site", "--port", str(self.ports["site"])]
        command += ["--db", str(self.root / "site" / "site.sqlite3")]
        command += ["--scripts", f"{SCRIPT}:{KEY}", "--latency", str(self.latency_ms)]
        command += ["--webhook", f"http://127.0.0.1:{self.ports['webhook']}/sg-hook"]
        command += ["--webhook-secret", WEBHOOK_SECRET]
        return command + (["--webhook-batch"] if self.webhook_batch else [])

    def _redis_command(self) -> list[str]:
        # As the README asks of a production Redis: a password and appendonly yes.
        return [
            REDIS,
            *("--port", str(self.ports["redis"]), "--bind", "127.0.0.1"),
            *("--dir", str(self.root / "redis"), "--requirepass", REDIS_PASSWORD),
            *("--appendonly", "yes", "--save", "", "--daemonize", "no"),
        ]

    def _worker_command(self) -> list[str]:
        return [
            *daemon_command(),
            *("-c", str(self.config), "worker", "--concurrency", str(WORKER_THREADS)),
        ]

    def _daemon_command(self) -> list[str]:
        return [*daemon_command(), "-c", str(self.config), "foreground"]

    # -- life --------------------------------------------------------------------

    def start(self) -> None:
        """Start everything and wait until the daemon is ready and both workers are seen."""
        self.site.start()
        wait_for(self._site_answers, 60, "the local site")
        self.redis.start()
        wait_for(self.redis_answers, 30, "redis-server")
        write_plugins(self.plugins, self.versions.__getitem__)
        self.config.write_text(
            shipped_config(
                self.root,
                http=self.ports["http"],
                webhook=self.ports["webhook"],
                redis=self.ports["redis"],
            )
        )
        self.config.chmod(0o600)
        for worker in self.workers:
            worker.start()
        self.daemon.start()
        wait_for(self.ready, 90, "the daemon's /readyz")
        wait_for(lambda: len(self.worker_pids_seen()) >= WORKERS, 90, "both workers' beacons")
        self.supervisor.start()

    def close(self) -> None:
        """Kill every process of the run (cleanup; safe after any failure)."""
        self.supervisor.stop()
        for process in (self.daemon, *self.workers, self.redis, self.site):
            process.close()

    def start_redis(self) -> None:
        """Start redis-server again on its port and folder (its AOF brings the data back)."""
        with self.redis.lock:
            if not self.redis.alive():
                self.redis.start()
        wait_for(self.redis_answers, 30, "redis-server after a restart")

    def ensure_started(self, process: Managed) -> None:
        """Start a process unless the supervisor already did."""
        with process.lock:
            if not process.alive():
                process.start()

    # -- probes ------------------------------------------------------------------

    def _site_answers(self) -> bool:
        if not self.site.alive():
            raise AssertionError(f"the site exited: {self.site.tail()}")
        try:
            self.control("newest_event_id")
        except OSError:
            return False
        return True

    def redis_answers(self) -> bool:
        """Whether redis-server answers PING (after AUTH) and has loaded its data."""
        try:
            with socket.create_connection(("127.0.0.1", self.ports["redis"]), timeout=1) as s:
                s.sendall(f"AUTH {REDIS_PASSWORD}\r\nPING\r\n".encode())
                time.sleep(0.05)
                return b"+PONG" in s.recv(256)
        except OSError:
            return False

    def ready(self) -> bool:
        """Whether the daemon answers /readyz with 200 (raises if it exited)."""
        if not self.daemon.alive():
            raise AssertionError(f"the daemon exited: {self.daemon.tail()}")
        return http_get(f"{self.http_url}/readyz", timeout=5)[0] == 200

    def control(self, action: str, **kwargs: Any) -> Any:
        """Call one of the site's /_local/ controls."""
        request = urllib.request.Request(
            f"{self.site_url}/_local/{action}",
            data=json.dumps(kwargs).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())["result"]

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``shotgunEventDaemon -c CONF <args>`` to completion."""
        return subprocess.run(
            [*daemon_command(), "-c", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self) -> dict[str, Any]:
        """``status --json`` of the running daemon."""
        result = self.cli("status", "--json")
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def celery(self) -> CeleryConfig:
        """The config's [celery] section, as the daemon and the workers read it."""
        return load_config(self.config, self.env).celery

    def redis_client(self) -> redis.Redis:
        """A client of the config's broker (the run's redis-server)."""
        return redis.Redis.from_url(self.celery().broker_url, socket_timeout=5)

    def worker_pids_seen(self) -> set[int]:
        """Pids of the live worker processes named in the Celery plugin's ``workers``."""
        try:
            plugin = next(p for p in self.status()["plugins"] if p["name"] == "celery_rec")
        except (ValueError, StopIteration, KeyError, subprocess.TimeoutExpired):
            return set()
        live = {w.pid for w in self.workers if w.alive()}
        named = {int(name.rsplit(".", 1)[1]) for name in plugin.get("workers") or []}
        return live & named

    def edit_plugin(self, name: str) -> int:
        """Save a new version of a plugin (as an editor would); returns the version."""
        self.versions[name] += 1
        spec = next(s for s in PLUGINS if s.name == name)
        (self.plugins / f"{name}.py").write_text(spec.source(self.versions[name]))
        return self.versions[name]

    def log_files(self) -> list[Path]:
        """Every log file the daemon and the workers wrote."""
        return sorted(p for p in self.logs.rglob("*") if p.is_file())

    def worker_logs(self) -> list[Path]:
        """The log files of the Celery workers (one per worker life)."""
        return sorted((self.logs / "workers").glob("*.log"))
