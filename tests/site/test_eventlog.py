"""The event log a write leaves behind, and the event-id controls."""

from __future__ import annotations

import datetime as dt
from typing import Any

import shotgun_api3

from shotgun_events.site import LocalSite

from .conftest import EVENT_FIELDS, MakeClient


def _events_after(sg: shotgun_api3.Shotgun, last_id: int) -> list[dict[str, Any]]:
    return sg.find("EventLogEntry", [["id", "greater_than", last_id]], EVENT_FIELDS,
                   order=[{"field_name": "id", "direction": "asc"}])


def test_create_logs_new_and_one_change_per_field(site: LocalSite,
                                                  sg: shotgun_api3.Shotgun) -> None:
    # Given the newest event id
    last = site.newest_event_id()
    # When a script creates a shot with a code, a project and two assets
    new = sg.create("Shot", {"code": "NEW", "project": {"type": "Project", "id": 1},
                             "assets": [{"type": "Asset", "id": 1}]})
    events = _events_after(sg, last)
    # Then a _New row comes first, then a _Change per field incl. the status default,
    # then the reverse field of the asset
    kinds = [(e["event_type"], e["attribute_name"]) for e in events]
    assert kinds == [("Shotgun_Shot_New", None), ("Shotgun_Shot_Change", "code"),
                     ("Shotgun_Shot_Change", "project"), ("Shotgun_Shot_Change", "assets"),
                     ("Shotgun_Shot_Change", "sg_status_list"),
                     ("Shotgun_Asset_Change", "shots")]
    first = events[0]
    assert first["meta"] == {"type": "new_entity", "entity_type": "Shot", "entity_id": new["id"]}
    assert first["entity"] == {"type": "Shot", "id": new["id"], "name": "NEW"}
    assert first["user"]["type"] == "ApiUser" and first["project"]["name"] == "Demo"
    assert isinstance(first["created_at"], dt.datetime) and first["created_at"].tzinfo
    status = events[4]["meta"]
    assert status["old_value"] is None and status["new_value"] == "wtg"
    assert status["field_data_type"] == "status_list" and status["in_create"] is True
    assert events[3]["meta"]["added"] == [{"type": "Asset", "id": 1, "name": "hero"}]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_update_logs_old_and_new_values(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a task and the newest event id
    last = site.newest_event_id()
    # When its status, linked step and assignees change (and an unchanged field is sent)
    sg.update("Task", 1, {"sg_status_list": "ip", "step": {"type": "Step", "id": 2},
                          "task_assignees": [{"type": "HumanUser", "id": 3}],
                          "content": "Layout"})
    events = _events_after(sg, last)
    # Then one _Change per changed field carries the old and new values
    by_field = {e["attribute_name"]: e["meta"] for e in events}
    assert set(by_field) == {"sg_status_list", "step", "task_assignees"}
    assert by_field["sg_status_list"]["old_value"] == "fin"
    assert by_field["sg_status_list"]["new_value"] == "ip"
    step = by_field["step"]
    assert step["old_value"] == {"type": "Step", "id": 1, "name": "Layout"}
    assert step["added"] == [{"type": "Step", "id": 2, "name": "Anim"}]
    assert step["removed"] == [{"type": "Step", "id": 1, "name": "Layout"}]
    people = by_field["task_assignees"]
    assert people["field_data_type"] == "multi_entity"
    assert [p["id"] for p in people["added"]] == [3]
    assert [p["id"] for p in people["removed"]] == [1]
    assert all(e["entity"]["id"] == 1 and e["project"]["id"] == 1 for e in events)


def test_retirement_and_revival_events(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a version with events about it
    last = site.newest_event_id()
    # When it is deleted
    sg.delete("Version", 1)
    after_delete = _events_after(sg, last)
    old = sg.find("EventLogEntry", [["entity", "is", {"type": "Version", "id": 1}]],
                  ["entity", "meta"])
    # Then a _Retirement row is written and every event about it shows entity None,
    # while meta still names it
    assert [e["event_type"] for e in after_delete] == ["Shotgun_Version_Retirement"]
    assert after_delete[0]["meta"]["type"] == "entity_retirement"
    assert after_delete[0]["entity"] is None
    assert old and all(e["entity"] is None and e["meta"]["entity_id"] == 1 for e in old)
    # When it is revived, a _Revival row is written and the links come back
    mid = site.newest_event_id()
    sg.revive("Version", 1)
    revival = _events_after(sg, mid)
    assert [e["event_type"] for e in revival] == ["Shotgun_Version_Revival"]
    assert revival[0]["meta"]["type"] == "entity_revival"
    assert revival[0]["entity"]["id"] == 1


def test_sudo_as_login_and_session_uuid(site: LocalSite, make_sg: MakeClient) -> None:
    # Given a script acting as a person, with a session uuid
    sg = make_sg(sudo_as_login="iduarte")
    sg.set_session_uuid("1b6d5a2e-0c0f-4f25-9a7e-2d2a8f3c9e11")
    last = site.newest_event_id()
    # When it changes a shot
    sg.update("Shot", 1, {"sg_status_list": "hld"})
    event = _events_after(sg, last)[0]
    # Then the event names the person and the caller's session; meta names the script
    assert event["user"] == {"type": "HumanUser", "id": 3, "name": "Ines Duarte"}
    assert event["session_uuid"] == "1b6d5a2e-0c0f-4f25-9a7e-2d2a8f3c9e11"
    assert event["meta"]["sudo_actual_user"]["type"] == "ApiUser"


def test_unknown_sudo_login_is_refused(make_sg: MakeClient) -> None:
    # Given a sudo login that does not exist
    sg = make_sg(sudo_as_login="nobody")
    # When a call is made, Then it is an authentication fault
    try:
        sg.find("Shot", [])
    except shotgun_api3.AuthenticationFault as e:
        assert "nobody" in str(e)
    else:
        raise AssertionError("expected AuthenticationFault")


def test_scripts_without_event_generation_leave_no_rows(tmp_path: Any) -> None:
    # Given a site whose scripts do not generate event log entries (a real site's default)
    with LocalSite(tmp_path / "quiet.sqlite3", generate_events=False) as site:
        sg = shotgun_api3.Shotgun(site.url, "shotgun_events", "local")
        try:
            # When the script writes
            sg.create("Project", {"name": "Quiet"})
            # Then no event is logged
            assert site.event_count() == 0
        finally:
            sg.close()


def test_reserved_ids_are_gaps_that_fill_in(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given three reserved ids
    before = site.newest_event_id()
    reserved = site.reserve_event_ids(3)
    # When a write happens while they are still open
    sg.update("Shot", 1, {"sg_status_list": "omt"})
    visible = [e["id"] for e in _events_after(sg, before)]
    # Then the write's event is above the gap, and the gap is not visible
    assert reserved == [before + 1, before + 2, before + 3]
    assert visible == [before + 4]
    # When two are committed and one discarded, the committed ones fill in, dated earlier
    site.commit_reserved(reserved[:2], "Shotgun_Task_Change",
                         entity={"type": "Task", "id": 1, "name": "Layout"})
    site.discard_reserved(reserved[2:])
    events = _events_after(sg, before)
    assert [e["id"] for e in events] == [before + 1, before + 2, before + 4]
    assert events[0]["created_at"] <= events[2]["created_at"]
    assert events[0]["meta"]["entity_type"] == "Task"
    assert site.reserve_event_ids(1) == [before + 5]


def test_append_events_in_bulk(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given the log's head
    head = site.newest_event_id()
    count = site.event_count()
    # When 5,000 synthetic events are appended with a fixed date
    first, last = site.append_events(5000, event_type="Shotgun_Task_Change",
                                     created_at="2024-05-01T10:00:00Z")
    page = sg.find("EventLogEntry", [["id", "greater_than", last - 2]], EVENT_FIELDS)
    # Then they take the next ids and read back like other events
    assert (first, last) == (head + 1, head + 5000)
    assert site.event_count() == count + 5000 and site.newest_event_id() == last
    assert [e["id"] for e in page] == [last - 1, last]
    assert page[0]["event_type"] == "Shotgun_Task_Change"
    assert page[0]["created_at"] == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    assert page[0]["meta"]["entity_type"] == "Task"
