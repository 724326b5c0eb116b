"""Read-ahead: id windows read at once while catching up, handed on in id order, exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import pytest

from shotgun_events.engine import readahead
from shotgun_events.engine.readahead import ReadAhead
from shotgun_events.errors import SiteError
from shotgun_events.events import Event

from .fakes import FakeSource


class WindowSource(FakeSource):
    """The fake log, with reads of one id window and a count of reads in flight at once;
    each read waits ``latency`` seconds for the "site" (a distant one by default)."""

    def __init__(self, latency: float = 0.002) -> None:
        super().__init__()
        self.latency = latency
        self.window_calls: list[tuple[int, int]] = []
        self.fail_windows: set[int] = set()
        self.gate: threading.Event | None = None
        self._flight = 0
        self.most_in_flight = 0
        self._count = threading.Lock()

    def fetch_after(
        self, last_id: int, limit: int, event_types: Collection[str] | None = None
    ) -> list[Event]:
        time.sleep(self.latency)
        return super().fetch_after(last_id, limit, event_types)

    def fetch_window(
        self, after: int, upto: int, limit: int, event_types: Collection[str] | None = None
    ) -> list[Event]:
        with self._count:
            self._flight += 1
            self.most_in_flight = max(self.most_in_flight, self._flight)
        try:
            if self.gate is not None:
                self.gate.wait(5)
            with self._lock:
                self.window_calls.append((after, upto))
                if after in self.fail_windows:
                    self.fail_windows.discard(after)
                    raise SiteError("injected")
                batch = self.fetch_after(after, limit, event_types)
                self.calls.pop()  # counted as a window read, not a forward read
                return [e for e in batch if int(e["id"]) <= upto]
        finally:
            with self._count:
                self._flight -= 1


def retry(what: str, read: Callable[[], Any]) -> Any:
    """The engine's retry policy, reduced to one attempt for the tests."""
    return read()


def drain(reader: ReadAhead, start: int, until: int) -> list[int]:
    """Ask batch after batch, as the engine does, until the last id handed on is ``until``."""
    got: list[int] = []
    position = start
    for _ in range(1000):
        batch = reader.next_batch(position, None, retry)
        assert batch is not None
        got.extend(int(e["id"]) for e in batch)
        if batch:
            position = int(batch[-1]["id"])
        if position >= until and not reader.more_ahead():
            break
    return got


def catch_up(
    source: WindowSource, start: int, newest: int, *, depth: int = 4, known: bool = True
) -> tuple[list[int], ReadAhead]:
    """A reader of ``depth`` windows (told the newest id when ``known``), drained from
    ``start`` to ``newest`` and closed: the ids it handed on, and the reader."""
    reader = ReadAhead(source, lambda: source, depth=depth, batch_size=500)
    if known:
        reader.learn_newest(newest)
    try:
        return drain(reader, start, newest), reader
    finally:
        reader.close()


def test_catch_up_reads_windows_at_once_in_id_order_with_two_reads_per_thousand() -> None:
    # Given a gapless log of 10,000 events, a newest id known far ahead, read-ahead of 4
    source = WindowSource()
    source.add(*range(1, 10_001))
    reader = ReadAhead(source, lambda: source, depth=4, batch_size=500)
    reader.learn_newest(10_000)
    source.gate = threading.Event()
    threading.Timer(0.2, source.gate.set).start()
    # When the engine asks batch after batch
    try:
        got = drain(reader, 0, 10_000)
    finally:
        reader.close()
    # Then every id came once, in order, several windows were read at once, and the log
    # cost two reads per 1,000 events
    assert got == list(range(1, 10_001))
    assert source.most_in_flight >= 2
    reads = len(source.window_calls) + sum(1 for c in source.calls if c[0] in ("after", "newest"))
    assert reads <= 21


def test_gaps_and_hidden_ids_are_missing_exactly_as_from_one_long_read() -> None:
    # Given a log with a gap wider than a window and ids not committed yet
    source = WindowSource()
    source.add(*range(1, 400), *range(1500, 3001))
    source.hidden = {2000, 2001, 2999}
    # When the engine catches up
    got, _ = catch_up(source, 0, 3000, depth=3)
    # Then it got every visible id once, ascending (the hidden ones are left to the backlog)
    expected = [i for i in [*range(1, 400), *range(1500, 3001)] if i not in source.hidden]
    assert got == expected


def test_a_position_that_does_not_follow_drops_the_plan() -> None:
    # Given a catch-up plan running
    source = WindowSource()
    source.add(*range(1, 5001))
    reader = ReadAhead(source, lambda: source, depth=4, batch_size=500)
    reader.learn_newest(5000)
    try:
        first = reader.next_batch(0, None, retry)
        assert first is not None and int(first[-1]["id"]) == 500
        # When the engine asks for an earlier position (a delivery was cut short)
        again = reader.next_batch(200, None, retry)
        # Then the read starts there, not where the plan had got to
        assert again is not None and int(again[0]["id"]) == 201
        # And a change of event types also starts afresh
        typed = reader.next_batch(int(again[-1]["id"]), {"Shotgun_Shot_Change"}, retry)
        assert typed is not None and int(typed[0]["id"]) == int(again[-1]["id"]) + 1
    finally:
        reader.close()


def test_a_background_read_that_fails_is_repeated_in_the_engine_thread() -> None:
    # Given a window whose background read fails once
    source = WindowSource()
    source.add(*range(1, 3001))
    source.fail_windows = {1000}
    # When catching up
    got, reader = catch_up(source, 0, 3000)
    # Then the window was read again under the engine's policy and nothing is missing
    assert got == list(range(1, 3001))
    assert reader.windows_retried == 1


def test_caught_up_reads_one_batch_at_a_time() -> None:
    # Given a log whose newest id is within one batch
    source = WindowSource()
    source.add(*range(1, 101))
    reader = ReadAhead(source, lambda: source, depth=4, batch_size=500)
    reader.learn_newest(100)
    try:
        # When the engine polls
        batch = reader.next_batch(0, None, retry)
        assert batch is not None and len(batch) == 100
        assert reader.next_batch(100, None, retry) == []
    finally:
        reader.close()
    # Then only plain forward reads were made, no windows
    assert source.window_calls == []
    assert [c[0] for c in source.calls] == ["after", "after"]


def test_full_plain_batch_looks_for_the_newest_id_and_starts_a_plan() -> None:
    # Given a reader that knew nothing of the log's end and a log of 5,000 events
    source = WindowSource()
    source.add(*range(1, 5001))
    # When the first read comes back full
    got, _ = catch_up(source, 0, 5000, known=False)
    # Then the newest id was read once and the rest came in windows
    assert got == list(range(1, 5001))
    assert sum(1 for c in source.calls if c[0] == "newest") == 1
    assert len(source.window_calls) == 9


def test_a_site_that_answers_at_once_is_read_one_batch_at_a_time_even_far_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a log of 5,000 events on a site whose reads wait for nothing (loopback: all of a
    # read's time is the reader's own work), where reading ahead would only compete with the
    # plugins for the interpreter
    monkeypatch.setattr(readahead, "thread_time", readahead.perf_counter)
    source = WindowSource(latency=0)
    source.add(*range(1, 5001))
    # When the engine catches up
    got, reader = catch_up(source, 0, 5000)
    # Then every event came once, in order, from plain reads only
    assert got == list(range(1, 5001))
    assert source.window_calls == []
    assert not reader.site_bound
    # And once reads wait for the site, the next catch-up reads ahead again
    monkeypatch.undo()
    source.latency = 0.002
    source.add(*range(5001, 10001))
    got, _ = catch_up(source, 5000, 10000, known=False)
    assert got == list(range(5001, 10001))
    assert len(source.window_calls) == 9
