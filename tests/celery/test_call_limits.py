"""A plugin's ceiling on site calls holds per worker process, over the worker's threads."""

from __future__ import annotations

import time

from tests.celery.conftest import CeleryRig
from tests.unit.fakes import make_event

CALLER = '''\
"""Calls the site 4 times per event (Celery test plugin)."""


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", count, None, None)


def count(sg, logger, event, args):
    for _ in range(4):
        sg.summarize("Shot", [], [{"field": "id", "type": "count"}])
'''
CEILING = 8
#: Calls a sample may count beyond the bucket's promise: a call in flight at each end.
SLACK = 3


def test_a_workers_threads_share_the_plugins_ceiling(celery_rig: CeleryRig) -> None:
    # Given a plugin held to 8 site calls per second, calling the site 4 times per event,
    # and one worker of 4 threads
    celery_rig.config_path.write_text(
        celery_rig.config_path.read_text()
        + f"\n[plugin:caller]\nmax_calls_per_second = {CEILING}\n"
    )
    (celery_rig.plugins / "caller.py").write_text(CALLER)
    celery_rig.start_worker("--concurrency", "4")
    celery_rig.wait_workers(1)
    executor = celery_rig.executor(celery_rig.load_plugin("caller"), task_batch=1)
    celery_rig.site.reset_counts()
    # When 12 events of 4 entities arrive, so the 4 threads call at once: 48 calls
    for event_id in range(1, 13):
        executor.submit(make_event(event_id, entity={"type": "Shot", "id": event_id % 4}))
    seen: list[tuple[float, int]] = []
    deadline = time.monotonic() + 120
    while (not seen or seen[-1][1] < 48) and time.monotonic() < deadline:
        seen.append((time.monotonic(), celery_rig.site.call_counts().get("summarize", 0)))
        time.sleep(0.05)
    # Then every event was done
    assert executor.drain(60), "events not all answered"
    assert sorted(celery_rig.done_ids("caller")) == list(range(1, 13))
    assert celery_rig.site.call_counts().get("summarize") == 48
    # And the site never saw the worker's calls come faster than the ceiling allows
    for i, (t0, n0) in enumerate(seen):
        for t1, n1 in seen[i + 1 :]:
            assert n1 - n0 <= CEILING * (t1 - t0) + CEILING + SLACK, (t1 - t0, n1 - n0)
    first = next(t for t, n in seen if n > 0)
    assert seen[-1][0] - first >= (48 - CEILING - SLACK) / CEILING
