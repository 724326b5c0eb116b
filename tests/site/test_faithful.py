"""Site behaviours plugins use every day, through the real shotgun_api3 client (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite

from .conftest import EVENT_FIELDS, MakeClient

PROJECT = {"type": "Project", "id": 1}


def _events_after(sg: shotgun_api3.Shotgun, last: int) -> list[dict[str, Any]]:
    return sg.find("EventLogEntry", [["id", "greater_than", last]], EVENT_FIELDS)


def _newest(sg: shotgun_api3.Shotgun) -> int:
    row = sg.find_one(
        "EventLogEntry", [], ["id"], order=[{"field_name": "id", "direction": "desc"}]
    )
    return int(row["id"])


def test_follow_unfollow_followers_following(sg: shotgun_api3.Shotgun) -> None:
    # Given a user and two entities of the demo project
    user = sg.find_one("HumanUser", [["login", "is", "mokafor"]], ["name"])
    shot = sg.find_one("Shot", [["code", "is", "SQ010_0010"]], ["code"])
    task = sg.find_one("Task", [["entity", "is", shot]], ["content"])
    # When the user follows both
    reply = sg.follow(user, shot)
    sg.follow(user, task)
    sg.follow(user, shot)  # twice is once
    # Then the site says so, each way
    assert reply["followed"] is True and reply["entity"]["id"] == shot["id"]
    assert [u["id"] for u in sg.followers(shot)] == [user["id"]]
    assert {(e["type"], e["id"]) for e in sg.following(user)} == {
        ("Shot", shot["id"]),
        ("Task", task["id"]),
    }
    assert [e["type"] for e in sg.following(user, entity_type="Task")] == ["Task"]
    assert len(sg.following(user, project=PROJECT)) == 2
    # When the user unfollows the shot
    assert sg.unfollow(user, shot)["unfollowed"] is True
    # Then only the task is left
    assert sg.followers(shot) == []
    assert [e["type"] for e in sg.following(user)] == ["Task"]
    # And a missing entity is refused like a real site refuses it
    with pytest.raises(shotgun_api3.Fault, match="does not exist"):
        sg.follow(user, {"type": "Shot", "id": 99999})


def test_standard_fields_and_their_types(sg: shotgun_api3.Shotgun) -> None:
    # Given the schema
    task_fields = sg.schema_field_read("Task")
    # Then the standard fields exist with their real data types
    assert task_fields["color"]["data_type"]["value"] == "color"
    assert task_fields["duration"]["data_type"]["value"] == "duration"
    assert task_fields["tag_list"]["data_type"]["value"] == "tag_list"
    version = sg.schema_field_read("Version")
    assert version["sg_frames_aspect_ratio"]["data_type"]["value"] == "float"
    assert version["sg_movie_aspect_ratio"]["data_type"]["value"] == "float"
    human = sg.schema_field_read("HumanUser")
    assert {"projects", "locked_until", "email_notes", "password_proxy"} <= set(human)
    assert "sg_note_type" in sg.schema_field_read("Note")
    assert {"head_in", "sg_cut_duration"} <= set(sg.schema_field_read("Shot"))
    assert sg.schema_field_read("Project")["archived"]["data_type"]["value"] == "checkbox"
    # When values of each new type are written
    task = sg.find_one("Task", [], ["id"])
    last = _newest(sg)
    sg.update(
        "Task", task["id"], {"color": "255,0,0", "duration": 480, "tag_list": ["urgent", "cfx"]}
    )
    v = sg.find_one("Version", [], ["id"])
    sg.update("Version", v["id"], {"sg_frames_aspect_ratio": 2.39, "sg_movie_aspect_ratio": 1.78})
    # Then they read back typed, can be filtered on, and were logged
    got = sg.find_one("Task", [["id", "is", task["id"]]], ["color", "duration", "tag_list"])
    assert got["color"] == "255,0,0" and got["duration"] == 480
    assert got["tag_list"] == ["urgent", "cfx"]
    assert [t["id"] for t in sg.find("Task", [["tag_list", "is", "cfx"]])] == [task["id"]]
    assert sg.find("Task", [["tag_list", "is", "nope"]]) == []
    ratio = sg.find_one("Version", [["sg_frames_aspect_ratio", "greater_than", 2.0]], ["id"])
    assert ratio["id"] == v["id"]
    changes = [e for e in _events_after(sg, last) if e["event_type"] == "Shotgun_Task_Change"]
    tags = next(e for e in changes if e["attribute_name"] == "tag_list")
    assert tags["meta"]["new_value"] == ["urgent", "cfx"]
    assert tags["meta"]["field_data_type"] == "tag_list"
    # And wrong values get the real site's kind of error
    with pytest.raises(shotgun_api3.Fault, match="color"):
        sg.update("Task", task["id"], {"color": "reddish"})
    with pytest.raises(shotgun_api3.Fault, match="tag_list"):
        sg.update("Task", task["id"], {"tag_list": "urgent"})


def test_playlist_and_local_storage(sg: shotgun_api3.Shotgun) -> None:
    # When a playlist of two versions and a storage are created
    versions = sg.find("Version", [], ["id"], limit=2)
    playlist = sg.create("Playlist", {"code": "dailies", "project": PROJECT, "versions": versions})
    storage = sg.create("LocalStorage", {"code": "primary", "linux_path": "/mnt/proj"})
    # Then they read back with their links, and playlists are found through versions
    got = sg.find_one("Playlist", [["id", "is", playlist["id"]]], ["versions", "locked"])
    assert [x["id"] for x in got["versions"]] == [x["id"] for x in versions]
    assert got["locked"] is False
    assert sg.find("Playlist", [["versions", "is", versions[0]]])[0]["id"] == playlist["id"]
    assert sg.find_one("LocalStorage", [["code", "is", "primary"]], ["linux_path"]) == {
        "type": "LocalStorage",
        "id": storage["id"],
        "linux_path": "/mnt/proj",
    }


def test_schema_field_create_adds_a_field_logs_it_and_survives_a_restart(
    site: LocalSite, make_sg: MakeClient
) -> None:
    # Given a client
    sg = make_sg()
    last = _newest(sg)
    # When a field is created
    name = sg.schema_field_create("Shot", "float", "Lens Squeeze", {"description": "anamorphic"})
    # Then it can be written and read, and the event log has the row a real site writes
    assert name == "sg_lens_squeeze"
    assert sg.schema_field_read("Shot", name)[name]["data_type"]["value"] == "float"
    shot = sg.find_one("Shot", [], ["id"])
    sg.update("Shot", shot["id"], {name: 2.0})
    (new,) = [e for e in _events_after(sg, last) if e["event_type"].startswith("Shotgun_Display")]
    assert new["event_type"] == "Shotgun_DisplayColumn_New"
    assert new["meta"]["type"] == "new_entity" and new["meta"]["entity_type"] == "DisplayColumn"
    # When the site restarts on the same database
    path = site.db_path
    sg.close()
    site.stop()
    with LocalSite(path) as again:
        sg2 = shotgun_api3.Shotgun(again.url, "shotgun_events", "local")
        # Then the field and its value are still there
        assert sg2.find_one("Shot", [["id", "is", shot["id"]]], [name])[name] == 2.0
        with pytest.raises(shotgun_api3.Fault, match="data_type"):
            sg2.schema_field_create("Shot", "hologram", "Nope")
        sg2.close()


def test_password_proxy_is_accepted_and_never_kept(sg: shotgun_api3.Shotgun) -> None:
    # Given the official client's own test set-up: a human user with a password
    last = _newest(sg)
    user = sg.create(
        "HumanUser",
        {"login": "api_test", "name": "Api Test", "password_proxy": "hunter2-long"},
    )
    sg.update("HumanUser", user["id"], {"password_proxy": "another-one"})
    # Then the user exists, the password is neither returned nor logged
    got = sg.find_one("HumanUser", [["id", "is", user["id"]]], ["login", "password_proxy"])
    assert got["login"] == "api_test" and got["password_proxy"] is None
    logged = _events_after(sg, last)
    assert logged and all(e["attribute_name"] != "password_proxy" for e in logged)
    assert "hunter2" not in repr(logged)
