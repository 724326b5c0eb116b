"""matchEvents rules (compatibility.md "matchEvents"), compiled by registrar.compile_match."""

from __future__ import annotations

import logging
import re
import timeit
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.errors import PluginError
from shotgun_events.plugins.matching import compile_match
from shotgun_events.plugins.registrar import Registrar
from shotgun_events.testing import make_event

STATUS_CHANGE = make_event("Shotgun_Task_Change", "sg_status_list")
DESC_CHANGE = make_event("Shotgun_Task_Change", "description")
TASK_NEW = make_event("Shotgun_Task_New")
TASK_RETIRED = make_event("Shotgun_Task_Retirement")
SHOT_STATUS = make_event("Shotgun_Shot_Change", "sg_status_list")
SHOT_NEW = make_event("Shotgun_Shot_New")
ALL_EVENTS = [STATUS_CHANGE, DESC_CHANGE, TASK_NEW, TASK_RETIRED, SHOT_STATUS, SHOT_NEW]


def matched(match_events: Any) -> list[dict[str, Any]]:
    match = compile_match(match_events)
    return [e for e in ALL_EVENTS if match(e)]


@pytest.mark.parametrize("falsy", [None, {}, [], "", 0])
def test_falsy_matches_every_event(falsy: Any) -> None:
    # Given a falsy matchEvents / When matching / Then every event matches
    assert matched(falsy) == ALL_EVENTS


def test_event_type_must_be_a_key() -> None:
    # Given only Shot changes of sg_status_list
    # Then Task events and other attributes do not match
    assert matched({"Shotgun_Shot_Change": ["sg_status_list"]}) == [SHOT_STATUS]


def test_attribute_must_be_in_the_list() -> None:
    assert matched({"Shotgun_Task_Change": ["description", "content"]}) == [DESC_CHANGE]


def test_none_value_matches_every_event_of_the_type() -> None:
    assert matched({"Shotgun_Task_Change": None, "Shotgun_Shot_New": None}) == [
        STATUS_CHANGE,
        DESC_CHANGE,
        SHOT_NEW,
    ]


def test_list_with_star_matches_every_event_of_the_type() -> None:
    assert matched({"Shotgun_Task_New": ["*"], "Shotgun_Task_Change": ["x", "*"]}) == [
        STATUS_CHANGE,
        DESC_CHANGE,
        TASK_NEW,
    ]


def test_new_and_retirement_events_without_attribute_only_match_none_or_star() -> None:
    # Given _New/_Retirement events (attribute_name None) listed with attribute names
    assert TASK_NEW["attribute_name"] is None
    # When the value is a list of names (even one containing None) / Then they do not match
    assert matched({"Shotgun_Task_New": ["sg_status_list", None]}) == []
    assert matched({"Shotgun_Task_Retirement": []}) == []
    # When the value is None or ['*'] / Then they match
    assert matched({"Shotgun_Task_Retirement": None}) == [TASK_RETIRED]
    assert matched({"Shotgun_Task_Retirement": ["*"]}) == [TASK_RETIRED]


def test_star_key_applies_to_every_type_and_hides_other_keys() -> None:
    # Given a '*' key and another key that would match more
    spec = {"*": ["sg_status_list"], "Shotgun_Task_Change": None}
    # Then only the '*' value counts, for every event type
    assert matched(spec) == [STATUS_CHANGE, SHOT_STATUS]


def test_star_key_with_none_or_star_list_matches_everything() -> None:
    assert matched({"*": None, "Shotgun_Shot_New": ["nothing"]}) == ALL_EVENTS
    assert matched({"*": ["*"]}) == ALL_EVENTS


def test_string_value_is_a_substring_test_like_the_original() -> None:
    # Given a string instead of a list: the original tests `attribute in value`
    assert matched({"Shotgun_Task_Change": "sg_status_list"}) == [STATUS_CHANGE]
    assert matched({"Shotgun_Task_Change": "xx_description_xx"}) == [DESC_CHANGE]
    # And a None attribute never matches a string (the original would raise TypeError)
    assert matched({"Shotgun_Task_New": "sg_status_list"}) == []
    assert matched({"*": "description"}) == [DESC_CHANGE]
    # And a string containing '*' matches everything, as `'*' in value` did
    assert matched({"Shotgun_Task_New": "*"}) == [TASK_NEW]


def test_mixed_strings_sets_and_none_in_one_dict() -> None:
    spec = {"Shotgun_Task_Change": "description", "Shotgun_Shot_Change": ["sg_status_list"]}
    spec_with_all: dict[str, Any] = {**spec, "Shotgun_Shot_New": None}
    assert matched(spec) == [DESC_CHANGE, SHOT_STATUS]
    assert matched(spec_with_all) == [DESC_CHANGE, SHOT_STATUS, SHOT_NEW]


def test_tuples_and_sets_are_accepted_as_lists() -> None:
    assert matched({"Shotgun_Task_Change": ("description",)}) == [DESC_CHANGE]
    assert matched({"Shotgun_Task_Change": {"description"}}) == [DESC_CHANGE]


def test_event_without_the_fields_does_not_match_or_crash() -> None:
    assert compile_match({"Shotgun_Task_Change": ["x"]})({}) is False


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (["Shotgun_Task_Change"], "must be a dict"),
        ("Shotgun_Task_Change", "must be a dict"),
        ({1: None}, "keys must be event type strings"),
        ({"Shotgun_Task_Change": 3}, "matchEvents['Shotgun_Task_Change']"),
        ({"Shotgun_Task_Change": {"a": 1}}, "must be None, '*' or a list"),
        ({"Shotgun_Task_Change": ["ok", 7]}, "attribute name strings"),
    ],
)
def test_bad_types_raise_plugin_error_at_registration(bad: Any, says: str, tmp_path: Path) -> None:
    # Given a plugin registering a malformed matchEvents
    reg = Registrar("p", tmp_path / "p.py", logging.getLogger("plugin.p"))
    # When it registers / Then PluginError names the file, the function and the problem
    with pytest.raises(PluginError, match=re.escape(says)) as info:
        reg.registerCallback("s", "k", lambda sg, logger, event, args: None, bad)
    assert str(tmp_path / "p.py") in str(info.value)
    assert "registerCallback(<lambda>)" in str(info.value)
    assert reg.callbacks == []


@pytest.mark.parametrize(
    "spec",
    [
        {"Shotgun_Shot_Change": ["sg_status_list"]},
        {"Shotgun_Shot_Change": None},
        {"Shotgun_Shot_Change": "sg_status_list"},
        {"*": ["sg_status_list"]},
    ],
)
def test_a_miss_costs_well_under_a_microsecond(spec: dict[str, Any]) -> None:
    # Given a compiled predicate and an event it does not match
    match = compile_match(spec)
    event = TASK_NEW
    assert not match(event)
    # When timed / Then a miss is cheap (generous bound: CI machines are slow and shared)
    n = 20000
    best = min(timeit.repeat(lambda: match(event), number=n, repeat=5)) / n
    assert best < 1e-6
