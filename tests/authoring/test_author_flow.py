"""A plugin author's project: a plugin, a test using the fixtures, and plain ``pytest``.

The project lives in a temporary folder outside this repository (no conftest, no
settings of ours); pytest finds the fixtures through the installed entry point.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLUGIN = '''\
"""Flag a version for review when its shot is put on hold."""


def registerCallbacks(reg):
    reg.registerCallback("hold_watcher", "s3cr3t-key", onHold,
                         {"Shotgun_Shot_Change": ["sg_status_list"]})


def onHold(sg, logger, event, args):
    if event["meta"]["new_value"] != "hld":
        return
    shot = event["entity"]
    for version in sg.find("Version", [["entity", "is", shot]], ["code"]):
        sg.update("Version", version["id"], {"sg_status_list": STATUS})
        logger.info("version %s set to %s", version["code"], STATUS)


STATUS = "rev"
'''

TEST = """\
from pathlib import Path

HERE = Path(__file__).parent


def test_hold_puts_versions_back_in_review(local_site, plugin_under_test):
    plugin = plugin_under_test(HERE / "plugins" / "holdWatcher.py")
    shot = local_site.sg.find_one("Shot", [["code", "is", "SQ010_0010"]], ["id"])
    versions = local_site.sg.find("Version", [["entity", "is", shot]], ["id"])
    assert versions

    for event in local_site.change("Shot", shot["id"], sg_status_list="hld"):
        plugin.deliver(event)

    assert plugin.errors == []
    assert [(w["method"], w["entity_id"], w["data"]) for w in plugin.writes] == [
        ("update", v["id"], {"sg_status_list": "rev"}) for v in versions
    ]
"""


def _project(tmp_path: Path, plugin: str) -> Path:
    project = tmp_path / "studio_plugins"
    (project / "plugins").mkdir(parents=True)
    (project / "plugins" / "holdWatcher.py").write_text(plugin)
    (project / "test_hold_watcher.py").write_text(TEST)
    # A project of its own: pytest must not climb into this repository's settings.
    (project / "pytest.ini").write_text("[pytest]\n")
    return project


def _pytest(project: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHONPATH"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_authors_test_passes_with_only_the_package_installed(tmp_path: Path) -> None:
    # Given a project with a working plugin and a test written with the fixtures
    project = _project(tmp_path, PLUGIN)
    # When the author runs pytest
    result = _pytest(project)
    # Then it passes
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_authors_test_fails_on_a_wrong_write_and_says_what_was_written(
    tmp_path: Path,
) -> None:
    # Given the same project with a bug: the plugin writes the wrong status
    project = _project(tmp_path, PLUGIN.replace('STATUS = "rev"', 'STATUS = "apr"'))
    # When the author runs pytest
    result = _pytest(project)
    # Then the test fails on the writes assertion, showing the status the plugin sent
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout
    assert "assert [('update'" in result.stdout and "'apr'" in result.stdout


def test_the_authors_test_fails_on_a_crashing_callback_with_its_error(tmp_path: Path) -> None:
    # Given the project with a plugin that crashes in its callback
    project = _project(tmp_path, PLUGIN.replace('event["meta"]["new_value"]', 'event["nope"]'))
    # When the author runs pytest
    result = _pytest(project)
    # Then the test fails on plugin.errors, which names the KeyError
    assert result.returncode == 1, result.stdout + result.stderr
    assert ">       assert plugin.errors == []" in result.stdout
    assert "exception=KeyError('nope')" in result.stdout
