"""create / read / update / delete / revive / batch through the real client."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import shotgun_api3

from .conftest import shot

PROJECT = {"type": "Project", "id": 1}


def _fields_for(type_name: str) -> dict[str, Any]:
    shot1 = {"type": "Shot", "id": 1}
    return {
        "Project": {"name": "Second"},
        "HumanUser": {"name": "Ana Pires", "login": "apires", "email": "apires@example.com"},
        "ApiUser": {"firstname": "other_script", "generate_event_log_entries": True},
        "Step": {"code": "FX", "short_name": "FX", "entity_type": "Shot"},
        "Sequence": {"code": "SQ020", "project": PROJECT},
        "Shot": {"code": "SQ010_0070", "project": PROJECT, "sg_cut_in": 1001,
                 "sg_sequence": {"type": "Sequence", "id": 1}},
        "Asset": {"code": "tree", "sg_asset_type": "Prop", "project": PROJECT},
        "Task": {"content": "FX", "entity": shot1, "project": PROJECT,
                 "start_date": "2025-04-01", "task_assignees": [{"type": "HumanUser", "id": 1}]},
        "Version": {"code": "SQ010_0010_fx_v001", "entity": shot1, "project": PROJECT,
                    "sg_task": {"type": "Task", "id": 1}},
        "Note": {"subject": "Hello", "content": "Body", "project": PROJECT,
                 "note_links": [shot1]},
        "PublishedFile": {"code": "SQ010_0010_comp_v001.exr", "entity": shot1,
                          "version_number": 1, "path": "/show/demo/SQ010_0010.exr",
                          "project": PROJECT},
    }[type_name]


NAME_FIELD = {"Project": "name", "HumanUser": "name", "ApiUser": "firstname", "Step": "code",
              "Sequence": "code", "Shot": "code", "Asset": "code", "Task": "content",
              "Version": "code", "Note": "subject", "PublishedFile": "code"}


@pytest.mark.parametrize("type_name", list(NAME_FIELD))
def test_crud_round_trip_on_every_type(sg: shotgun_api3.Shotgun, type_name: str) -> None:
    # Given data for a new entity of this type
    data = _fields_for(type_name)
    name_field = NAME_FIELD[type_name]
    # When it is created, read, renamed, deleted and revived
    created = sg.create(type_name, data, ["created_at", "created_by"])
    found = sg.find_one(type_name, [["id", "is", created["id"]]], list(data))
    updated = sg.update(type_name, created["id"], {name_field: "renamed"})
    deleted = sg.delete(type_name, created["id"])
    gone = sg.find_one(type_name, [["id", "is", created["id"]]])
    retired = sg.find_one(type_name, [["id", "is", created["id"]]], retired_only=True)
    revived = sg.revive(type_name, created["id"])
    back = sg.find_one(type_name, [["id", "is", created["id"]]], [name_field])
    # Then every step behaves like a real site
    assert created["type"] == type_name and isinstance(created["id"], int)
    assert isinstance(created["created_at"], dt.datetime) and created["created_at"].tzinfo
    assert created["created_by"]["type"] == "ApiUser"
    assert found is not None
    for key, value in data.items():
        if isinstance(value, dict):
            assert {"type": found[key]["type"], "id": found[key]["id"]} == value
            assert "name" in found[key]
        elif isinstance(value, list):
            assert [{"type": v["type"], "id": v["id"]} for v in found[key]] == value
        else:
            assert found[key] == value
    assert updated == {"type": type_name, "id": created["id"], name_field: "renamed"}
    assert deleted is True and gone is None and retired is not None
    assert revived is True and back is not None and back[name_field] == "renamed"
    assert sg.revive(type_name, created["id"]) is False
    assert sg.delete(type_name, created["id"]) is True
    assert sg.delete(type_name, created["id"]) is False


def test_create_applies_server_defaults(sg: shotgun_api3.Shotgun) -> None:
    # Given a Shot created without a status
    # When it is created
    new = sg.create("Shot", {"code": "X", "project": PROJECT}, ["sg_status_list", "updated_at"])
    # Then the schema default is applied and returned
    assert new["sg_status_list"] == "wtg"
    assert new["code"] == "X" and new["project"]["name"] == "Demo"


def test_multi_entity_update_modes(sg: shotgun_api3.Shotgun) -> None:
    # Given a shot with two assets
    target = shot(sg, "SQ010_0010")
    asset = {"type": "Asset", "id": 4}
    # When assets are added, removed and set
    added = sg.update("Shot", target["id"], {"assets": [asset]},
                      multi_entity_update_modes={"assets": "add"})
    removed = sg.update("Shot", target["id"], {"assets": [{"type": "Asset", "id": 1}]},
                        multi_entity_update_modes={"assets": "remove"})
    replaced = sg.update("Shot", target["id"], {"assets": [asset]})
    reverse = sg.find_one("Asset", [["id", "is", 4]], ["shots"])
    # Then the lists follow each mode and the reverse field agrees
    assert [a["id"] for a in added["assets"]] == [1, 3, 4]
    assert [a["id"] for a in removed["assets"]] == [3, 4]
    assert [a["id"] for a in replaced["assets"]] == [4]
    assert reverse is not None and target["id"] in [s["id"] for s in reverse["shots"]]


def test_links_to_retired_entities_are_hidden(sg: shotgun_api3.Shotgun) -> None:
    # Given a task linked to a shot
    # When the shot is retired
    sg.delete("Shot", 1)
    task = sg.find_one("Task", [["id", "is", 1]], ["entity"])
    # Then the link reads as None until the shot is revived
    assert task is not None and task["entity"] is None
    sg.revive("Shot", 1)
    again = sg.find_one("Task", [["id", "is", 1]], ["entity"])
    assert again is not None and again["entity"]["id"] == 1


def test_batch_is_all_or_nothing(sg: shotgun_api3.Shotgun) -> None:
    # Given a batch whose last request is invalid
    before = len(sg.find("Shot", []))
    bad = [
        {"request_type": "create", "entity_type": "Shot", "data": {"code": "B1"}},
        {"request_type": "update", "entity_type": "Shot", "entity_id": 1,
         "data": {"sg_status_list": "ip"}},
        {"request_type": "create", "entity_type": "Shot", "data": {"sg_cut_in": "nope"}},
    ]
    # When it is sent, nothing is applied
    with pytest.raises(shotgun_api3.Fault, match="request 2"):
        sg.batch(bad)
    assert len(sg.find("Shot", [])) == before
    # And a valid batch applies every request in order
    ok = sg.batch([*bad[:2], {"request_type": "delete", "entity_type": "Shot", "entity_id": 2}])
    assert ok[0]["code"] == "B1" and ok[1]["sg_status_list"] == "ip" and ok[2] is True
    assert len(sg.find("Shot", [])) == before


@pytest.mark.parametrize(("data", "message"), [
    ({"sg_cut_in": "ten"}, "number"),
    ({"sg_status_list": "bogus"}, "valid values"),
    ({"sg_sequence": {"type": "Asset", "id": 1}}, "Sequence"),
    ({"sg_sequence": {"type": "Sequence", "id": 999}}, "does not exist"),
    ({"no_such_field": 1}, "no field"),
    ({"tasks": []}, "not editable"),
    ({"code": 5}, "text"),
])
def test_wrong_values_are_faults(sg: shotgun_api3.Shotgun, data: dict[str, Any],
                                 message: str) -> None:
    # Given a write with a bad value
    # When it is sent, Then the client raises Fault with a clear message
    with pytest.raises(shotgun_api3.Fault, match=message):
        sg.create("Shot", {"code": "X", **data} if "code" not in data else data)


def test_unknown_entity_type_and_missing_entity(sg: shotgun_api3.Shotgun) -> None:
    # Given calls naming things that do not exist
    # When they are sent, Then each raises Fault (never a traceback or a hang)
    with pytest.raises(shotgun_api3.Fault, match="Spaceship"):
        sg.find("Spaceship", [])
    with pytest.raises(shotgun_api3.Fault, match="does not exist"):
        sg.update("Shot", 9999, {"code": "x"})
    with pytest.raises(shotgun_api3.Fault, match="does not exist"):
        sg.delete("Shot", 9999)
    assert sg.find_one("Shot", [["id", "is", 1]]) is not None


def test_event_log_entries_can_be_created(sg: shotgun_api3.Shotgun) -> None:
    # Given a custom event written by a script
    # When it is created
    made = sg.create("EventLogEntry", {"event_type": "Studio_Custom_Event",
                                       "description": "hello", "meta": {"k": [1, 2]},
                                       "entity": {"type": "Shot", "id": 1}})
    found = sg.find_one("EventLogEntry", [["id", "is", made["id"]]], ["meta", "entity", "user"])
    # Then it reads back with its meta and the script as user
    assert found is not None and found["meta"] == {"k": [1, 2]}
    assert found["entity"]["name"] == "SQ010_0010" and found["user"]["type"] == "ApiUser"
