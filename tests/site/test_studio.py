"""A studio's own schema: mockgun's files, JSON dumps, custom entities, hostile pickles."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import shotgun_api3
from shotgun_api3.lib import mockgun

from shotgun_events.site import LocalSite
from shotgun_events.site.schemafile import SchemaFileError

from .conftest import KEY, SCRIPT


def _client(site: LocalSite) -> shotgun_api3.Shotgun:
    return shotgun_api3.Shotgun(site.url, SCRIPT, KEY)


def _studio_site_files(folder: Path) -> tuple[Path, Path, dict[str, Any], dict[str, Any]]:
    """Run a local site, give it custom entities and fields, write mockgun's two files."""
    with LocalSite(folder / "studio.sqlite3", seed=True) as studio:
        studio.enable_entity("CustomEntity01", "Prop Kit")
        studio.enable_entity("CustomNonProjectEntity01", "Vendor")
        sg = _client(studio)
        try:
            weight = sg.schema_field_create("CustomEntity01", "number", "Weight")
            grade = sg.schema_field_create(
                "CustomEntity01", "list", "Grade", {"valid_values": ["A", "B", "C"]}
            )
            vendor = sg.schema_field_create(
                "CustomEntity01", "entity", "Vendor", {"valid_types": ["CustomNonProjectEntity01"]}
            )
            shots = sg.schema_field_create(
                "CustomEntity01", "multi_entity", "Shots", {"valid_types": ["Shot"]}
            )
            lens = sg.schema_field_create("Shot", "text", "Lens")
            assert (weight, grade, vendor, shots, lens) == (
                "sg_weight",
                "sg_grade",
                "sg_vendor",
                "sg_shots",
                "sg_lens",
            )
            schema_path, entity_path = folder / "schema.pickle", folder / "schema_entity.pickle"
            # the client's own helper, as studios run it against their site
            mockgun.generate_schema(sg, str(schema_path), str(entity_path))
            return schema_path, entity_path, sg.schema_read(), sg.schema_entity_read()
        finally:
            sg.close()


@pytest.fixture(scope="module")
def studio_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any, Any]:
    return _studio_site_files(tmp_path_factory.mktemp("studio"))


def test_a_site_on_a_studio_schema_written_by_generate_schema(
    tmp_path: Path, studio_files: tuple[Path, Path, Any, Any]
) -> None:
    # Given the two files generate_schema wrote from a site with custom entities and fields
    schema_path, entity_path, schema, entities = studio_files
    # When a new site starts on them
    with LocalSite(tmp_path / "b.sqlite3", schema=schema_path, schema_entity=entity_path) as site:
        sg = _client(site)
        try:
            # Then it serves the studio's schema as it was read
            assert sg.schema_read() == schema
            assert sg.schema_entity_read() == entities
            assert entities["CustomEntity01"]["name"]["value"] == "Prop Kit"
            # And the custom entities take creates, finds and updates through the client
            project = sg.create("Project", {"name": "Studio"})
            shot = sg.create("Shot", {"code": "sh010", "project": project, "sg_lens": "35mm"})
            vendor = sg.create("CustomNonProjectEntity01", {"code": "Acme"})
            kit = sg.create(
                "CustomEntity01",
                {
                    "code": "kit A",
                    "project": project,
                    "sg_weight": 12,
                    "sg_grade": "B",
                    "sg_vendor": vendor,
                    "sg_shots": [shot],
                },
            )
            fields = ["code", "sg_weight", "sg_grade", "sg_vendor", "sg_shots"]
            found = sg.find_one("CustomEntity01", [["sg_vendor", "is", vendor]], fields)
            assert found["id"] == kit["id"] and found["sg_weight"] == 12
            assert found["sg_vendor"]["name"] == "Acme"
            assert [s["name"] for s in found["sg_shots"]] == ["sh010"]
            sg.update("CustomEntity01", kit["id"], {"sg_grade": "A", "sg_weight": 13})
            heavy = sg.find("CustomEntity01", [["sg_weight", "greater_than", 12]], ["sg_grade"])
            assert [(k["id"], k["sg_grade"]) for k in heavy] == [(kit["id"], "A")]
            by_deep = sg.find("CustomEntity01", [["sg_shots.Shot.sg_lens", "is", "35mm"]])
            assert [k["id"] for k in by_deep] == [kit["id"]]
            # And the studio's rules hold: a list value it does not have is refused
            with pytest.raises(shotgun_api3.Fault, match="valid values"):
                sg.update("CustomEntity01", kit["id"], {"sg_grade": "Z"})
            # And every change is in the event log, for the daemon to read
            events = sg.find(
                "EventLogEntry", [["entity", "is", kit]], ["event_type", "attribute_name"]
            )
            assert ("Shotgun_CustomEntity01_Change", "sg_grade") in {
                (e["event_type"], e["attribute_name"]) for e in events
            }
        finally:
            sg.close()


def _field(data_type: str, name: str, editable: bool = True, **props: Any) -> dict[str, Any]:
    properties = {"default_value": {"value": None, "editable": False}}
    properties.update({k: {"value": v, "editable": True} for k, v in props.items()})
    return {
        "data_type": {"value": data_type, "editable": False},
        "editable": {"value": editable, "editable": False},
        "name": {"value": name, "editable": True},
        "properties": properties,
        "mandatory": {"value": False, "editable": False},
    }


def test_every_field_type_of_a_real_schema_is_stored_and_served(tmp_path: Path) -> None:
    # Given a studio schema (JSON, both results in one file) with types the site has no
    # rule of its own for, and read-only computed ones
    schema = {
        "Shot": {
            "code": _field("text", "Shot Code"),
            "project": _field("entity", "Project", valid_types=["Project"]),
            "sg_budget": _field("currency", "Budget"),
            "sg_done": _field("percent", "Done"),
            "sg_tc_in": _field("timecode", "Timecode In"),
            "sg_feet": _field("footage", "Footage"),
            "sg_task_kind": _field("system_task_type", "Kind"),
            "sg_total": _field("summary", "Total", editable=False),
            "sg_calc": _field("calculated", "Calc", editable=False),
            "sg_link": _field("url_template", "Link Template"),
        },
        "Project": {"name": _field("text", "Project Name")},
    }
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"schema": schema, "schema_entity": {}}))
    # When a site starts on it
    with LocalSite(tmp_path / "s.sqlite3", schema=path) as site:
        sg = _client(site)
        try:
            # Then the replies are the studio's, and the site added what it needs itself
            served = sg.schema_read()
            assert served["Shot"]["sg_task_kind"] == schema["Shot"]["sg_task_kind"]
            assert {"EventLogEntry", "HumanUser", "ApiUser", "Attachment"} <= set(served)
            assert {"id", "created_at", "updated_by"} <= set(served["Shot"])
            # And values of every editable type go in and come back as written
            project = sg.create("Project", {"name": "P"})
            values = {
                "sg_budget": 1250.5,
                "sg_done": 40,
                "sg_tc_in": 86400,
                "sg_feet": "10-05",
                "sg_task_kind": {"kind": "milestone"},
                "sg_link": "https://x.test/{id}",
            }
            shot = sg.create("Shot", {"code": "a", "project": project, **values})
            got = sg.find_one("Shot", [["id", "is", shot["id"]]], [*values, "sg_total"])
            assert {k: got[k] for k in values} == values and got["sg_total"] is None
            # And they filter as a real site filters them
            assert sg.find_one("Shot", [["sg_done", "greater_than", 30]])["id"] == shot["id"]
            assert sg.find_one("Shot", [["sg_feet", "is", "10-05"]])["id"] == shot["id"]
            assert sg.find_one("Shot", [["sg_task_kind", "is", {"kind": "milestone"}]])
            # And read-only computed fields are the site's, not the caller's
            with pytest.raises(shotgun_api3.Fault, match="not editable"):
                sg.update("Shot", shot["id"], {"sg_calc": 3})
            with pytest.raises(shotgun_api3.Fault, match="percent"):
                sg.update("Shot", shot["id"], {"sg_done": "forty"})
        finally:
            sg.close()


class _Hostile:
    """Loading a pickle of this runs a shell command (``__reduce__``)."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_hostile_pickle_is_refused_and_runs_nothing(tmp_path: Path, protocol: int) -> None:
    # Given a schema pickle whose loading would run a command (inside a real-looking schema)
    ran = tmp_path / "ran"
    hostile = tmp_path / "schema.pickle"
    hostile.write_bytes(
        pickle.dumps({"Shot": {"code": _field("text", "Code")}, "x": _Hostile(ran)}, protocol)
    )
    # (it really is hostile: a plain pickle.load in another process runs the command)
    proof = tmp_path / "proof"
    evil = pickle.dumps(_Hostile(proof), protocol)
    subprocess.run(
        [sys.executable, "-c", "import pickle,sys; pickle.loads(sys.stdin.buffer.read())"],
        input=evil,
        check=True,
        timeout=30,
    )
    assert proof.exists()
    # When a site is asked to serve it
    with pytest.raises(SchemaFileError) as refused:
        LocalSite(tmp_path / "s.sqlite3", schema=hostile)
    # Then it is refused in one line naming the file, and nothing ran
    message = str(refused.value)
    assert "\n" not in message and str(hostile) in message and "refused" in message
    assert not ran.exists()


def test_the_site_command_refuses_a_hostile_pickle_in_one_line(tmp_path: Path) -> None:
    # Given a hostile schema_entity file beside a good schema file
    ran = tmp_path / "ran"
    good = tmp_path / "schema.pickle"
    good.write_bytes(pickle.dumps({"Shot": {"code": _field("text", "Code")}}, 2))
    bad = tmp_path / "schema_entity.pickle"
    bad.write_bytes(pickle.dumps({"Shot": _Hostile(ran)}, 2))
    # When the site command is started on them
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shotgun_events.cli",
            "site",
            "--schema",
            str(good),
            "--schema-entity",
            str(bad),
            "--db",
            str(tmp_path / "s.sqlite3"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it exits 2 with one line naming the file, and nothing ran
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "GLOBAL" in lines[0]
    assert not ran.exists() and "serving" not in result.stdout


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (pickle.dumps({"Shot": {"code": {"name": "no data type"}}}, 2), "has no data_type"),
        (pickle.dumps(["not", "a", "schema"], 2), "dict of entity types"),
        (b"\x80\x02}q\x00(X", "not a readable pickle"),
        (b"{not json", "not valid JSON"),
        (pickle.dumps({"Shot": {"code": {"data_type": {"value": b"bytes"}}}}, 3), "BINBYTES"),
    ],
)
def test_broken_schema_files_are_refused_in_one_line(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "schema.bin"
    path.write_bytes(content)
    with pytest.raises(SchemaFileError, match=fragment) as refused:
        LocalSite(tmp_path / "s.sqlite3", schema=path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickles_of_every_protocol_are_read(tmp_path: Path, protocol: int) -> None:
    # Given a schema of plain data pickled with any protocol
    schema = {"Shot": {"code": _field("text", "Code"), "sg_n": _field("number", "N")}}
    path = tmp_path / "schema.pickle"
    path.write_bytes(pickle.dumps(schema, protocol))
    # Then a site serves it as it was written
    with LocalSite(tmp_path / "s.sqlite3", schema=path) as site:
        sg = _client(site)
        try:
            assert sg.schema_field_read("Shot")["sg_n"] == schema["Shot"]["sg_n"]
        finally:
            sg.close()


def test_custom_entities_stay_on_after_a_restart(tmp_path: Path) -> None:
    # Given a site with a custom entity switched on
    db = tmp_path / "s.sqlite3"
    with LocalSite(db) as site:
        site.enable_entity("CustomThreadedEntity03", "Review Thread")
        with pytest.raises(ValueError, match="not a custom entity type"):
            site.enable_entity("Spaceship", "No")
    # When it starts again on the same database
    with LocalSite(db) as site:
        sg = _client(site)
        try:
            # Then the type is there, with its display name and fields
            entities = sg.schema_entity_read()
            assert entities["CustomThreadedEntity03"]["name"]["value"] == "Review Thread"
            thread = sg.create("CustomThreadedEntity03", {"code": "t"}, ["sg_status_list"])
            assert thread["sg_status_list"] == "wtg"
        finally:
            sg.close()
