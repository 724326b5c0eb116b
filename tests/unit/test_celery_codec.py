"""The task wire format: JSON only, the same event types as locally, forged input refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shotgun_events.delivery.celery.codec import (
    DONE,
    MalformedTaskError,
    TaskResult,
    TaskSpec,
    decode_result,
    decode_task,
    encode_result,
    encode_task,
)
from tests.unit.fakes import make_event

HASH = "0123456789abcdef0123456789abcdef01234567"


def _wire(spec: TaskSpec) -> list[object]:
    # Through real JSON text, as the broker carries it.
    return [json.loads(json.dumps(encode_task(spec)))]


def test_events_come_back_with_aware_datetimes_and_nested_meta() -> None:
    # Given an event with an aware created_at and nested meta holding a datetime
    created = datetime(2026, 3, 1, 9, 30, 15, 123000, tzinfo=timezone(timedelta(hours=-8)))
    meta = {"type": "attribute_change", "new_value": {"when": created}, "list": [1, {"a": None}]}
    event = make_event(7, created_at=created, meta=meta)
    # When it travels as JSON
    spec = decode_task(_wire(TaskSpec("p", HASH, (event,))), {})
    # Then it equals the original, types included
    (back,) = spec.events
    assert back == event
    assert back["created_at"].tzinfo is not None
    assert back["created_at"] == created
    assert spec.plugin == "p" and spec.plugin_hash == HASH


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["text"],
        [{"v": 1, "plugin": "p", "hash": HASH}],
        [{"v": 2, "plugin": "p", "hash": HASH, "events": [{"id": 1}]}],
        [{"v": 1, "plugin": "../x", "hash": HASH, "events": [{"id": 1}]}],
        [{"v": 1, "plugin": "p", "hash": "short", "events": [{"id": 1}]}],
        [{"v": 1, "plugin": "p", "hash": HASH, "events": []}],
        [{"v": 1, "plugin": "p", "hash": HASH, "events": [{"id": "1"}]}],
        [{"v": 1, "plugin": "p", "hash": HASH, "events": [{"id": 2}, {"id": 1}]}],
        [{"v": 1, "plugin": "p", "hash": HASH, "events": [{"id": 1, "c": {"$dt": "x"}}]}],
        [{"v": 1, "plugin": "p", "hash": HASH, "events": [{"id": 1, "c": {"$dt": "2026-01-01"}}]}],
        [{"v": 1, "plugin": "p", "hash": HASH, "events": [{"id": 1}], "extra": 1}],
    ],
)
def test_a_task_not_in_the_wire_format_is_refused(args: list[object]) -> None:
    # Given a forged or truncated task / When decoded / Then it is refused with a reason
    with pytest.raises(MalformedTaskError):
        decode_task(args, {})


def test_keyword_arguments_are_refused() -> None:
    with pytest.raises(MalformedTaskError):
        decode_task([{}], {"x": 1})


def test_results_round_trip_and_foreign_results_are_refused() -> None:
    # Given a result / When it goes through JSON / Then it is the same
    result = TaskResult(status=DONE, handled=(1, 2), ran=(2,), worker="w", worker_hash=HASH)
    assert decode_result(json.loads(json.dumps(encode_result(result)))) == result
    with pytest.raises(MalformedTaskError):
        decode_result({"status": "SUCCESS"})
    with pytest.raises(MalformedTaskError):
        decode_result({"status": DONE, "handled": ["x"]})


def test_utc_datetimes_survive() -> None:
    event = make_event(1, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    (back,) = decode_task(_wire(TaskSpec("p", HASH, (event,))), {}).events
    assert back["created_at"] == event["created_at"]


def test_an_events_own_dict_that_looks_like_a_tag_travels_unchanged() -> None:
    # Given an event whose fields hold dicts shaped like the wire's own tags
    odd = {"$dt": "not a date"}
    event = make_event(5, meta={"new_value": odd, "old_value": {"$dict": [1]}, "ok": {"a": 1}})
    # When it goes through the wire format and back
    (back,) = decode_task(_wire(TaskSpec("p", HASH, (event,))), {}).events
    # Then the worker sees exactly what the daemon read
    assert back["meta"] == event["meta"]
