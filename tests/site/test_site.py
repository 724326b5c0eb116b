"""Lifecycle, authentication, protocol errors, schema reads, HTTP controls and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite
from shotgun_events.site.seed import PASSWORD

from .conftest import EVENT_FIELDS, MakeClient, control, post


def test_readme_script_finds_the_seeded_shots(site: LocalSite) -> None:
    # Given the README's two lines
    sg = shotgun_api3.Shotgun(site.url, "shotgun_events", "local")
    try:
        # When they run
        shots = sg.find("Shot", [], ["code"])
    finally:
        sg.close()
    # Then the demo shots come back
    assert [s["code"] for s in shots] == [f"SQ010_00{n}0" for n in range(1, 7)]


def test_restart_on_same_db_and_port_keeps_data(tmp_path: Path) -> None:
    # Given a site with a new shot, stopped
    db = tmp_path / "keep.sqlite3"
    with LocalSite(db, seed=True) as site:
        port = site.port
        sg = shotgun_api3.Shotgun(site.url, "shotgun_events", "local")
        sg.create("Shot", {"code": "KEEP"})
        head = site.newest_event_id()
        sg.close()
    # When it starts again on the same file and port
    with LocalSite(db, port=port, seed=True) as again:
        sg = shotgun_api3.Shotgun(again.url, "shotgun_events", "local")
        try:
            kept = sg.find_one("Shot", [["code", "is", "KEEP"]])
            events = sg.find("EventLogEntry", [["id", "greater_than", head - 1]], EVENT_FIELDS)
            sg.create("Shot", {"code": "AFTER"})
            projects = sg.find("Project", [])
        finally:
            sg.close()
        # Then data and log are there, nothing is seeded twice, and ids keep rising
        assert again.port == port and kept is not None
        assert [e["id"] for e in events] == [head]
        assert again.newest_event_id() > head and len(projects) == 1


def test_temporary_database_is_deleted_at_stop() -> None:
    # Given a site without a db path
    site = LocalSite().start()
    store_dir = Path(site.api.store.path).parent
    assert store_dir.exists()
    # When it stops, Then its temporary folder is gone
    site.stop()
    assert not store_dir.exists()


def test_stop_ends_idle_keep_alive_connections(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a client holding a keep-alive connection
    sg.find("Shot", [])
    # When the site stops, Then stop returns (handler threads ended) and the client
    # gets a connection error on its next call
    site.stop()
    with pytest.raises(OSError):
        sg.find("Shot", [])


@pytest.mark.parametrize(("script", "key"), [("shotgun_events", "wrong"), ("nobody", "local")])
def test_bad_script_credentials(make_sg: MakeClient, script: str, key: str) -> None:
    # Given wrong credentials, When a call is made, Then AuthenticationFault is raised
    sg = make_sg(script, key, connect=False)
    with pytest.raises(shotgun_api3.AuthenticationFault, match="authenticate"):
        sg.find("Shot", [])


def test_user_login_and_session_token(site: LocalSite) -> None:
    # Given a person's login
    sg = shotgun_api3.Shotgun(site.url, login="mokafor", password=PASSWORD)
    try:
        # When they write, and a session token is made from their login
        last = site.newest_event_id()
        sg.update("Shot", 1, {"sg_status_list": "ip"})
        token = sg.get_session_token()
        by_token = shotgun_api3.Shotgun(site.url, session_token=token)
        try:
            found = by_token.find_one("Shot", [["id", "is", 1]], ["sg_status_list"])
        finally:
            by_token.close()
        event = sg.find_one("EventLogEntry", [["id", "greater_than", last]], ["user"])
    finally:
        sg.close()
    # Then both authenticate and the event names the person
    assert found is not None and found["sg_status_list"] == "ip"
    assert event is not None and event["user"]["name"] == "Mara Okafor"


@pytest.mark.parametrize(("path", "body", "method", "fragment"), [
    ("/api3/json", b"{not json", "POST", "malformed JSON"),
    ("/api3/json", b"[1, 2]", "POST", "JSON object"),
    ("/api3/json", json.dumps({"method_name": "fly", "params": []}).encode(), "POST",
     "Unknown method"),
    ("/api3/json", b"", "GET", "GET is not supported"),
    ("/elsewhere", b"{}", "POST", "no API at path"),
    ("/api3/json", json.dumps({"method_name": "read", "params": []}).encode(), "POST",
     "authentication"),
])
def test_protocol_errors_are_faults(site: LocalSite, path: str, body: bytes, method: str,
                                    fragment: str) -> None:
    # Given a malformed request
    # When it is sent
    status, reply = post(site.url, path, body, method)
    # Then the site answers 200 with the real fault shape and keeps serving
    assert status == 200
    assert reply["exception"] is True and fragment in reply["message"]
    assert isinstance(reply["error_code"], int)
    assert post(site.url, "/api3/json", json.dumps(
        {"method_name": "info", "params": []}).encode())[1]["results"]["version"] == [8, 0, 0]


def test_unknown_method_through_the_client(sg: shotgun_api3.Shotgun) -> None:
    # Given a client call the site does not implement
    # When it is made, Then the client raises Fault
    with pytest.raises(shotgun_api3.Fault, match="Unknown method"):
        sg._call_rpc("fly_to_moon", {"x": 1})


def test_schema_reads(sg: shotgun_api3.Shotgun) -> None:
    # Given the site schema
    # When it is read in the three ways plugins do
    everything = sg.schema_read()
    types = sg.schema_entity_read()
    status = sg.schema_field_read("Shot", "sg_status_list")["sg_status_list"]
    link = sg.schema_field_read("Task", "entity")["entity"]
    all_version = sg.schema_field_read("Version")
    # Then the shapes match a real site's
    assert set(types) >= {"Project", "HumanUser", "ApiUser", "Step", "Sequence", "Shot",
                          "Asset", "Task", "Version", "Note", "PublishedFile", "EventLogEntry"}
    assert types["HumanUser"]["name"]["value"] == "Person"
    assert everything["Shot"]["code"]["data_type"]["value"] == "text"
    assert status["data_type"]["value"] == "status_list"
    assert status["properties"]["valid_values"]["value"] == ["wtg", "rdy", "ip", "rev", "fin",
                                                             "omt", "hld"]
    assert status["editable"]["value"] is True
    assert link["properties"]["valid_types"]["value"] == ["Shot", "Asset", "Sequence"]
    assert {"code", "entity", "sg_task", "user", "sg_status_list"} <= set(all_version)
    with pytest.raises(shotgun_api3.Fault, match="no field"):
        sg.schema_field_read("Shot", "nope")


def test_http_controls(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a test driving the site from another process over /_local
    head = control(site.url, "newest_event_id")
    # When it reserves, appends, commits and reads counters
    ids = control(site.url, "reserve_event_ids", n=2)
    first, last = control(site.url, "append_events", n=3)
    control(site.url, "commit_reserved", ids=ids, event_type="Shotgun_Shot_Change")
    control(site.url, "inject_fault", kind="status", status=503)
    with pytest.raises(shotgun_api3.ProtocolError):
        sg.find("Shot", [])
    counts = control(site.url, "call_counts")
    # Then each control acts like the Python method
    assert ids == [head + 1, head + 2] and (first, last) == (head + 3, head + 5)
    assert control(site.url, "event_count") == site.event_count()
    assert control(site.url, "newest_event_id") == head + 5
    assert counts["read"] >= 1 and control(site.url, "connection_count") >= 1
    status, reply = post(site.url, "/_local/explode", b"{}")
    assert status == 400 and "unknown control" in reply["error"]


def test_activity_writes_believable_changes(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given the generator running fast
    head = site.newest_event_id()
    site.start_activity(2000, seed=7)
    # When it has made some changes (waiting on the log, not on a clock)
    deadline = time.monotonic() + 20
    while site.newest_event_id() < head + 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    site.stop_activity()
    events = sg.find("EventLogEntry", [["id", "greater_than", head]], EVENT_FIELDS)
    # Then the events come from people with sessions, about production entities
    assert len(events) >= 40
    assert {e["user"]["type"] for e in events} == {"HumanUser"}
    assert all(e["session_uuid"] for e in events)
    assert {e["meta"]["entity_type"] for e in events} <= {"Task", "Shot", "Version", "Note",
                                                          "Asset"}


def test_site_command_prints_url_and_exits_on_sigterm(tmp_path: Path) -> None:
    # Given the site command started as a subprocess
    code = ("import sys,argparse; from shotgun_events.site.cli import add_site_arguments,"
            " run_site; p=argparse.ArgumentParser(); add_site_arguments(p);"
            " sys.exit(run_site(p.parse_args(sys.argv[1:])))")
    db = tmp_path / "cli.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", code, "--seed", "--db", str(db),
                             "--scripts", "a:b,shotgun_events:local"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "error"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        # When a client uses the printed URL and the process gets SIGTERM
        url = line[line.index("http://"):].split()[0]
        sg = shotgun_api3.Shotgun(url, "a", "b")
        try:
            shots = sg.find("Shot", [])
        finally:
            sg.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # Then it served, exited 0, and left a clean database
    assert url.startswith("http://127.0.0.1:") and len(shots) == 6
    assert proc.returncode == 0, err
    assert db.exists() and not Path(str(db) + "-wal").exists()
