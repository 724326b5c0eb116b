"""A plugin author tests a timer with ``plugin_under_test``: ``run_timer`` runs it once, now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shotgun_events.errors import PluginError

STALE = '''\
"""Every 10 minutes, put tasks waiting to start on hold (a housekeeping timer only)."""


def registerCallbacks(reg):
    reg.registerTimer(holdWaiting, every=600, args={"status": "hld"})


def holdWaiting(sg, logger, args):
    for task in sg.find("Task", [["sg_status_list", "is", "wtg"]], ["content"]):
        sg.update("Task", task["id"], {"sg_status_list": args["status"]})
'''

BROKEN = '''\
def registerCallbacks(reg):
    reg.registerTimer(report, every=3600)


def report(sg, logger, args):
    raise LookupError("no report template")
'''


def test_run_timer_runs_it_now_with_the_daemons_credentials(
    tmp_path: Path, local_site: Any, plugin_under_test: Any
) -> None:
    # Given a plugin with a timer and no callback, and tasks waiting to start
    path = tmp_path / "stale.py"
    path.write_text(STALE)
    waiting = local_site.sg.find("Task", [["sg_status_list", "is", "wtg"]], ["id"])
    assert waiting
    plugin = plugin_under_test(path)
    # When the test runs its timer
    assert plugin.run_timer("holdWaiting")
    # Then it wrote what the daemon's run would have, and raised nothing
    assert plugin.errors == []
    assert [(w["method"], w["entity_id"], w["data"]) for w in plugin.writes] == [
        ("update", t["id"], {"sg_status_list": "hld"}) for t in waiting
    ]


def test_a_raising_timer_is_an_error_of_the_test_and_switches_the_plugin_off(
    tmp_path: Path, local_site: Any, plugin_under_test: Any
) -> None:
    path = tmp_path / "broken.py"
    path.write_text(BROKEN)
    plugin = plugin_under_test(path)
    assert not plugin.run_timer("report")
    [error] = plugin.errors
    assert str(error) == "report: LookupError: no report template"
    assert error.event_id is None and "Traceback" in error.traceback
    assert not plugin.active
    with pytest.raises(PluginError, match="has no timer 'nightly' \\(its timers: report\\)"):
        plugin.run_timer("nightly")
