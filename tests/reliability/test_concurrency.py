"""Concurrency inside a plugin, with the real daemon on the local site.

Events of different shots overlap, each shot's events run in id order, and
kill -9 at random instants loses nothing and re-runs at most ``concurrency``
events per kill (the watermark cursor).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from shotgun_events.state.store import read_state
from tests.unit.fakes import DISPATCH_MODES

from .conftest import SCRIPT_KEY, SCRIPT_NAME, Rig
from .summary import SUMMARY

SEED = 20261201

#: A plugin that asks for concurrency in code, calls the site and sleeps per event
#: (the site's own latency control may not exist yet), and records what it saw.
PLUGIN = '''\
"""Concurrency test plugin: one site call + a short sleep per event."""
import os
import threading
import time

RECORD = os.environ["RECORD_FILE"]
ORDER = RECORD + ".order"
PEAK = RECORD + ".peak"
_lock = threading.Lock()
_running = [0, 0]


def registerCallbacks(reg):
    {declare}
    reg.registerCallback("{script}", "{key}", handle, None, None, stopOnError=True)


def _append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def handle(sg, logger, event, args):
    with _lock:
        _running[0] += 1
        if _running[0] > _running[1]:
            _running[1] = _running[0]
            _append(PEAK, "%d\\n" % _running[1])
    try:
        sg.find_one("Shot", [["id", "is", event["entity"]["id"]]], ["code"])
        time.sleep({sleep!r})
        _append(ORDER, "%d %d\\n" % (event["entity"]["id"], event["id"]))
        _append(RECORD, "{name} %d\\n" % event["id"])
    finally:
        with _lock:
            _running[0] -= 1
'''


def _add_plugin(rig: Rig, name: str, *, declare: str = "", sleep: float = 0.01) -> None:
    (rig.plugins / f"{name}.py").write_text(
        PLUGIN.format(
            name=name, declare=declare or "pass", sleep=sleep, script=SCRIPT_NAME, key=SCRIPT_KEY
        )
    )


def _append_over_shots(rig: Rig, events: int, shots: int) -> tuple[int, int]:
    first = last = 0
    for n in range(events):
        start, last = rig.site.append_events(1, entity={"type": "Shot", "id": 1 + n % shots})
        first = first or start
    return first, last


def _per_shot(rig: Rig) -> dict[int, list[int]]:
    order: dict[int, list[int]] = defaultdict(list)
    path = Path(str(rig.record_file) + ".order")
    for line in path.read_text().splitlines():
        shot, event_id = line.split()
        order[int(shot)].append(int(event_id))
    return order


def _peak(rig: Rig) -> int:
    path = Path(str(rig.record_file) + ".peak")
    return max((int(x) for x in path.read_text().split()), default=0)


@pytest.mark.parametrize("dispatch", DISPATCH_MODES)
def test_concurrency_overlaps_and_keeps_each_shot_in_order(rig: Rig, dispatch: str) -> None:
    # Given a plugin asking for 4 events at once, ordered by entity, in code
    rig.write_config(batch=100, dispatch=dispatch)
    _add_plugin(rig, "rollup", declare='reg.setConcurrency(4, order_by="entity")')
    rig.start()
    rig.wait_ready()
    base = rig.site.newest_event_id()
    # When 200 events over 10 shots arrive
    _, last = _append_over_shots(rig, 200, 10)
    rig.wait_delivered(["rollup"], last, timeout=120)
    assert rig.stop() == 0
    # Then events really overlapped, each exactly once
    assert _peak(rig) > 1
    report = rig.check(base, ["rollup"])
    assert report.lost_count == 0 and report.duplicate_count() == 0, report.describe()
    # And each shot saw its events in id order
    for shot, ids in _per_shot(rig).items():
        assert ids == sorted(ids), f"shot {shot} out of order: {ids}"
    # And the saved watermark is the last event, with no done ids left above it
    state = read_state(rig.state_file)
    assert state is not None
    (cursor,) = [c for (_, name), c in state.positions.items() if name == "rollup"]
    assert (cursor.last_id, cursor.done) == (last, set())


def test_kill9_during_concurrent_catch_up_loses_nothing_and_reruns_at_most_concurrency(
    rig: Rig,
) -> None:
    # Given concurrency 4 set by the config's [plugin:NAME] section (the code asks for 2)
    concurrency = 4
    rig.write_config(
        batch=100,
        sections=f"\n[plugin:sync]\nconcurrency = {concurrency}\norder_by = entity\n",
    )
    _add_plugin(rig, "sync", declare="reg.setConcurrency(2)", sleep=0.02)
    rig.start()
    rig.wait_ready()
    base = rig.site.newest_event_id()
    _, last = _append_over_shots(rig, 600, 20)
    rng = random.Random(SEED)
    kills = 0
    # When it is killed with SIGKILL at random instants while catching up, and restarted
    for _ in range(5):
        seen = len(rig.deliveries())
        deadline = time.monotonic() + 60
        while len(rig.deliveries()) <= seen and time.monotonic() < deadline:
            time.sleep(0.01)
        if any(i == last for _, i in rig.deliveries()):
            break
        time.sleep(rng.uniform(0.05, 0.4))
        rig.kill9()
        kills += 1
        assert read_state(rig.state_file) is not None
        rig.start()
    rig.wait_delivered(["sync"], last, timeout=300)
    assert rig.stop() == 0
    # Then nothing was lost and no kill re-ran more than `concurrency` events
    report = rig.check(base, ["sync"], allowed_duplicates=kills * concurrency)
    assert kills >= 3, "the kills did not land during processing"
    assert report.lost_count == 0, report.describe()
    assert report.duplicate_count("sync") <= kills * concurrency, report.describe()
    # And the config's concurrency was used (more than the code's 2 at once)
    assert _peak(rig) > 2
    # And a re-run never came after a later event of the same shot
    for shot, ids in _per_shot(rig).items():
        assert ids == sorted(ids), f"shot {shot} out of order: {ids}"
    SUMMARY.notes.append(
        f"kill -9 (concurrency {concurrency}): {kills} kills, "
        f"{report.duplicate_count()} re-runs, seed {SEED}"
    )
