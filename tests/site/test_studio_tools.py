"""schema-dump from the configured site, and the local_site fixture on a studio's schema."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import shotgun_api3
from shotgun_api3.lib import mockgun

from shotgun_events.site import LocalSite

from .conftest import KEY, SCRIPT

REPO = Path(__file__).resolve().parents[2]


def _dump(site: LocalSite, folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run schema-dump with the shipped example config, pointed at ``site``."""
    conf = folder / "shotgunEventDaemon.conf"
    shutil.copyfile(REPO / "conf" / "shotgunEventDaemon.conf", conf)
    env = {
        **os.environ,
        "SG_ED_SITE_URL": site.url,
        "SG_ED_SCRIPT_NAME": SCRIPT,
        "SG_ED_API_KEY": KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "shotgun_events.cli", "-c", str(conf), "schema-dump", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A running site with a custom entity type and field (the studio's site)."""
    folder = tmp_path_factory.mktemp("studio_site")
    with LocalSite(folder / "studio.sqlite3") as site:
        site.enable_entity("CustomEntity02", "Camera")
        sg = shotgun_api3.Shotgun(site.url, SCRIPT, KEY)
        sg.schema_field_create("CustomEntity02", "float", "Focal Length")
        sg.close()
        yield site


def test_schema_dump_writes_mockguns_files_and_a_json_pair(
    studio: LocalSite, tmp_path: Path
) -> None:
    # When the schema is dumped from the site the config names, as pickles and as JSON
    result = _dump(studio, tmp_path, "--out", str(tmp_path / "p"))
    as_json = _dump(studio, tmp_path, "--out", str(tmp_path / "j"), "--format", "json")
    # Then both succeed and name where they wrote
    assert result.returncode == 0, result.stderr
    assert as_json.returncode == 0, as_json.stderr
    assert "schema.pickle" in result.stdout and "schema.json" in as_json.stdout
    # And mockgun itself runs on the pickles, custom entity and field included
    mockgun.Shotgun.set_schema_paths(
        str(tmp_path / "p" / "schema.pickle"), str(tmp_path / "p" / "schema_entity.pickle")
    )
    mock = mockgun.Shotgun("https://studio.example.com", "script", "key")
    made = mock.create("CustomEntity02", {"code": "A cam", "sg_focal_length": 35.0})
    assert mock.find_one("CustomEntity02", [["sg_focal_length", "is", 35.0]])["id"] == made["id"]
    # And a local site on the JSON pair serves the same schema as the site it came from
    live = shotgun_api3.Shotgun(studio.url, SCRIPT, KEY)
    with LocalSite(
        tmp_path / "copy.sqlite3",
        schema=tmp_path / "j" / "schema.json",
        schema_entity=tmp_path / "j" / "schema_entity.json",
    ) as copy:
        sg = shotgun_api3.Shotgun(copy.url, SCRIPT, KEY)
        try:
            assert sg.schema_read() == live.schema_read()
            assert sg.schema_entity_read() == live.schema_entity_read()
        finally:
            sg.close()
            live.close()


def test_schema_dump_from_a_site_it_cannot_reach_fails_in_one_line(tmp_path: Path) -> None:
    # Given a config naming a site that is not there (a stopped local site's address)
    site = LocalSite(tmp_path / "gone.sqlite3").start()
    site.stop()
    # When the schema is dumped
    result = _dump(site, tmp_path, "--out", str(tmp_path / "out"))
    # Then it fails with one line naming the site, and writes nothing
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and site.url in result.stderr
    assert not (tmp_path / "out" / "schema.pickle").exists()


AUTHOR_TEST = """\
def test_runs_on_the_studio_schema(local_site):
    sg = local_site.sg
    assert sg.schema_entity_read()["CustomEntity02"]["name"]["value"] == "Camera"
    cam, events = local_site.create("CustomEntity02", code="cam", sg_focal_length=50.0)
    assert [e["event_type"] for e in events][0] == "Shotgun_CustomEntity02_New"
    assert sg.find_one("Shot", [["code", "is", "SQ010_0010"]]) is not None  # seeded
"""


def _author_project(tmp_path: Path, ini: str) -> Path:
    project = tmp_path / "studio_plugins"
    project.mkdir()
    (project / "test_schema.py").write_text(AUTHOR_TEST)
    (project / "pytest.ini").write_text("[pytest]\n" + ini)
    return project


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHONPATH"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_local_site_runs_on_the_schema_named_in_the_ini_file_or_the_command_line(
    studio: LocalSite, tmp_path: Path
) -> None:
    # Given an author's project keeping the studio's schema files, named in pytest.ini
    project = _author_project(
        tmp_path,
        "sg_schema = schema/schema.pickle\nsg_schema_entity = schema/schema_entity.pickle\n",
    )
    assert _dump(studio, tmp_path, "--out", str(project / "schema")).returncode == 0
    # When the author runs pytest
    by_ini = _pytest(project)
    # Then local_site runs on that schema (custom entity included) and is still seeded
    assert by_ini.returncode == 0, by_ini.stdout + by_ini.stderr
    # And the command line names them as well (relative to where pytest is started)
    (project / "pytest.ini").write_text("[pytest]\n")
    by_option = _pytest(
        project,
        "--sg-schema",
        "schema/schema.pickle",
        "--sg-schema-entity",
        "schema/schema_entity.pickle",
    )
    assert by_option.returncode == 0, by_option.stdout + by_option.stderr


def test_local_site_refuses_a_hostile_schema_before_any_test_runs(tmp_path: Path) -> None:
    # Given a schema file whose loading would run a command
    ran = tmp_path / "ran"
    project = _author_project(tmp_path, "sg_schema = schema.pickle\n")
    # protocol 0, written out: os.system("touch <ran>") when loaded
    (project / "schema.pickle").write_bytes(
        b"cos\nsystem\n(S'touch " + str(ran).encode() + b"'\ntR."
    )
    # When the author runs pytest
    result = _pytest(project)
    # Then pytest stops with a usage error naming the file, and nothing ran
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--sg-schema:" in result.stderr and "schema.pickle" in result.stderr
    assert "GLOBAL" in result.stderr and not ran.exists()
