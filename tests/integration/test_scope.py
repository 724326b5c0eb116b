"""Per-plugin scope with the real daemon on the local site: projects and ignore_own_events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite

from .conftest import DaemonRig, daemon_cli, wait_for

#: Listens to Shot description changes and writes the description again: a loop.
LOOPER = '''\
"""Appends '+' to a Shot's description whenever it changes (a plugin that loops)."""
import os

RECORD = os.environ["RECORD_FILE"]


def registerCallbacks(reg):
    reg.registerCallback(
        "shotgun_events", "local", bump, {{"Shotgun_Shot_Change": ["description"]}}, None
    )
    {extra}


def bump(sg, logger, event, args):
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("looper %d\\n" % event["id"]).encode())
    finally:
        os.close(fd)
    shot = sg.find_one("Shot", [["id", "is", event["entity"]["id"]]], ["description"])
    if shot["description"].count("+") < 20:  # a bound, so a failing test still ends
        sg.update("Shot", shot["id"], {{"description": shot["description"] + "+"}})
'''


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with LocalSite(scripts={"shotgun_events": "local", "artist": "artist-key"}) as running:
        yield running


def artist(site: LocalSite) -> shotgun_api3.Shotgun:
    sg = shotgun_api3.Shotgun(site.url, "artist", "artist-key", connect=False)
    sg.config.timeout_secs = 30
    return sg


def plugin_status(rig: DaemonRig, name: str) -> dict[str, Any]:
    result = daemon_cli(rig, "status", "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    return next(p for p in report["plugins"] if p["name"] == name)


def saved_position(rig: DaemonRig, name: str) -> int:
    return int(plugin_status(rig, name)["last_event_id"])


def start(rig: DaemonRig, sections: str, *, extra: str = "") -> None:
    rig.config.write_text(rig.config.read_text() + sections)
    rig.start(*extra.split())
    rig.wait_ready()
    wait_for((rig.folder / "daemon.pid.sock").exists, what="control socket")


@pytest.mark.parametrize("how", ["config", "code"])
def test_ignore_own_events_stops_a_plugin_that_updates_what_it_listens_to(
    rig: DaemonRig, site: LocalSite, how: str
) -> None:
    # Given a plugin that rewrites the Shot description it listens to, with
    # ignore_own_events set in the config or asked for in its code
    extra = "reg.setIgnoreOwnEvents(True)" if how == "code" else "pass"
    (rig.plugins / "looper.py").write_text(LOOPER.format(extra=extra))
    section = "\n[plugin:looper]\nignore_own_events = true\n" if how == "config" else ""
    sg = artist(site)
    project = sg.create("Project", {"name": "Loop Show"})
    shot = sg.create("Shot", {"code": "sh010", "project": project, "description": "v"})
    start(rig, section)
    # When an artist changes the description once
    sg.update("Shot", shot["id"], {"description": "v1"})
    # Then the plugin runs once, its own change comes back as an event and is skipped
    wait_for(lambda: len(rig.ids_for("looper")) == 1, what="first delivery")
    wait_for(
        lambda: (
            sg.find_one("Shot", [["id", "is", shot["id"]]], ["description"])["description"] == "v1+"
        ),
        what="the plugin's own update",
    )
    own = sg.find(
        "EventLogEntry",
        [["event_type", "is", "Shotgun_Shot_Change"], ["attribute_name", "is", "description"]],
        ["id", "user"],
        order=[{"field_name": "id", "direction": "desc"}],
        limit=1,
    )[0]
    assert own["user"]["name"] == "shotgun_events"
    wait_for(lambda: saved_position(rig, "looper") >= own["id"], what="cursor past own event")
    # And it stopped after one round: one delivery, one skipped event counted in status
    assert len(rig.ids_for("looper")) == 1
    status = plugin_status(rig, "looper")
    assert status["skipped"] == {"own_events": 1}
    text = daemon_cli(rig, "status").stdout
    assert "skipped 1 own events" in text
    assert rig.stop() == 0
    sg.close()


def test_without_ignore_own_events_the_same_plugin_loops(rig: DaemonRig, site: LocalSite) -> None:
    # Given the same plugin without loop protection (the control for the test above)
    (rig.plugins / "looper.py").write_text(LOOPER.format(extra="pass"))
    sg = artist(site)
    shot = sg.create("Shot", {"code": "sh020", "description": "v"})
    start(rig, "")
    # When an artist changes the description once
    sg.update("Shot", shot["id"], {"description": "v1"})
    # Then the plugin re-triggers itself, round after round
    wait_for(lambda: len(rig.ids_for("looper")) >= 3, what="the loop")
    assert rig.stop() == 0
    sg.close()


RECORD_ALL = """\
import os

RECORD = os.environ["RECORD_FILE"]


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", record, None, None)
    {extra}


def record(sg, logger, event, args):
    project = event.get("project") or {{}}
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("{name} %d\\n" % (project.get("id") or 0)).encode())
    finally:
        os.close(fd)
"""


def test_events_of_other_projects_are_not_delivered_and_the_cursor_moves_past_them(
    rig: DaemonRig, site: LocalSite
) -> None:
    # Given three projects, a plugin scoped in the config by id and name, one scoped in
    # code (overridden by the config), one scoped only in code, and an unscoped one
    sg = artist(site)
    a = sg.create("Project", {"name": "Show A"})
    b = sg.create("Project", {"name": "Big Show"})
    c = sg.create("Project", {"name": "Show C"})
    for name, extra in [
        ("scoped", "pass"),
        ("overridden", f"reg.setProjects({c['id']})"),
        ("incode", "reg.setProjects('Show C')"),
        ("everything", "pass"),
    ]:
        (rig.plugins / f"{name}.py").write_text(RECORD_ALL.format(name=name, extra=extra))
    sections = (
        f"\n[plugin:scoped]\nprojects = {a['id']}, Big Show\n"
        f"\n[plugin:overridden]\nprojects = Show A\n"
        "\n[plugin:nosuchplugin]\nprojects = 1\n"
    )
    start(rig, sections)
    # When shots are made in each project
    for project in (a, b, c, a, c):
        sg.create("Shot", {"code": "sh", "project": project})
    newest = int(
        sg.find_one("EventLogEntry", [], ["id"], order=[{"field_name": "id", "direction": "desc"}])[
            "id"
        ]
    )
    for name in ("scoped", "overridden", "incode", "everything"):
        wait_for(lambda n=name: saved_position(rig, n) >= newest, what=f"{name} past {newest}")
    # Then each plugin got only its projects' events, and every cursor moved past the rest
    projects = {
        name: {i for n, i in rig.deliveries() if n == name}
        for name in ("scoped", "overridden", "incode", "everything")
    }
    assert projects["scoped"] == {a["id"], b["id"]}
    assert projects["overridden"] == {a["id"]}
    assert projects["incode"] == {c["id"]}
    assert projects["everything"] == {a["id"], b["id"], c["id"]}
    # And status counts what each scope held back
    assert plugin_status(rig, "scoped")["skipped"]["other_projects"] > 0
    assert plugin_status(rig, "everything")["skipped"] == {}
    # And the section naming no plugin was warned about once, after the first scan
    log = rig.log_text()
    assert log.count("[plugin:nosuchplugin]: no plugin named 'nosuchplugin' is loaded") == 1
    assert rig.stop() == 0
    sg.close()
