"""additional_filter_presets as a real site documents them, through the real client."""

from __future__ import annotations

from typing import Any

import pytest
import shotgun_api3

PROJECT = {"type": "Project", "id": 1}
LATEST = {"preset_name": "LATEST", "latest_by": "ENTITIES_CREATED_AT"}
BY_STEP = {
    "preset_name": "LATEST",
    "latest_by": "BY_PIPELINE_STEP_NUMBER_AND_ENTITIES_CREATED_AT",
}


def _version(sg: shotgun_api3.Shotgun, code: str, shot: Any, task: Any) -> dict[str, Any]:
    return sg.create("Version", {"code": code, "entity": shot, "sg_task": task, "project": PROJECT})


@pytest.fixture
def shot_versions(sg: shotgun_api3.Shotgun) -> dict[str, Any]:
    """A shot whose Layout has two more versions and whose Comp (the last step) has one."""
    shot = sg.find_one("Shot", [["code", "is", "SQ010_0060"]], ["id"])
    tasks = {t["content"]: t for t in sg.find("Task", [["entity", "is", shot]], ["content"])}
    made = {
        "comp": _version(sg, "comp_v001", shot, tasks["Comp"]),
        "lay2": _version(sg, "lay_v002", shot, tasks["Layout"]),
        "lay3": _version(sg, "lay_v003", shot, tasks["Layout"]),
    }
    return {"shot": shot, **made}


def test_latest_is_the_newest_match_per_entity(
    sg: shotgun_api3.Shotgun, shot_versions: dict[str, Any]
) -> None:
    # Given a shot's versions, lay_v003 created last
    shot = shot_versions["shot"]
    # When the latest by creation is asked for
    latest = sg.find(
        "Version", [["entity", "is", shot]], ["code"], additional_filter_presets=[LATEST]
    )
    # Then it is the newest one
    assert [v["code"] for v in latest] == ["lay_v003"]
    # And the preset works on what the filters found: an older version asked for by id
    # is the latest of that one-version match (the official client's suite relies on it)
    older = shot_versions["lay2"]
    found = sg.find(
        "Version", [["id", "is", older["id"]]], ["code"], additional_filter_presets=[LATEST]
    )
    assert [v["id"] for v in found] == [older["id"]]


def test_latest_by_step_prefers_the_farthest_step_then_the_newest(
    sg: shotgun_api3.Shotgun, shot_versions: dict[str, Any]
) -> None:
    # Given the shot's versions: Layout (step order 1) newest, Comp (order 4) older
    shot = shot_versions["shot"]
    # When the latest by pipeline step is asked for
    found = sg.find(
        "Version", [["entity", "is", shot]], ["code"], additional_filter_presets=[BY_STEP]
    )
    # Then the Comp version wins: the farthest along in the pipeline
    assert [v["code"] for v in found] == ["comp_v001"]
    # And among Layout versions only, the newest
    layout = sg.find(
        "Version",
        [["entity", "is", shot], ["code", "starts_with", "lay_"]],
        ["code"],
        additional_filter_presets=[BY_STEP],
    )
    assert [v["code"] for v in layout] == ["lay_v003"]


def test_cut_presets(sg: shotgun_api3.Shotgun) -> None:
    # Given two revisions of a cut whose items name two shots
    shots = sg.find("Shot", [["code", "in", ["SQ010_0010", "SQ010_0020"]]], ["code"])
    cut1 = sg.create("Cut", {"code": "edit", "revision_number": 1, "project": PROJECT})
    cut2 = sg.create("Cut", {"code": "edit", "revision_number": 2, "project": PROJECT})
    for n, s in enumerate(shots):
        sg.create("CutItem", {"code": f"item{n}", "cut": cut2, "shot": s, "project": PROJECT})
    # When the latest revision is asked for
    latest = sg.find(
        "Cut",
        [["code", "is", "edit"]],
        ["revision_number"],
        additional_filter_presets=[{"preset_name": "LATEST", "latest_by": "REVISION_NUMBER"}],
    )
    # Then it is revision 2, and the cut's shot versions are those of its items' shots
    assert [c["id"] for c in latest] == [cut2["id"]]
    cut_versions = sg.find(
        "Version",
        [],
        ["entity"],
        additional_filter_presets=[{"preset_name": "CUT_SHOT_VERSIONS", "cut_id": cut2["id"]}],
    )
    expected = sg.find("Version", [["entity", "in", shots]], ["entity"])
    assert sorted(v["id"] for v in cut_versions) == sorted(v["id"] for v in expected)
    assert expected  # the seeded shots have versions
    empty = sg.find(
        "Version",
        [],
        additional_filter_presets=[{"preset_name": "CUT_SHOT_VERSIONS", "cut_id": cut1["id"]}],
    )
    assert empty == []


@pytest.mark.parametrize(
    ("entity_type", "presets", "fragment"),
    [
        ("Version", [{"preset_name": "NEWEST"}], "preset_name"),
        ("Version", [{}], "preset_name"),
        ("Version", [3], "list of objects"),
        ("Version", [{"preset_name": "LATEST", "latest_by": "ENTITY_CREATED_AT"}], "latest_by"),
        ("Shot", [LATEST], "not supported for Shot"),
        ("Cut", [LATEST], "latest_by"),
        ("Version", [{"preset_name": "CUT_SHOT_VERSIONS"}], "cut_id"),
    ],
)
def test_presets_a_site_does_not_have_are_faults(
    sg: shotgun_api3.Shotgun, entity_type: str, presets: list[Any], fragment: str
) -> None:
    # When a preset is misnamed or misused, the read fails; it is never ignored
    with pytest.raises(shotgun_api3.Fault, match=fragment):
        sg.find(entity_type, [], additional_filter_presets=presets)
