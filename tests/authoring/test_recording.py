"""RecordingShotgun and capture files, through the real client on a local site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shotgun_events.errors import ConfigError
from shotgun_events.testing import load_events
from shotgun_events.testing.capture import dump_event, scrub_event
from shotgun_events.testing.recording import DryRunRefusedError, RecordingShotgun, WriteLog


def _client(local_site: Any, dry: bool) -> tuple[RecordingShotgun, WriteLog]:
    writes = WriteLog()
    return RecordingShotgun(local_site.url, "rec", "rec-key", writes=writes, dry=dry), writes


def test_a_dry_client_reads_the_site_and_sends_no_write(local_site: Any) -> None:
    # Given a dry recording client
    sg, writes = _client(local_site, dry=True)
    before = local_site.newest_event_id()
    shot = sg.find_one("Shot", [], ["code"])
    # When it creates, updates, batches, deletes and follows
    made = sg.create("Note", {"subject": "hi", "project": {"type": "Project", "id": 1}})
    sg.update("Shot", shot["id"], {"description": "dry"})
    results = sg.batch(
        [
            {"request_type": "create", "entity_type": "Note", "data": {"subject": "b"}},
            {
                "request_type": "update",
                "entity_type": "Shot",
                "entity_id": shot["id"],
                "data": {"description": "b"},
            },
            {"request_type": "delete", "entity_type": "Shot", "entity_id": shot["id"]},
        ]
    )
    sg.delete("Shot", shot["id"])
    sg.upload_thumbnail("Shot", shot["id"], "/tmp/none.png")
    sg.follow({"type": "HumanUser", "id": 1}, shot)
    # Then each is recorded once, in order, with plausible results and negative new ids
    assert [w["method"] for w in writes.items] == [
        "create",
        "update",
        "batch",
        "delete",
        "upload_thumbnail",
        "follow",
    ]
    assert made["id"] < 0 and made["subject"] == "hi"
    assert results[0]["id"] < 0 and results[1]["description"] == "b" and results[2] is True
    # And the site saw none of it
    assert local_site.newest_event_id() == before
    assert local_site.sg.find_one("Shot", [["id", "is", shot["id"]]], ["code"]) is not None
    # And an api3 write it does not know is refused, not sent
    with pytest.raises(DryRunRefusedError, match="work_schedule_update"):
        sg.work_schedule_update("2030-01-01", False)
    sg.close()


def test_a_sending_client_records_the_outer_call_only(local_site: Any) -> None:
    # Given a sending recording client
    sg, writes = _client(local_site, dry=False)
    # When it creates (the id comes back) and follows
    made = sg.create("Note", {"subject": "real", "project": {"type": "Project", "id": 1}})
    user = {"type": "HumanUser", "id": 1}
    sg.follow(user, made)
    # Then both were sent and recorded with the real id
    assert writes.items[0] == {
        "method": "create",
        "entity_type": "Note",
        "entity_id": made["id"],
        "data": {"subject": "real", "project": {"type": "Project", "id": 1}},
    }
    assert writes.items[1]["method"] == "follow"
    assert [f["id"] for f in local_site.sg.followers(made)] == [1]
    sg.close()


def test_captured_events_round_trip_and_bad_lines_name_the_file(
    local_site: Any, tmp_path: Path
) -> None:
    # Given the events of a change, captured with a secret in them
    shot = local_site.sg.find_one("Shot", [], ["id"])
    events = local_site.change("Shot", shot["id"], description="key abcd-1234 here")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(dump_event(scrub_event(e, ["abcd-1234"])) + "\n" for e in events))
    # When they are loaded
    (loaded,) = load_events(path)
    # Then they are the delivered events but for the secret
    assert loaded["meta"]["new_value"] == "key *** here"
    assert loaded["created_at"] == events[0]["created_at"]
    assert {k: v for k, v in loaded.items() if k != "meta"} == {
        k: v for k, v in events[0].items() if k != "meta"
    }
    # And a broken line is a one-line error naming file and line
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: not a JSON event"):
        load_events(path)
