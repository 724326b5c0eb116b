"""The whole system at once, under faults, checked against what the README promises.

One run: the local site (10 ms latency, signed webhooks, faults), the daemon
in the shipped config's layout and defaults with [http], [webhooks] and
[celery] on, five plugins (two quick ones, one calling the site per event,
one with concurrency 4 ordered by entity, one on Celery with two workers and
a password-protected redis-server), steady traffic with bursts and late or
missing ids, and at seeded moments: daemon kills, a worker kill, a Redis
restart, a plugin edit, a SIGHUP, a task garbled in Redis. Then: nothing
lost, nothing unexpected, duplicates explained and within the README's
bounds, order kept, no ERROR in a tight loop, the garbled task's rejection
read once and its event given up by the failure policy, probes and status
honest, exit 0 on SIGTERM.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from tests.summaries import CHAOS_RUNS

from .checker import check_plugin, site_events
from .driver import Driver
from .health import drain, final_checks
from .logs import evidence, rejection_findings, tight_loops, unexplained_errors
from .plan import build_plan
from .plugins import PLUGINS, read_deliveries
from .report import Report
from .system import KEY, SCRIPT, System, rss_kib


def test_everything_at_once_under_faults_keeps_the_delivery_promises(
    chaos_seed: int, chaos_seconds: float, chaos_root: Path, chaos_replay: str
) -> None:
    started = time.monotonic()
    plan = build_plan(chaos_seed, chaos_seconds)
    print(f"{plan.describe()}\nreplay: {chaos_replay}\nfolder: {chaos_root}", flush=True)
    system = System(
        chaos_root, latency_ms=10, webhook_batch=random.Random(chaos_seed).random() < 0.5
    )
    try:
        # Given the whole system running in the shipped layout and defaults
        system.start()
        rss_start = rss_kib(system.daemon.pid)
        # When the plan's traffic and faults are acted out, then everything is brought back
        driver = Driver(system, plan)
        timeline = driver.run()
        driver.settle()
        never = len(timeline.never_ids)
        caught = drain(system, never, limit=max(300.0, plan.seconds / 4))
        garbled = timeline.garbled
        final = final_checks(system, caught.head, never, {"celery_rec": len(garbled)})
        # Then each plugin got what the README promises for its kind
        events = site_events(system.site_url, SCRIPT, KEY, timeline.first_id)
        deliveries = read_deliveries(system.records)
        verdicts = [check_plugin(spec, deliveries[spec.name], events, timeline) for spec in PLUGINS]
        lost = sorted({i for v in verdicts for i in v.lost})[:3]
        loops = tight_loops(system.log_files())
        report = Report(
            plan=plan,
            timeline=timeline,
            lives=system.lives,
            verdicts=verdicts,
            loops=loops,
            unexplained=unexplained_errors(system.log_files(), garbled, loops),
            rejections=rejection_findings(system.log_files(), garbled),
            drain=caught,
            final=final,
            events=len(events),
            deliveries=sum(len(rows) for rows in deliveries.values()),
            rss_start_kib=rss_start,
            webhooks=system.control("webhook_stats"),
            seconds=time.monotonic() - started,
            root=str(chaos_root),
            replay=chaos_replay,
            driver_errors=driver.errors,
            evidence=evidence(system.log_files(), lost) if lost else [],
        )
    finally:
        system.close()
    CHAOS_RUNS.append("\n".join(report.summary()))
    assert report.ok, report.failure_message()
    (chaos_root / "passed").touch()
