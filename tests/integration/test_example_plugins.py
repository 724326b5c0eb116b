"""The shipped example plugins, run by the real daemon against a seeded local site."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import shotgun_api3

from shotgun_events.demo import example_plugins
from shotgun_events.site import LocalSite

from .conftest import DaemonRig, wait_for


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[DaemonRig]:
    with LocalSite(seed=True) as site:
        rig = DaemonRig(tmp_path, site)
        for plugin in example_plugins().glob("*.py"):
            shutil.copy(plugin, rig.plugins / plugin.name)
        try:
            yield rig
        finally:
            rig.close()


def test_task_statuses_roll_up_to_the_shot(seeded: DaemonRig) -> None:
    # Given the daemon running the example plugins on a seeded site
    seeded.start()
    seeded.wait_ready()
    sg = shotgun_api3.Shotgun(seeded.site.url, "shotgun_events", "local")
    try:
        shot = sg.find_one(
            "Shot", [["sg_status_list", "is_not", "fin"]], ["code", "sg_status_list"]
        )
        assert shot is not None
        tasks = sg.find("Task", [["entity", "is", {"type": "Shot", "id": shot["id"]}]], ["content"])
        assert tasks
        # When an artist finals every task of the shot
        for task in tasks:
            sg.update("Task", task["id"], {"sg_status_list": "fin"})
        # Then the rollup plugin finals the shot
        wait_for(
            lambda: (
                sg.find_one("Shot", [["id", "is", shot["id"]]], ["sg_status_list"])[
                    "sg_status_list"
                ]
                == "fin"
            ),
            what="shot status rolled up",
        )
    finally:
        sg.close()
    assert seeded.stop() == 0
    # And logArgs logged the task events, and the rollup logged what it changed
    logs = seeded.folder / "logs"
    assert "Shotgun_Task_Change" in (logs / "plugin.logArgs").read_text()
    assert "-> fin" in (logs / "plugin.shotStatusRollup").read_text()
