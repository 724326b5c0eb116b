"""A Celery plugin's timers run as tasks on the workers, and fail there like its callbacks."""

from __future__ import annotations

import os
import time

from tests.celery.conftest import CeleryRig, DaemonProcess
from tests.integration.conftest import wait_for

TIMED = '''\
"""Celery test plugin with timers: one records where it ran, one raises."""
import os


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", nothing, {"Nothing_Happens": None}, None)
    reg.registerTimer(where, every=1)
    reg.registerTimer(broken, every=1, stopOnError=True, retries=1, retry_delay=0)


def nothing(sg, logger, event, args):
    pass


def where(sg, logger, args):
    sg.find_one("Project", [], ["name"])
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write("where %d\\n" % os.getpid())


def broken(sg, logger, args):
    if os.path.exists(os.environ["BREAK_FILE"]):
        raise ValueError("the report query failed")
'''


def test_a_celery_plugins_timers_run_on_the_worker_and_fail_by_the_daemons_policy(
    celery_rig: CeleryRig, daemon: DaemonProcess
) -> None:
    # Given the daemon with executor = celery, a worker, and a plugin with two timers
    break_file = celery_rig.folder / "break"
    celery_rig.env["BREAK_FILE"] = str(break_file)
    (celery_rig.plugins / "timed.py").write_text(TIMED)
    worker = celery_rig.start_worker("--concurrency", "2", "--hostname", "w1@%h")
    celery_rig.wait_workers(1)
    daemon.start()
    # When its timers come due
    wait_for(
        lambda: len([r for r in celery_rig.records() if r[0] == "where"]) >= 3,
        60,
        "three runs of the timer",
    )
    # Then they ran in the worker's processes, not in the daemon
    pids = {int(r[1]) for r in celery_rig.records() if r[0] == "where"}
    assert daemon.proc is not None and daemon.proc.pid not in pids
    assert os.getpid() not in pids and worker.poll() is None
    shown = daemon.plugin("timed")
    timers = {t["name"]: t for t in shown["timers"]}
    assert timers["where"]["runs"] >= 2 and timers["broken"]["errors"] == 0
    # When one timer starts to raise on the worker
    break_file.write_text("")
    wait_for(lambda: daemon.plugin("timed")["state"] == "inactive", 60, "the plugin switched off")
    # Then the daemon's policy decided: a retry, then the plugin off until its file changes
    shown = daemon.plugin("timed")
    assert "timer broken failed" in shown["reason"]
    assert "ValueError: the report query failed" in shown["reason"]
    plugin_log = (celery_rig.folder / "logs" / "plugin.timed").read_text()
    assert "timer broken failed on worker w1@" in plugin_log
    assert "retry 1 of 1" in plugin_log
    # and the worker logged the failure with its traceback
    worker_err = (celery_rig.folder / "worker0.err").read_text()
    assert "timer broken failed" in worker_err and "Traceback" in worker_err
    # And a switched-off plugin's timers stop running
    count = len([r for r in celery_rig.records() if r[0] == "where"])
    time.sleep(2.5)
    assert len([r for r in celery_rig.records() if r[0] == "where"]) <= count + 1
    assert daemon.stop() == 0
