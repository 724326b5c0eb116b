"""Plugins on one credential call a distant site in parallel through the connection pool."""

from __future__ import annotations

import pytest

from .conftest import DaemonRig, wait_for

CALLER = '''\
"""Calls the site for its own tenth of the events and records when (test plugin)."""
import os
import time

RECORD = os.environ["RECORD_FILE"]


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", look, None, None)


def look(sg, logger, event, args):
    if event["id"] % 10 != {n}:
        return
    start = time.time()
    found = sg.find_one("EventLogEntry", [["id", "is", event["id"]]], ["id"])
    end = time.time()
    assert found["id"] == event["id"]
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("p{n} %d %.6f %.6f\\n" % (event["id"], start, end)).encode())
    finally:
        os.close(fd)
'''


def _calls(rig: DaemonRig) -> list[tuple[str, int, float, float]]:
    if not rig.record_file.exists():
        return []
    rows = []
    for line in rig.record_file.read_text().splitlines():
        name, event_id, start, end = line.split()
        rows.append((name, int(event_id), float(start), float(end)))
    return rows


def _most_at_once(calls: list[tuple[str, int, float, float]]) -> int:
    edges = sorted([(c[2], 1) for c in calls] + [(c[3], -1) for c in calls])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.parametrize("dispatch", ["parallel", "auto"])
def test_plugins_site_calls_overlap_on_a_distant_site(rig: DaemonRig, dispatch: str) -> None:
    # Given ten plugins on one credential, each calling the site for its own tenth of the
    # events, and a site answering every call after 300 ms
    rig.write_config(extra=f"dispatch = {dispatch}\nmax_connections_per_script = 8")
    for n in range(10):
        (rig.plugins / f"p{n}.py").write_text(CALLER.format(n=n))
    rig.start()
    rig.wait_ready()
    rig.site.reset_counts()
    rig.site.set_latency(300)
    # When 60 events arrive (six calls per plugin: 1.8 s of site time each, 18 s in all)
    first, last = rig.site.append_events(60)
    wait_for(lambda: len(_calls(rig)) == 60, timeout=120, what="every plugin's calls")
    rig.site.set_latency(0)
    assert rig.stop() == 0
    calls = _calls(rig)
    # Then every event was looked at once by the plugin it belongs to
    assert sorted(c[1] for c in calls) == list(range(first, last + 1))
    assert all(c[0] == f"p{c[1] % 10}" for c in calls)
    # And the calls really overlapped: the span is well under the sum of the calls
    total = sum(c[3] - c[2] for c in calls)
    span = max(c[3] for c in calls) - min(c[2] for c in calls)
    assert total >= 60 * 0.3
    assert span < total / 2
    assert _most_at_once(calls) >= 4
    # And the pool never opened more connections than its cap: beside the plugins' 8 at
    # most, the engine reads on one (and up to read_ahead = 4 while catching up), and a
    # plugin on a thread of its own catches up on a reader of its own
    assert rig.site.connection_count() <= 8 + 1 + 4 + 10
