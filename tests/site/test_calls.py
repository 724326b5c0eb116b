"""Calls beyond CRUD a real site answers: search, activity, schedule, pages, preferences."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import shotgun_api3

from shotgun_events.site.prefs import PREFERENCES

from .conftest import MakeClient

PROJECT = {"type": "Project", "id": 1}


def test_text_search_matches_every_word_of_names(sg: shotgun_api3.Shotgun) -> None:
    # Given shots and assets named alike, and one in another project
    other = sg.create("Project", {"name": "Elsewhere"})
    for n in range(3):
        sg.create("Shot", {"code": f"Harbor Night {n}", "project": PROJECT})
        sg.create("Asset", {"code": f"harbor night prop {n}", "project": PROJECT})
    sg.create("Shot", {"code": "Harbor Night far", "project": other})
    # When the words are searched for, in any case and order
    result = sg.text_search("NIGHT harbor", {"Shot": [], "Asset": []}, project_ids=[1])
    # Then the terms come back lower-cased, and every match holds both words
    assert result["terms"] == ["night", "harbor"]
    names = [(m["type"], m["name"]) for m in result["matches"]]
    assert names == [("Shot", f"Harbor Night {n}") for n in range(3)] + [
        ("Asset", f"harbor night prop {n}") for n in range(3)
    ]
    assert {m["project_id"] for m in result["matches"]} == {1}
    assert all(m["image"] is None and m["links"] == ["", ""] for m in result["matches"])
    # And per-type filters and the limit apply
    some = sg.text_search(
        "harbor night", {"Shot": [["code", "ends_with", "1"]], "Asset": []}, limit=2
    )
    assert [m["name"] for m in some["matches"]] == ["Harbor Night 1", "harbor night prop 0"]
    # And a Task match names what it is linked to, with its status
    task = sg.text_search("Layout", {"Task": [["entity.Shot.code", "is", "SQ010_0010"]]})
    (layout,) = task["matches"]
    assert layout["links"] == ["Shot", "SQ010_0010"] and layout["status"] == "fin"
    # And fewer than three characters is refused, as on a real site
    with pytest.raises(shotgun_api3.Fault, match="at least 3 characters"):
        sg.text_search("ab", {"Shot": []})


def test_activity_stream_from_the_event_log(sg: shotgun_api3.Shotgun) -> None:
    # Given a new shot, a note on it, and a status change
    shot = sg.create("Shot", {"code": "stream", "project": PROJECT})
    note = sg.create("Note", {"content": "hi", "project": PROJECT, "note_links": [shot]})
    sg.update("Shot", shot["id"], {"sg_status_list": "ip"})
    # When its activity stream is read
    stream = sg.activity_stream_read("Shot", shot["id"], entity_fields={"Note": ["content"]})
    # Then it lists the change, the note and the creation, newest first
    updates = stream["updates"]
    kinds = [(u["update_type"], u["primary_entity"]["type"]) for u in updates]
    assert kinds == [("update", "Shot"), ("create", "Note"), ("create", "Shot")]
    assert updates[0]["meta"]["attribute_name"] == "sg_status_list"
    assert updates[0]["meta"]["new_value"] == "ip"
    assert updates[0]["primary_entity"]["status"] == "ip"
    assert updates[1]["primary_entity"] == {
        "type": "Note",
        "id": note["id"],
        "name": None,
        "status": None,
        "content": "hi",
    }
    assert updates[2]["created_by"]["type"] == "ApiUser"
    assert updates[2]["created_at"].endswith(" UTC")
    ids = [u["id"] for u in updates]
    assert stream["latest_update_id"] == max(ids) and stream["earliest_update_id"] == min(ids)
    # And limit and max_id page through it
    assert [u["id"] for u in sg.activity_stream_read("Shot", shot["id"], limit=1)["updates"]] == [
        ids[0]
    ]
    older = sg.activity_stream_read("Shot", shot["id"], max_id=ids[1])["updates"]
    assert [u["id"] for u in older] == ids[1:]


def test_activity_stream_is_empty_without_event_log_entries(make_sg: MakeClient) -> None:
    # Given a script whose ApiUser does not generate event log entries (a real site's default)
    sg = make_sg()
    api_user = sg.find_one("ApiUser", [["firstname", "is", "shotgun_events"]], ["id"])
    shot = sg.create("Shot", {"code": "quiet", "project": PROJECT})
    sg.update("ApiUser", api_user["id"], {"generate_event_log_entries": False})
    sg.update("Shot", shot["id"], {"sg_status_list": "ip"})
    # Then only what was logged shows
    updates = sg.activity_stream_read("Shot", shot["id"])["updates"]
    assert [u["update_type"] for u in updates] == ["create"]


def test_preferences(sg: shotgun_api3.Shotgun) -> None:
    # Then all preferences, or those asked for (unknown names left out), come back
    assert sg.preferences_read() == PREFERENCES
    assert sg.preferences_read(["duration_units", "nope"]) == {"duration_units": "days"}


def test_work_schedule_exceptions_by_studio_project_and_person(sg: shotgun_api3.Shotgun) -> None:
    # Given a person and the studio's week (Monday 2030-01-07 .. Sunday 2030-01-13)
    user = sg.find_one("HumanUser", [["login", "is", "mokafor"]], ["name"])
    week = sg.work_schedule_read("2030-01-07", "2030-01-13", PROJECT, user)
    assert [d["working"] for d in week.values()] == [True] * 5 + [False] * 2
    assert {d["reason"] for d in week.values()} == {"STUDIO_WORK_WEEK"}
    # When the studio, the project and the person each get a day off (the person's twice)
    sg.work_schedule_update("2030-01-07", False, "Studio day")
    sg.work_schedule_update("2030-01-08", False, "Project day", project=PROJECT)
    sg.work_schedule_update("2030-01-09", False, "first", user=user)
    reply = sg.work_schedule_update("2030-01-09", False, "Person day", user=user)
    sg.work_schedule_update("2030-01-12", True, "Saturday shoot")
    # Then each day says why, the most specific rule winning, and an update replaces
    assert reply == {
        "date": "2030-01-09",
        "description": "Person day",
        "project": None,
        "user": user,
        "working": False,
    }
    days = sg.work_schedule_read("2030-01-07", "2030-01-13", PROJECT, user)
    assert days["2030-01-07"]["reason"] == "STUDIO_EXCEPTION"
    assert days["2030-01-08"]["reason"] == "PROJECT_EXCEPTION"
    assert days["2030-01-09"] == {
        "reason": "USER_EXCEPTION",
        "working": False,
        "description": "Person day",
    }
    assert days["2030-01-12"]["working"] is True
    # And without the project and person, only the studio's rules apply
    studio = sg.work_schedule_read("2030-01-07", "2030-01-09")
    assert [d["reason"] for d in studio.values()] == [
        "STUDIO_EXCEPTION",
        "STUDIO_WORK_WEEK",
        "STUDIO_WORK_WEEK",
    ]
    # And the rules are WorkDayRule entities (one per date and scope)
    assert len(sg.find("WorkDayRule", [["date", "is", "2030-01-09"]])) == 1
    # And wrong arguments are refused
    with pytest.raises(shotgun_api3.ShotgunError):
        sg.work_schedule_read(datetime.date(2030, 1, 1), "2030-01-02")  # type: ignore[arg-type]
    with pytest.raises(shotgun_api3.Fault, match="not both"):
        sg.work_schedule_update("2030-01-10", False, project=PROJECT, user=user)
    with pytest.raises(shotgun_api3.Fault, match="YYYY-MM-DD"):
        sg.work_schedule_read("2030-13-01", "2030-13-02")


def test_builtin_pages_and_export_page(sg: shotgun_api3.Shotgun) -> None:
    # Then a new site has pages, each with the time it was last opened
    pages = sg.find("Page", [], ["name", "last_accessed"])
    assert {p["name"] for p in pages} >= {"Home", "Inbox", "My Tasks", "Media"}
    assert all(isinstance(p["last_accessed"], datetime.datetime) for p in pages)
    # When a page is created, it is stamped too, and it cannot be exported from here
    page = sg.create("Page", {"entity_type": "Shot"}, ["last_accessed"])
    assert isinstance(page["last_accessed"], datetime.datetime)
    with pytest.raises(shotgun_api3.Fault, match=f"Export for Page id={page['id']} not available"):
        sg.export_page(page["id"], "csv")
    with pytest.raises(shotgun_api3.Fault, match="'format' missing"):
        sg.export_page(page["id"], None)
    with pytest.raises(shotgun_api3.Fault, match="'page_id' missing"):
        sg.export_page(None, "csv")
    # And last_accessed is the site's to keep
    with pytest.raises(shotgun_api3.Fault, match="not editable"):
        sg.update("Page", page["id"], {"last_accessed": datetime.datetime.now()})


def test_archived_projects_are_left_out_when_asked(sg: shotgun_api3.Shotgun) -> None:
    # Given the demo project archived
    shot = sg.find_one("Shot", [["code", "is", "SQ010_0010"]])
    sg.update("Project", 1, {"archived": True})
    summary: dict[str, Any] = {"field": "id", "type": "count"}
    # Then reads include it by default and leave it and its entities out when asked
    assert sg.find_one("Shot", [["id", "is", shot["id"]]]) is not None
    assert sg.find_one("Shot", [["id", "is", shot["id"]]], include_archived_projects=False) is None
    assert sg.find("Project", [["id", "is", 1]], include_archived_projects=False) == []
    counted = sg.summarize("Shot", [], [summary], include_archived_projects=False)
    assert counted["summaries"]["id"] == 0
    assert sg.summarize("Shot", [], [summary])["summaries"]["id"] == 6


def test_uuid_fields_are_stamped_and_filter_with_in(sg: shotgun_api3.Shotgun) -> None:
    # Given a storage: the site gives it a uuid, which is not the caller's to set
    storage = sg.create("LocalStorage", {"code": "s"}, ["uuid"])
    assert len(storage["uuid"]) == 36
    with pytest.raises(shotgun_api3.Fault, match="not editable"):
        sg.update("LocalStorage", storage["id"], {"uuid": storage["uuid"]})
    # Then in / not_in find it by uuid
    found = sg.find("LocalStorage", [["uuid", "in", [storage["uuid"]]]])
    assert [s["id"] for s in found] == [storage["id"]]
    assert sg.find("LocalStorage", [["uuid", "not_in", [storage["uuid"]]]]) == []


def test_entity_type_fields_name_a_type(sg: shotgun_api3.Shotgun) -> None:
    # Then a Step's entity type must be a type of the site
    step = sg.create("Step", {"code": "FX", "entity_type": "Shot"}, ["entity_type"])
    assert step["entity_type"] == "Shot"
    with pytest.raises(shotgun_api3.Fault, match="is not an entity type"):
        sg.update("Step", step["id"], {"entity_type": "Spaceship"})
