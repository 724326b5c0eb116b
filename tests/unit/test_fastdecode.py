"""The engine's fast reply decoding gives exactly what the stock client gives."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from shotgun_api3.shotgun import Shotgun

from shotgun_events.client.fastdecode import FastDecodeShotgun


def reply() -> dict[str, Any]:
    event = {
        "id": 7,
        "event_type": "Shotgun_Task_Change",
        "attribute_name": "due_date",
        "meta": {
            "type": "attribute_change",
            "old_value": "2026-03-28T23:30:00Z",  # near a DST change in many zones
            "new_value": "2026-10-25T01:30:00Z",
            "added": [{"type": "HumanUser", "id": 3, "name": "Ann", "at": "2026-01-01T00:00:00Z"}],
            "nested": {"list": ["2026-01-01T00:00:00Z", 5, None, True, 1.5, []], "empty": {}},
            "not_a_time": "2026-13-45T99:99:99Z",
            "almost": "2026-01-01T00:00:00X",
            "text": "x" * 20,
            "tuple_like": [["2026-01-01T00:00:00Z"]],
        },
        "entity": {"type": "Task", "id": 9, "name": "anim"},
        "user": None,
        "project": {"type": "Project", "id": 1, "name": "Demo"},
        "session_uuid": "7f0c9a8e-0000-11ef-8000-000000000000",
        "created_at": "2026-01-01T10:00:00Z",
    }
    return {"results": {"entities": [event, dict(event, id=8)], "paging_info": {"x": 1}}}


@pytest.mark.parametrize("to_local", [True, False])
def test_fast_decode_equals_the_stock_client(to_local: bool) -> None:
    # Given the same reply decoded by both clients
    stock = Shotgun("http://127.0.0.1:9", "s", "k", connect=False)
    fast = FastDecodeShotgun("http://127.0.0.1:9", "s", "k", connect=False)
    stock.config.convert_datetimes_to_utc = to_local
    fast.config.convert_datetimes_to_utc = to_local
    raw = json.loads(json.dumps(reply()))
    expected = stock._transform_inbound(copy.deepcopy(raw))
    got = fast._transform_inbound(copy.deepcopy(raw))
    # Then values, types and time zones are identical everywhere
    assert got == expected
    first, expected_first = got["results"]["entities"][0], expected["results"]["entities"][0]
    assert type(first["created_at"]) is type(expected_first["created_at"])
    assert first["created_at"].tzinfo is expected_first["created_at"].tzinfo
    assert first["meta"]["not_a_time"] == "2026-13-45T99:99:99Z"
    assert first["meta"]["new_value"].utcoffset() == expected_first["meta"]["new_value"].utcoffset()
