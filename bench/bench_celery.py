"""Section 11: plugin callbacks on Celery workers (issue 15), loopback Redis, real worker processes.

Figures: strict-order catch-up through Celery (trivial plugin, one ordering
key); a 50 ms site call per event over 100 entities on 2 workers x 4 threads
against the local executor at concurrency 1 (the same callback in this
process); added latency from hand-off to callback start with one idle
worker; order violations per key and lost events over those runs.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from common import Profile, Row, at_least, at_most  # noqa: E402
from tests.celery.conftest import CONFIG, RedisServer  # noqa: E402
from tests.integration.conftest import daemon_command, wait_for  # noqa: E402

from shotgun_events.config.load import load_config  # noqa: E402
from shotgun_events.delivery.celery.app import queue_name  # noqa: E402
from shotgun_events.delivery.celery.executor import CeleryExecutor  # noqa: E402
from shotgun_events.delivery.celery.hub import CeleryHub  # noqa: E402
from shotgun_events.delivery.dispatch import Outcome  # noqa: E402
from shotgun_events.plugins.loader import PluginLoader  # noqa: E402
from shotgun_events.site import LocalSite  # noqa: E402

SECTION = "11 celery"
PLUGIN = """\
import os, time
RECORD = os.environ.get("RECORD_FILE", os.devnull)
CALL = os.environ.get("SITE_CALL") == "1"

def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", cb, None, None)

def cb(sg, logger, event, args):
    start = time.time()
    if CALL:
        sg.find_one("Project", [["id", "is", 1]])
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, ("%d %s %.6f\\n" % (event["id"], event["entity"]["id"], start)).encode())
    os.close(fd)
"""


def _event(event_id: int, entity: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "event_type": "Shotgun_Shot_Change",
        "attribute_name": "sg_status_list",
        "meta": {"type": "attribute_change"},
        "entity": {"type": "Shot", "id": entity},
        "user": None,
        "project": {"type": "Project", "id": 1},
        "session_uuid": None,
        "created_at": datetime.now(UTC),
    }


class _Rig:
    def __init__(self, folder: Path, site: LocalSite, batch: int) -> None:
        self.folder = folder
        self.redis = RedisServer(folder / "redis", persistent=False)
        self.redis.start()
        plugins = folder / "plugins"
        plugins.mkdir()
        (plugins / "bench.py").write_text(PLUGIN)
        self.record = folder / "record.txt"
        conf = folder / "bench.conf"
        conf.write_text(
            CONFIG.format(
                folder=folder, url=site.url, plugins=plugins, port=self.redis.port, task_timeout=120
            ).replace("task_batch = 5", f"task_batch = {batch}")
        )
        self.conf = conf
        self.config = load_config(conf)
        self.loader = PluginLoader(paths=[plugins])
        self.loader.scan()
        self.plugin = self.loader.plugins[0]
        self.hub = CeleryHub(self.config.celery)
        self.hub.start()
        self.workers: list[subprocess.Popen[bytes]] = []

    def worker(self, threads: int, env: dict[str, str]) -> None:
        self.workers.append(
            subprocess.Popen(
                [*daemon_command(), "-c", str(self.conf), "worker", f"--concurrency={threads}"],
                env={**os.environ, "RECORD_FILE": str(self.record), **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        count = len(self.workers)
        wait_for(lambda: len(self.hub.workers()) >= count, 60, "worker beacons")

    def executor(self, done: list[int]) -> CeleryExecutor:
        return CeleryExecutor(
            self.plugin,
            hub=self.hub,
            queue=queue_name(self.config.celery, "bench"),
            on_done=lambda e, o: done.append(int(e["id"])) if o is Outcome.DONE else None,
            order_key=lambda e: e["entity"]["id"],
            task_batch=self.config.celery.task_batch,
            task_timeout=120,
            capacity=100_000,
        )

    def records(self) -> list[tuple[int, int, float]]:
        if not self.record.exists():
            return []
        rows = [line.split() for line in self.record.read_text().splitlines()]
        return [(int(a), int(b), float(c)) for a, b, c in rows]

    def close(self) -> None:
        self.hub.close()
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.redis.stop()


def _violations(records: list[tuple[int, int, float]], expected: int) -> tuple[int, int]:
    per_key: dict[int, list[int]] = defaultdict(list)
    for event_id, key, _ in records:
        per_key[key].append(event_id)
    order = sum(1 for ids in per_key.values() for a, b in itertools.pairwise(ids) if b < a)
    lost = expected - len({r[0] for r in records})
    return order, lost


def run(profile: Profile) -> list[Row]:
    """Measure section 11 and return its rows."""
    if not shutil.which("redis-server"):
        return [Row(SECTION, "celery benchmarks", None, "", note="redis-server not installed")]
    quick = profile.name != "full"
    catchup_n = 3000 if quick else 20000
    slow_n, slow_keys = (200, 20) if quick else (1000, 100)
    latency_n = 15 if quick else 100
    rows: list[Row] = []
    violations = lost = 0
    with tempfile.TemporaryDirectory() as tmp, LocalSite() as site:
        folder = Path(tmp)
        # 1. strict order catch-up: one key, one worker
        rig = _Rig(folder / "a", site, batch=100)
        try:
            rig.worker(1, {})
            done: list[int] = []
            executor = rig.executor(done)
            start = time.perf_counter()
            for i in range(1, catchup_n + 1):
                executor.submit(_event(i, 0))
            executor.drain(600)
            rate = catchup_n / (time.perf_counter() - start)
            v, lo = _violations(rig.records(), catchup_n)
            violations, lost = violations + v, lost + lo
            rows.append(
                Row(
                    SECTION,
                    "catch-up through Celery, strict order, trivial plugin",
                    rate,
                    "events/s",
                    ">= 2,000",
                    at_least(rate, 2000),
                    note=f"{catchup_n} events, 1 key, task_batch 100",
                )
            )
            # 3. latency: idle worker, one event at a time
            gaps: list[float] = []
            for i in range(latency_n):
                event_id = catchup_n + 1 + i
                sent = time.time()
                executor.submit(_event(event_id, 0))
                executor.drain(30)
                started = next(r[2] for r in reversed(rig.records()) if r[0] == event_id)
                gaps.append((started - sent) * 1000)
                time.sleep(0.05)
            p50 = statistics.median(gaps)
            rows.append(
                Row(
                    SECTION,
                    "added latency hand-off -> callback start, idle worker, p50",
                    p50,
                    "ms",
                    "<= 50 over local",
                    at_most(p50, 50),
                    note="local executor starts the callback in the same call (~0 ms)",
                )
            )
        finally:
            rig.close()
        # 2. 50 ms site call per event: 2 workers x 4 vs local concurrency 1
        rig = _Rig(folder / "b", site, batch=5)
        try:
            site.inject_fault("hang", count=10 * slow_n, seconds=0.05, method="read")
            os.environ["SITE_CALL"] = "1"
            sg = __import__("shotgun_api3").Shotgun(site.url, "shotgun_events", "local")
            local_start = time.perf_counter()
            local_n = max(20, slow_n // 10)
            for _ in range(local_n):
                sg.find_one("Project", [["id", "is", 1]])
            local_rate = local_n / (time.perf_counter() - local_start)
            rig.worker(4, {"SITE_CALL": "1"})
            rig.worker(4, {"SITE_CALL": "1"})
            done = []
            executor = rig.executor(done)
            start = time.perf_counter()
            for i in range(1, slow_n + 1):
                executor.submit(_event(i, i % slow_keys))
            executor.drain(600)
            celery_rate = slow_n / (time.perf_counter() - start)
            v, lo = _violations(rig.records(), slow_n)
            violations, lost = violations + v, lost + lo
            ratio = celery_rate / local_rate
            rows.append(
                Row(
                    SECTION,
                    "50 ms site call per event, 2 workers x 4 / local x 1",
                    ratio,
                    "x",
                    ">= 6x",
                    at_least(ratio, 6),
                    note=f"{slow_n} events over {slow_keys} entities; "
                    f"celery {celery_rate:.1f}/s, local {local_rate:.1f}/s",
                )
            )
        finally:
            os.environ.pop("SITE_CALL", None)
            site.clear_faults()
            rig.close()
    rows.append(
        Row(
            SECTION,
            "order violations per key + lost events",
            float(violations + lost),
            "count",
            "0",
            violations + lost == 0,
            note=f"{violations} out of order, {lost} lost",
        )
    )
    return rows
