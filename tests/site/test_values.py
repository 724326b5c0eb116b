"""The value rules a real site applies, per data type, through the real client (issues 21, 24)."""

from __future__ import annotations

import pytest
import shotgun_api3

from .conftest import MakeClient


@pytest.fixture
def task(sg: shotgun_api3.Shotgun) -> dict[str, object]:
    found = sg.find_one("Task", [["content", "is", "Layout"]], ["color"])
    assert found is not None
    return found


@pytest.mark.parametrize("color", ["Black", "green", "pipeline_step", "222,0,0", "0,0,255"])
def test_colour_fields_take_names_rgb_and_pipeline_step(
    sg: shotgun_api3.Shotgun, task: dict[str, object], color: str
) -> None:
    # Given a Task (its Gantt bar colour is a color field)
    # When a colour a real site accepts is written
    sg.update("Task", task["id"], {"color": color})
    # Then it reads back as written and can be filtered on, named colours included
    got = sg.find_one("Task", [["id", "is", task["id"]]], ["color"])
    assert got["color"] == color
    found = sg.find("Task", [["color", "in", [color, "Green"]], ["id", "is", task["id"]]])
    assert [t["id"] for t in found] == [task["id"]]


def test_a_new_task_with_a_named_colour_is_created(sg: shotgun_api3.Shotgun) -> None:
    # Given the set-up the official client's live suite runs (its Task is "Black")
    project = sg.find_one("Project", [], ["name"])
    # When such a Task is created
    task = sg.create("Task", {"project": project, "content": "paint", "color": "Black"}, ["color"])
    # Then the site took it
    assert task["color"] == "Black"


@pytest.mark.parametrize("color", ["256,0,0", "1,2", "not a colour", "", 7])
def test_colours_a_real_site_refuses(
    sg: shotgun_api3.Shotgun, task: dict[str, object], color: object
) -> None:
    # When a value no colour picker can make is written, it is refused naming the field
    with pytest.raises(shotgun_api3.Fault, match=r"Task\.color is a color field"):
        sg.update("Task", task["id"], {"color": color})


@pytest.mark.parametrize(
    ("entity_type", "field", "bad"),
    [
        ("Task", "due_date", "2024-02-30"),  # no such day
        ("Task", "due_date", "2024-2-3"),
        ("HumanUser", "locked_until", "2024-01-01 10:00:00"),
        ("Task", "duration", 1.5),
        ("Task", "duration", True),
        ("Version", "sg_movie_aspect_ratio", "wide"),
        ("HumanUser", "email_notes", 1),
        ("Task", "tag_list", "urgent"),
        ("Shot", "head_in", "1001"),
    ],
)
def test_each_type_refuses_values_of_another_type(
    sg: shotgun_api3.Shotgun, entity_type: str, field: str, bad: object
) -> None:
    # Given an entity of the type
    entity = sg.find_one(entity_type, [], ["id"])
    # When a value of the wrong shape is written, the site refuses it (a Fault naming it)
    with pytest.raises(shotgun_api3.Fault, match=rf"{entity_type}\.{field}"):
        sg.update(entity_type, entity["id"], {field: bad})


def test_text_equality_ignores_case_like_a_real_site(make_sg: MakeClient) -> None:
    # Given a shot code in upper case
    sg = make_sg()
    # When it is looked for in another case (is / in)
    found = sg.find("Shot", [["code", "is", "sq010_0010"]], ["code"])
    listed = sg.find("Shot", [["code", "in", ["sq010_0020", "nothing"]]], ["code"])
    # Then it is found, as a real site finds it
    assert [s["code"] for s in found] == ["SQ010_0010"]
    assert [s["code"] for s in listed] == ["SQ010_0020"]
