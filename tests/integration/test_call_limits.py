"""A ceiling on one plugin's site calls, on the real daemon against a site that answers slowly.

``[plugin:rollup] max_calls_per_second`` holds a plugin that calls the site
four times per event; a second plugin, without a ceiling, keeps its pace; the
site's own call counters, sampled over time, show the ceiling held, and
``/metrics`` and ``status`` show the waiting time.
"""

from __future__ import annotations

import time

from .conftest import DaemonRig, daemon_cli, wait_for
from .test_observe import free_port, get, sample

CALLER = '''\
"""Calls the site {calls} times per event with {method} and records when it is done."""
import os
import time

RECORD = os.environ["RECORD_FILE"]


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", handle, None, None)


def handle(sg, logger, event, args):
    for _ in range({calls}):
        {call}
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("{name} %d %.6f\\n" % (event["id"], time.time())).encode())
    finally:
        os.close(fd)
'''
CALLS_PER_EVENT = 4
EVENTS = 12
CEILING = 8
#: Calls a sample may count beyond the bucket's promise: a call in flight at each end.
SLACK = 3


def add_caller(rig: DaemonRig, name: str, method: str, call: str) -> None:
    text = CALLER.format(name=name, method=method, call=call, calls=CALLS_PER_EVENT)
    (rig.plugins / f"{name}.py").write_text(text)


def finished(rig: DaemonRig) -> dict[str, list[tuple[int, float]]]:
    """Events each plugin has handled, with the time it was done with each."""
    done: dict[str, list[tuple[int, float]]] = {}
    if rig.record_file.exists():
        for line in rig.record_file.read_text().splitlines():
            name, event_id, at = line.split()
            done.setdefault(name, []).append((int(event_id), float(at)))
    return done


def test_a_plugin_is_held_to_its_ceiling_and_the_others_keep_their_pace(rig: DaemonRig) -> None:
    # Given the daemon with [http] on, plugin rollup held to 8 site calls per second and
    # plugin sync without a ceiling, each calling the site 4 times per event
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rig.write_config(
        plugins_extra=(
            f"\n[http]\nlisten = 127.0.0.1:{port}\n"
            f"\n[plugin:rollup]\nmax_calls_per_second = {CEILING}\n"
        )
    )
    count = '[{"field": "id", "type": "count"}]'
    add_caller(rig, "rollup", "summarize", f'sg.summarize("Shot", [], {count})')
    add_caller(rig, "sync", "schema_field_read", 'sg.schema_field_read("Shot", "code")')
    rig.start()
    wait_for(lambda: get(f"{base}/readyz")[0] == 200, what="/readyz 200")
    # And a site that answers every call after 20 ms
    rig.site.set_latency(20)
    rig.site.reset_counts()
    # When 12 events arrive: 48 calls for each plugin
    started = time.time()
    rig.site.append_events(EVENTS)
    seen: list[tuple[float, int]] = []
    total = EVENTS * CALLS_PER_EVENT
    deadline = time.monotonic() + 120
    while (not seen or seen[-1][1] < total) and time.monotonic() < deadline:
        seen.append((time.monotonic(), rig.site.call_counts().get("summarize", 0)))
        time.sleep(0.05)
    wait_for(lambda: len(finished(rig).get("rollup", [])) == EVENTS, what="rollup's events")
    rig.site.set_latency(0)
    done = finished(rig)
    calls = rig.site.call_counts()
    # Then each plugin handled every event once, making all its calls
    assert sorted(i for i, _ in done["rollup"]) == sorted(i for i, _ in done["sync"])
    assert len(done["sync"]) == EVENTS
    assert calls.get("summarize") == calls.get("schema_field_read") == total
    # And the site never saw rollup's calls come faster than its ceiling allows: in any
    # stretch of time, at most one second's worth at once plus 8 per second
    for i, (t0, n0) in enumerate(seen):
        for t1, n1 in seen[i + 1 :]:
            assert n1 - n0 <= CEILING * (t1 - t0) + CEILING + SLACK, (t1 - t0, n1 - n0)
    # And sync was not held by it: all its events were done while rollup still waited
    sync_done = max(at for _, at in done["sync"]) - started
    rollup_done = max(at for _, at in done["rollup"]) - started
    assert rollup_done >= (total - CEILING - SLACK) / CEILING
    assert sync_done < rollup_done - 2, (sync_done, rollup_done)
    # And /metrics shows the ceiling and the seconds rollup's calls waited; none for sync
    wait = "shotgun_events_plugin_site_call_wait_seconds_total"
    assert (sample(base, wait, plugin="rollup") or 0) >= 2
    assert (sample(base, wait, plugin="sync") or 0) == 0
    assert sample(base, "shotgun_events_plugin_max_calls_per_second", plugin="rollup") == CEILING
    assert sample(base, "shotgun_events_plugin_max_calls_per_second", plugin="sync") is None
    # And so does status, on rollup's line only
    lines = daemon_cli(rig, "status").stdout.splitlines()
    rollup_line = next(line for line in lines if line.strip().startswith("rollup"))
    sync_line = next(line for line in lines if line.strip().startswith("sync"))
    assert f"site calls <= {CEILING}/s waited" in rollup_line
    assert "site calls" not in sync_line
    # And the log said at start which plugins have a ceiling
    assert f"ceiling on plugins' site calls: rollup {CEILING}/s" in rig.log_text()
    assert rig.stop() == 0
