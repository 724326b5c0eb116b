"""People's logins, passwords, sessions, sudo and last access, through the real client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite
from shotgun_events.site.seed import PASSWORD

from .conftest import MakeClient


@pytest.fixture
def person(site: LocalSite) -> Iterator[Any]:
    """Make real clients logging in as a person; all are closed afterwards."""
    clients: list[shotgun_api3.Shotgun] = []

    def make(login: str, password: str, **kwargs: Any) -> shotgun_api3.Shotgun:
        sg = shotgun_api3.Shotgun(site.url, login=login, password=password, **kwargs)
        clients.append(sg)
        return sg

    yield make
    for sg in clients:
        sg.close()


def test_a_person_logs_in_with_the_password_set_for_them(
    sg: shotgun_api3.Shotgun, person: Any
) -> None:
    # Given a person created with a password, and one without
    sg.create("HumanUser", {"name": "Ana Pires", "login": "apires", "password_proxy": "s3cret!"})
    sg.create("HumanUser", {"name": "No Pass", "login": "nopass"})
    # Then the password lets them in, as themselves
    who = person("apires", "s3cret!").find_one("HumanUser", [["login", "is", "apires"]], ["name"])
    assert who["name"] == "Ana Pires"
    # And a wrong password, an unknown login and a person without a password are refused
    for login, password in (("apires", "wrong"), ("nobody", "x"), ("nopass", "anything")):
        with pytest.raises(shotgun_api3.AuthenticationFault):
            person(login, password).find_one("Shot", [])
    # And the password is never returned
    got = sg.find_one("HumanUser", [["login", "is", "apires"]], ["password_proxy"])
    assert got["password_proxy"] is None


def test_a_changed_password_replaces_the_old_one(sg: shotgun_api3.Shotgun, person: Any) -> None:
    # Given a seeded person who logs in with the demo password
    user = sg.find_one("HumanUser", [["login", "is", "kmorita"]], ["id"])
    assert person("kmorita", PASSWORD).find_one("Shot", []) is not None
    # When their password is changed
    sg.update("HumanUser", user["id"], {"password_proxy": "new one"})
    # Then only the new one works
    assert person("kmorita", "new one").find_one("Shot", []) is not None
    with pytest.raises(shotgun_api3.AuthenticationFault):
        person("kmorita", PASSWORD).find_one("Shot", [])


def test_inactive_and_locked_people_cannot_log_in(sg: shotgun_api3.Shotgun, person: Any) -> None:
    # Given two seeded people, one made inactive and one locked for a day
    tomas = sg.find_one("HumanUser", [["login", "is", "tlindqvist"]], ["id"])
    ines = sg.find_one("HumanUser", [["login", "is", "iduarte"]], ["id"])
    sg.update("HumanUser", tomas["id"], {"sg_status_list": "dis"})
    sg.update("HumanUser", ines["id"], {"locked_until": "2999-01-01T00:00:00Z"})
    # Then neither logs in
    with pytest.raises(shotgun_api3.AuthenticationFault):
        person("tlindqvist", PASSWORD).find_one("Shot", [])
    with pytest.raises(shotgun_api3.AuthenticationFault, match="locked"):
        person("iduarte", PASSWORD).find_one("Shot", [])
    # When the lock is lifted, the person logs in again
    sg.update("HumanUser", ines["id"], {"locked_until": None})
    assert person("iduarte", PASSWORD).find_one("Shot", []) is not None


def test_sessions_outlive_a_restart_and_stand_for_who_asked(site: LocalSite, person: Any) -> None:
    # Given a session token a person asked for
    token = person("mokafor", PASSWORD).get_session_token()
    # When the site restarts on the same database
    site.stop()
    site.start()
    # Then the token still logs in as that person
    by_token = shotgun_api3.Shotgun(site.url, session_token=token)
    try:
        me = by_token.find_one("HumanUser", [["login", "is", "mokafor"]], ["name"])
        assert me["name"] == "Mara Okafor"
    finally:
        by_token.close()
    # And a made-up token is refused
    forged = shotgun_api3.Shotgun(site.url, session_token="0" * 32)
    try:
        with pytest.raises(shotgun_api3.AuthenticationFault, match="Session token"):
            forged.find_one("Shot", [])
    finally:
        forged.close()


def test_only_scripts_may_sudo(make_sg: MakeClient, person: Any) -> None:
    # Given a script acting as a person: allowed, and it creates as that person
    as_mara = make_sg(sudo_as_login="mokafor")
    project = as_mara.find_one("Project", [], ["name"])
    shot = as_mara.create("Shot", {"code": "sudo", "project": project}, ["created_by"])
    assert shot["created_by"]["name"] == "Mara Okafor"
    # When a person asks to act as another, they are refused, even for a real login
    sudo = person("mokafor", PASSWORD, sudo_as_login="kmorita")
    with pytest.raises(shotgun_api3.Fault, match="does not have permission to 'sudo'"):
        sudo.find_one("Shot", [])


def test_last_accessed_by_current_user_is_per_person(make_sg: MakeClient, person: Any) -> None:
    # Given two people and a project neither has opened
    mara = person("mokafor", PASSWORD)
    kenji = person("kmorita", PASSWORD)
    project = mara.find_one("Project", [], ["id"])
    field = ["last_accessed_by_current_user"]
    assert mara.find_one("Project", [["id", "is", project["id"]]], field)[field[0]] is None
    # When Mara opens it, then a script records Kenji opening it a second later
    mara.update_project_last_accessed(project)
    first = mara.find_one("Project", [["id", "is", project["id"]]], field)[field[0]]
    assert kenji.find_one("Project", [["id", "is", project["id"]]], field)[field[0]] is None
    time.sleep(1.1)
    kenji_user = kenji.find_one("HumanUser", [["login", "is", "kmorita"]])
    make_sg().update_project_last_accessed(project, user=kenji_user)
    # Then each reads their own time
    later = kenji.find_one("Project", [["id", "is", project["id"]]], field)[field[0]]
    assert later > first
    assert mara.find_one("Project", [["id", "is", project["id"]]], field)[field[0]] == first
    # And a script without a person to name is refused
    with pytest.raises(shotgun_api3.Fault, match="must name the user"):
        make_sg().update_project_last_accessed(project)
    # And a script acting as Kenji reads Kenji's time
    as_kenji = make_sg(sudo_as_login="kmorita")
    assert as_kenji.find_one("Project", [["id", "is", project["id"]]], field)[field[0]] == later
