"""Plugins' timers in the real daemon: on time over a minute, skip when they overrun, fail like
callbacks, are replaced by a reload, and are waited for by a stop.

One daemon runs for a little over a minute with three plugins: ``clock``
(every 2 s, reads the site, records when it ran), ``slow`` (every 1 s, runs
2.5 s) and ``boom`` (raises). Near the end ``clock``'s file is edited to a
new timer; the daemon is stopped while ``slow`` runs.
"""

from __future__ import annotations

import itertools
import json
import math
import time
import urllib.request
from typing import Any

from .conftest import DaemonRig, daemon_cli, wait_for
from .test_email import free_port

CLOCK = '''\
"""Reads the site on a timer and records when it ran (test plugin)."""
import os
import time


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", nothing, {{"Nothing_Happens": None}}, None)
    reg.registerTimer({name}, every={every})


def nothing(sg, logger, event, args):
    pass


def {name}(sg, logger, args):
    started = time.time()
    sg.find_one("Project", [], ["name"])
    with open(os.environ["TIMERS_FILE"], "a") as out:
        out.write("{name} %.3f\\n" % started)
'''

SLOW = '''\
"""A timer that takes longer than its period (test plugin)."""
import os
import time


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", nothing, {"Nothing_Happens": None}, None)
    reg.registerTimer(slow, every=1)


def nothing(sg, logger, event, args):
    pass


def slow(sg, logger, args):
    with open(os.environ["TIMERS_FILE"], "a") as out:
        out.write("slow-start %.3f\\n" % time.time())
    time.sleep(2.5)
    with open(os.environ["TIMERS_FILE"], "a") as out:
        out.write("slow-end %.3f\\n" % time.time())
'''

BOOM = '''\
"""A timer that raises (test plugin)."""


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", nothing, {"Nothing_Happens": None}, None)
    reg.registerTimer(boom, every=1)


def nothing(sg, logger, event, args):
    pass


def boom(sg, logger, args):
    report_rows = 41
    raise RuntimeError("the nightly report broke")
'''


def records(rig: DaemonRig) -> list[tuple[str, float]]:
    path = rig.folder / "timers.txt"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        name, when = line.split()
        rows.append((name, float(when)))
    return rows


def times(rig: DaemonRig, name: str) -> list[float]:
    return [when for kind, when in records(rig) if kind == name]


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        text: str = reply.read().decode()
        return text


def plugins(rig: DaemonRig) -> dict[str, dict[str, Any]]:
    result = daemon_cli(rig, "status", "--json")
    return {p["name"]: p for p in json.loads(result.stdout)["plugins"]}


def test_timers_run_on_time_skip_overruns_fail_like_callbacks_and_reload(
    rig: DaemonRig,
) -> None:
    # Given three plugins with timers, as a studio's housekeeping jobs
    rig.env["TIMERS_FILE"] = str(rig.folder / "timers.txt")
    (rig.plugins / "clock.py").write_text(CLOCK.format(name="tick", every=2))
    (rig.plugins / "slow.py").write_text(SLOW)
    (rig.plugins / "boom.py").write_text(BOOM)
    port = free_port()
    rig.write_config(plugins_extra=f"[http]\nlisten = 127.0.0.1:{port}\n")
    rig.start()
    try:
        rig.wait_ready()
        # When the daemon runs them for over a minute
        wait_for(lambda: len(times(rig, "tick")) >= 31, 90, "a minute of the clock timer")
        during = plugins(rig)
        metrics = fetch(port, "/metrics")
        page = fetch(port, "/")
        # and the clock plugin is edited to another timer
        (rig.plugins / "clock.py").write_text(CLOCK.format(name="tock", every=1))
        edited = time.time()
        wait_for(lambda: len(times(rig, "tock")) >= 3, 30, "the new timer to run")
        after = plugins(rig)
        # and the daemon is stopped while the slow timer runs
        wait_for(
            lambda: [k for k, _ in records(rig) if k.startswith("slow")][-1] == "slow-start",
            10,
            "the slow timer to be running",
        )
        code = rig.stop()
    finally:
        rig.close()
    assert code == 0, rig.stderr_text()

    # Then every due time of the clock timer ran, each within 1 s of its time
    ticks = times(rig, "tick")
    dues = [2 * math.floor(t / 2) for t in ticks]
    late = [round(t - due, 3) for t, due in zip(ticks, dues, strict=True) if t - due >= 1.0]
    assert not late, f"runs more than 1 s after their time: {late}"
    minute = [d for d in dues if d <= dues[0] + 60]
    assert minute == list(range(dues[0], dues[0] + 61, 2)), "a due time was missed"
    assert during["clock"]["timers"][0]["name"] == "tick"
    assert during["clock"]["timers"][0]["runs"] >= 30

    # And the slow timer never ran twice at once, and skipped what it overran
    rows = [(kind, when) for kind, when in records(rig) if kind.startswith("slow")]
    kinds = [kind for kind, _ in rows]
    assert kinds == ["slow-start", "slow-end"] * (len(rows) // 2), "runs overlapped"
    starts = [when for kind, when in rows if kind == "slow-start"]
    ends = [when for kind, when in rows if kind == "slow-end"]
    # each run starts on its grid, not the moment the last one ended (nothing piled up)
    assert all(when - math.floor(when) < 0.4 for when in starts), starts
    assert all(b - a >= 2.9 for a, b in itertools.pairwise(starts)), starts
    slow_timer = during["slow"]["timers"][0]
    assert slow_timer["skipped"] >= 2 * (slow_timer["runs"] - 1)
    slow_log = (rig.folder / "logs" / "plugin.slow").read_text()
    assert slow_log.count("due time(s) skipped") == 1, "the overrun was not said once"
    # and the stop waited for the run in progress
    assert len(ends) == len(starts)

    # And metrics and the status page show them
    assert 'shotgun_events_timer_runs_total{outcome="ok",plugin="clock",timer="tick"}' in metrics
    assert 'outcome="skipped",plugin="slow",timer="slow"}' in metrics
    assert 'outcome="error",plugin="boom",timer="boom"} 1.0' in metrics
    assert "timer tick every 2 s" in page

    # And the raising timer was handled like a callback: CRITICAL on its logger, with the
    # traceback and its locals, the plugin switched off until its file changes
    assert during["boom"]["state"] == "inactive"
    assert "timer boom failed: RuntimeError: the nightly report broke" in during["boom"]["reason"]
    boom_log = (rig.folder / "logs" / "plugin.boom").read_text()
    assert "CRITICAL" in boom_log and "timer boom failed" in boom_log
    assert "report_rows = 41" in boom_log
    assert boom_log.count("the nightly report broke);") == 1, "it ran again while switched off"

    # And the reload replaced the timer: the old one stopped, the new one runs
    assert [t["name"] for t in after["clock"]["timers"]] == ["tock"]
    assert not [t for t in ticks if t > edited + 2.5], "the old timer ran after the reload"
    assert all(t > edited for t in times(rig, "tock"))
