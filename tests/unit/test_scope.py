"""Scope rules: projects by id or name, the plugin's own script's events, config over code."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from shotgun_events.config.plugin_sections import PluginSettings
from shotgun_events.plugins.loader import Plugin
from shotgun_events.plugins.registrar import Callback
from shotgun_events.plugins.scope import Scope


class FakeLookup:
    """Answers like a site with two projects and two scripts; counts the questions."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.fail = False

    def project_id(self, name: str) -> int | None:
        self.asked.append(name)
        if self.fail:
            raise OSError("site down")
        return {"Big Show": 145, "Small": 7}.get(name)

    def api_user_id(self, script_name: str) -> int | None:
        self.asked.append(script_name)
        return {"rollup": 31}.get(script_name)


def plugin(name: str = "p", **asked: Any) -> Plugin:
    made = Plugin(
        ("/plugins", name),
        Path("/plugins"),
        name,
        Path(f"/plugins/{name}.py"),
        logging.getLogger("test"),
    )
    for key, value in asked.items():
        setattr(made, key, value)
    return made


def callback(script: str = "rollup") -> Callback:
    return Callback(
        plugin_name="p",
        name="cb",
        func=lambda *a: None,
        matches=lambda e: True,
        match_events=None,
        args=None,
        stop_on_error=True,
        script_name=script,
        script_key="k",
        logger=logging.getLogger("test"),
    )


def event(event_id: int, project: int | None, user: tuple[str, int] = ("HumanUser", 5)) -> Any:
    return {
        "id": event_id,
        "project": None if project is None else {"type": "Project", "id": project},
        "user": {"type": user[0], "id": user[1]},
    }


def test_projects_by_id_and_name_are_resolved_once_and_others_are_counted() -> None:
    # Given a plugin scoped in the config to project 122 and "Big Show"
    lookup = FakeLookup()
    scope = Scope(settings={"p": PluginSettings("p", projects=(122, "Big Show"))}, lookup=lookup)
    p, cb = plugin(), callback()
    # When events of several projects come
    got = [
        scope.admits(p, cb, event(i, project))
        for i, project in enumerate([122, 145, 7, None, 122], start=1)
    ]
    # Then only its projects' events pass; the name was asked for once; the rest counted
    assert got == [True, True, False, False, True]
    assert lookup.asked == ["Big Show"]
    assert scope.skipped() == {"p": {"other_projects": 2}}


def test_own_events_are_skipped_only_for_the_callbacks_script() -> None:
    # Given a plugin that asks in code to ignore its own events
    lookup = FakeLookup()
    scope = Scope(settings={}, lookup=lookup)
    p = plugin(ignore_own_events=True)
    # When events by its ApiUser, another ApiUser and a person come
    own = scope.admits(p, callback("rollup"), event(1, 1, ("ApiUser", 31)))
    other = scope.admits(p, callback("rollup"), event(2, 1, ("ApiUser", 32)))
    person = scope.admits(p, callback("rollup"), event(3, 1, ("HumanUser", 31)))
    again = scope.admits(p, callback("rollup"), event(4, 1, ("ApiUser", 31)))
    # Then only its own are skipped, and its ApiUser was looked up once
    assert (own, other, person, again) == (False, True, True, False)
    assert lookup.asked == ["rollup"]
    assert scope.skipped() == {"p": {"own_events": 2}}


def test_the_config_wins_over_the_plugins_code() -> None:
    # Given a plugin asking for project 7 and loop protection, and a config saying otherwise
    settings = {"p": PluginSettings("p", projects=("Big Show",), ignore_own_events=False)}
    scope = Scope(settings=settings, lookup=FakeLookup())
    p = plugin(projects=(7,), ignore_own_events=True)
    # Then the config's project and its "false" apply
    assert not scope.admits(p, callback(), event(1, 7))
    assert scope.admits(p, callback(), event(2, 145, ("ApiUser", 31)))


def test_a_site_that_cannot_be_asked_delivers_and_asks_again() -> None:
    # Given a plugin scoped by name and a site that is down
    lookup = FakeLookup()
    lookup.fail = True
    scope = Scope(settings={"p": PluginSettings("p", projects=("Small",))}, lookup=lookup)
    # When an event comes, then the site is back
    first = scope.admits(plugin(), callback(), event(1, 145))
    lookup.fail = False
    second = scope.admits(plugin(), callback(), event(2, 145))
    # Then the first is delivered (nothing lost), and the name is asked again and applied
    assert (first, second) == (True, False)
    assert lookup.asked == ["Small", "Small"]
