"""Engine-level edge cases with the unit fakes: odd events, late events already in hand."""

from __future__ import annotations

import threading

import pytest

from shotgun_events.engine.loop import Engine
from tests.unit.fakes import DISPATCH_MODES, FakeCallback, FakePlugin, FakeSource, make_event

from .engine_rig import POLL, build
from .summary import SUMMARY

ODD_EVENTS = {
    "only id and event_type": {"id": 0, "event_type": "Shotgun_Shot_Change"},
    "every field null": {
        "event_type": None,
        "attribute_name": None,
        "meta": None,
        "entity": None,
        "user": None,
        "project": None,
        "session_uuid": None,
        "created_at": None,
    },
    "10 MB meta": {"meta": {"blob": "x" * 10_000_000}},
    "lone surrogates (not UTF-8)": {
        "description": "bad \udcff\udcfe text",
        "meta": {"v": "\ud800"},
    },
}


@pytest.mark.parametrize("dispatch", DISPATCH_MODES)
def test_odd_events_are_delivered_and_the_cursor_moves_on(dispatch: str) -> None:
    # Given a log whose events miss fields, carry nulls, huge or non-UTF-8 values
    source = FakeSource()
    source.add(1)
    ids = list(range(2, 2 + len(ODD_EVENTS)))
    for event_id, fields in zip(ids, ODD_EVENTS.values(), strict=True):
        event = make_event(event_id)
        event.update({k: v for k, v in fields.items() if k != "id"})
        if set(fields) == {"id", "event_type"}:
            event = {"id": event_id, "event_type": fields["event_type"]}
        source.events[event_id] = event
    source.add(ids[-1] + 1)
    got: list[int] = []
    plugin = FakePlugin("odd")
    plugin.callbacks.append(FakeCallback("cb", lambda sg, lg, e, a: got.append(e["id"])))
    engine, store, _ = build(source, [plugin], dispatch=dispatch, start_from_id=1)
    try:
        # When the engine reads them
        engine.run_once()
        # Then each reached the plugin once and the position is past them all
        assert got == [1, *ids, ids[-1] + 1]
        assert store.positions[plugin.key].last_id == ids[-1] + 1
    finally:
        engine.close()
    if dispatch == "serial":
        for name in ODD_EVENTS:
            SUMMARY.answered("event", name, "delivered to the plugin once; cursor moved on")


def test_late_events_in_a_workers_hands_are_not_read_again() -> None:
    # Given a parallel plugin whose callback blocks on the first late event
    source = FakeSource()
    source.add(1)
    release = threading.Event()
    entered = threading.Event()

    def callback(sg: object, logger: object, event: dict[str, object], args: object) -> None:
        if event["id"] == 2:
            entered.set()
            release.wait(10)

    plugin = FakePlugin("slow")
    plugin.callbacks.append(FakeCallback("cb", callback))
    engine, _, clock = build(source, [plugin], dispatch="parallel", start_from_id=1)
    try:
        engine.run_once()
        source.add(*range(2, 102), 102)
        source.hidden.update(range(2, 102))
        engine.run_once()
        # When the gap commits, one backlog poll hands it over, and the worker is busy with it
        source.hidden.clear()
        clock.advance(POLL + 1)
        Engine.run_once(engine)
        assert entered.wait(10)
        source.calls.clear()
        # And another poll interval passes while the worker still works
        clock.advance(POLL + 1)
        Engine.run_once(engine)
        read_again = {i for kind, ids in source.calls if kind == "ids" for i in ids}
        # Then the ids already handed over are not read again
        assert not read_again & set(range(2, 102)), f"re-read {len(read_again)} ids"
    finally:
        release.set()
        engine.close()
