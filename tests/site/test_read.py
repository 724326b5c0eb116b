"""find / find_one / summarize: every filter relation, groups, deep paths, sorts, paging."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite

from .conftest import EVENT_FIELDS

SHOT_1 = {"type": "Shot", "id": 1}


def _codes(sg: shotgun_api3.Shotgun, filters: Any, **kw: Any) -> list[str]:
    return [s["code"] for s in sg.find("Shot", filters, ["code"], **kw)]


@pytest.mark.parametrize(("filters", "expected"), [
    ([["code", "is", "SQ010_0010"]], ["SQ010_0010"]),
    ([["code", "is_not", "SQ010_0010"]], ["SQ010_0020", "SQ010_0030", "SQ010_0040",
                                          "SQ010_0050", "SQ010_0060"]),
    ([["sg_cut_out", "less_than", 1001 + 24 * 3]], ["SQ010_0010"]),
    ([["sg_cut_out", "greater_than", 1001 + 24 * 6]], ["SQ010_0060"]),
    ([["sg_status_list", "in", ["fin", "rev"]]], ["SQ010_0010", "SQ010_0020"]),
    ([["sg_status_list", "not_in", ["fin", "rev", "ip"]]], ["SQ010_0050", "SQ010_0060"]),
    ([["sg_cut_out", "between", [1001 + 24 * 3, 1001 + 24 * 4]]], ["SQ010_0020",
                                                                   "SQ010_0030"]),
    ([["code", "contains", "_005"]], ["SQ010_0050"]),
    ([["code", "not_contains", "0_00"]], []),
    ([["code", "starts_with", "SQ010_006"]], ["SQ010_0060"]),
    ([["code", "ends_with", "40"]], ["SQ010_0040"]),
    ([["id", "in", [2, 3]]], ["SQ010_0020", "SQ010_0030"]),
    ([["id", "greater_than", 5]], ["SQ010_0060"]),
    ([["created_at", "in_last", 1, "DAY"]], [f"SQ010_00{i}0" for i in range(1, 7)]),
    ([["created_at", "greater_than", "2100-01-01T00:00:00Z"]], []),
    ([["sg_sequence", "is", {"type": "Sequence", "id": 1}], ["id", "is", 1]], ["SQ010_0010"]),
    ([["sg_sequence", "is", None]], []),
    ([["sg_sequence", "is_not", None], ["id", "less_than", 3]], ["SQ010_0010", "SQ010_0020"]),
    ([["sg_sequence", "name_contains", "Q01"], ["id", "is", 1]], ["SQ010_0010"]),
    ([["sg_sequence", "type_is", "Sequence"], ["id", "is", 2]], ["SQ010_0020"]),
    ([["assets", "is", {"type": "Asset", "id": 4}]], ["SQ010_0020", "SQ010_0040",
                                                      "SQ010_0060"]),
    ([["assets", "in", [{"type": "Asset", "id": 1}, {"type": "Asset", "id": 2}]]],
     [f"SQ010_00{i}0" for i in range(1, 7)]),
    ([["assets", "not_in", [{"type": "Asset", "id": 3}]]], ["SQ010_0020", "SQ010_0040",
                                                            "SQ010_0060"]),
    ([["assets.Asset.code", "is", "street"]], ["SQ010_0010", "SQ010_0030", "SQ010_0050"]),
    ([["sg_sequence.Sequence.code", "starts_with", "SQ"], ["id", "is", 3]], ["SQ010_0030"]),
])
def test_filter_relations(sg: shotgun_api3.Shotgun, filters: Any, expected: list[str]) -> None:
    # Given the seeded shots
    # When they are filtered, Then exactly the matching shots come back, by id
    assert _codes(sg, filters) == expected


def test_nested_and_or_groups(sg: shotgun_api3.Shotgun) -> None:
    # Given a filter: (status fin OR (cut out > X AND code ends with 60)) AND id != 1
    filters = [
        {"filter_operator": "any", "filters": [
            ["sg_status_list", "is", "fin"],
            {"filter_operator": "all", "filters": [
                ["sg_cut_out", "greater_than", 1100], ["code", "ends_with", "60"]]},
        ]},
        ["id", "is_not", 7],
    ]
    # When shots are found with it, and with filter_operator any at the top
    both = _codes(sg, filters)
    either = _codes(sg, [["id", "is", 2], ["id", "is", 3]], filter_operator="any")
    # Then the groups combine like a real site's
    assert both == ["SQ010_0010", "SQ010_0060"]
    assert either == ["SQ010_0020", "SQ010_0030"]


def test_linked_and_deep_filters_on_tasks(sg: shotgun_api3.Shotgun) -> None:
    # Given tasks linked to shots and steps
    # When tasks are found by linked entity, by a deep field, and by deep id
    by_entity = sg.find("Task", [["entity", "is", SHOT_1]], ["content"])
    by_deep = sg.find("Task", [["entity.Shot.code", "is", "SQ010_0010"],
                               ["step.Step.code", "is", "Comp"]], ["content", "entity.Shot.code"])
    by_user = sg.find("Task", [["task_assignees", "is", {"type": "HumanUser", "id": 1}]])
    # Then each returns the right tasks, and deep return fields are filled in
    assert [t["content"] for t in by_entity] == ["Layout", "Anim", "Light", "Comp"]
    assert by_deep == [{"type": "Task", "id": 4, "content": "Comp",
                        "entity.Shot.code": "SQ010_0010"}]
    assert len(by_user) == 6


def test_sorts_with_several_keys(sg: shotgun_api3.Shotgun) -> None:
    # Given tasks with repeated contents and statuses
    order = [{"field_name": "content", "direction": "desc"},
             {"field_name": "entity", "direction": "asc"},
             {"field_name": "no_such_field", "direction": "asc"}]
    # When they are sorted by content desc then linked entity name asc
    tasks = sg.find("Task", [["id", "less_than", 9]], ["content", "entity"], order=order)
    # Then the order follows both keys (the unknown one is ignored)
    got = [(t["content"], t["entity"]["name"]) for t in tasks]
    expected = sorted(sorted(got, key=lambda x: x[1]), key=lambda x: x[0], reverse=True)
    assert got == expected and got[0] == ("Light", "SQ010_0010")


def test_in_next_on_dates(sg: shotgun_api3.Shotgun) -> None:
    # Given one task due tomorrow (the seeded ones were due in the past)
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    sg.update("Task", 2, {"due_date": tomorrow})
    # When tasks due in the next two days are found
    soon = sg.find("Task", [["due_date", "in_next", 2, "DAY"]])
    # Then only that task matches
    assert [t["id"] for t in soon] == [2]


def test_paging_with_limit_zero_over_many_rows(site: LocalSite,
                                               sg: shotgun_api3.Shotgun) -> None:
    # Given more than two pages of events in the log
    site.append_events(1200)
    total = site.event_count()
    site.reset_counts()
    # When all events are read with limit 0, and 10 with a limit
    every = sg.find("EventLogEntry", [], ["id"])
    ten = sg.find("EventLogEntry", [["id", "greater_than", 100]], EVENT_FIELDS, limit=10)
    page3 = sg.find("EventLogEntry", [], ["id"], limit=7, page=3)
    # Then the client pages with has_next_page and current_page, and limit reads once
    assert len(every) == total and [e["id"] for e in every] == sorted(e["id"] for e in every)
    assert site.call_counts()["read"] == -(-total // 500) + 2
    assert [e["id"] for e in ten] == list(range(101, 111))
    assert [e["id"] for e in page3] == list(range(15, 22))


def test_return_only_retired(sg: shotgun_api3.Shotgun) -> None:
    # Given one retired shot
    sg.delete("Shot", 3)
    # When active and retired shots are found
    active = _codes(sg, [])
    retired = _codes(sg, [], retired_only=True)
    # Then each list holds only its kind
    assert "SQ010_0030" not in active and retired == ["SQ010_0030"]


def test_summarize(sg: shotgun_api3.Shotgun) -> None:
    # Given the seeded shots
    # When they are summarized, grouped by status
    result = sg.summarize("Shot", [["id", "less_than", 4]],
                          [{"field": "id", "type": "count"},
                           {"field": "sg_cut_out", "type": "sum"},
                           {"field": "sg_cut_in", "type": "minimum"}],
                          grouping=[{"field": "sg_status_list", "type": "exact",
                                     "direction": "asc"}])
    # Then totals and groups are computed
    assert result["summaries"] == {"id": 3, "sg_cut_out": 3 * 1001 + 24 * 9,
                                   "sg_cut_in": 1001}
    assert [g["group_name"] for g in result["groups"]] == ["fin", "ip", "rev"]


@pytest.mark.parametrize(("filters", "message"), [
    ([["no_field", "is", 1]], "no field"),
    ([["code", "sounds_like", "x"]], "sounds_like"),
    ([["sg_cut_in", "is", "ten"]], "number"),
    ([["sg_sequence", "is", "SQ010"]], "entity"),
    ([["assets.Spaceship.code", "is", "x"]], "Spaceship"),
    ([["code", "less_than", None]], "less_than"),
])
def test_bad_filters_are_faults(sg: shotgun_api3.Shotgun, filters: Any, message: str) -> None:
    # Given a filter naming an unknown field, relation or a wrong value type
    # When it is used, Then the client raises Fault naming the problem
    with pytest.raises(shotgun_api3.Fault, match=message):
        sg.find("Shot", filters)


def test_meta_cannot_be_filtered(sg: shotgun_api3.Shotgun) -> None:
    # Given the event log
    # When meta is used in a filter, Then the site refuses like a real one
    with pytest.raises(shotgun_api3.Fault, match="serializable"):
        sg.find("EventLogEntry", [["meta", "is", None]])
