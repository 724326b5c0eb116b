"""Read-ahead of the event log: during catch-up, the next id windows are read while plugins work.

Caught up (the newest id known is within one batch), the engine reads one
batch at a time, as it always did. Catching up (the newest id is far ahead)
on a site that makes reads wait (the engine's last read spent longer waiting
for the answer than decoding it), the ids up to the newest are cut into
consecutive windows of ``batch_size`` ids, and up to ``depth`` of them are
read at once, each on a connection of its own; they are handed on strictly
in id order. On a site that answers at once, reads ahead would only compete
with the plugins for the interpreter (one runs at a time), so the engine
reads one batch at a time there too. A window of ``batch_size`` ids holds
at most ``batch_size`` events, so no read is ever cut short, and on a gapless
log every read returns a full batch (two reads per 1,000 events at 500).

Correctness is that of a plain forward read: every window is read after the
newest id was seen, ids missing from a window (gaps, not yet committed) are
missing exactly as they would be from one long read and go to the backlog,
and the plan is dropped whenever the position the engine asks for is not
where the last window ended (a plugin added, a delivery cut short, a
reload), or the event types asked for change. Reads that fail in the
background are repeated in the engine's thread under its retry policy.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from time import perf_counter, thread_time
from typing import Any, Protocol, cast

from shotgun_events.client.source import EventSource
from shotgun_events.events import Event

log = logging.getLogger("engine.readahead")

RetryCall = Callable[[str, Callable[[], Any]], Any]


class WindowSource(Protocol):
    """A source that can read one id window (``ShotgunEventSource``)."""

    def fetch_window(
        self, after: int, upto: int, limit: int, event_types: Collection[str] | None = None
    ) -> list[Event]:
        """Return the events with ``after < id <= upto`` (of these types), ascending."""
        ...


@dataclass
class Window:
    """One id window ``(after, upto]`` and its read in the background."""

    after: int
    upto: int
    future: Future[list[Event]]


class ReadAhead:
    """Hand the engine its next batch, reading ahead in id windows while catching up."""

    def __init__(
        self,
        source: EventSource,
        source_factory: Callable[[], EventSource],
        *,
        depth: int,
        batch_size: int,
    ) -> None:
        """Read up to ``depth`` windows of ``batch_size`` ids at once (1 = never read ahead)."""
        self._source = source
        self._source_factory = source_factory
        self._batch = batch_size
        self._depth = depth if hasattr(source, "fetch_window") else 1
        self._newest = 0
        self._pending: deque[Window] = deque()
        #: Where the next planned window starts; None when no plan is running.
        self._next_after: int | None = None
        self._types: frozenset[str] | None = None
        #: (last id handed on, end of its window): where the engine must ask next.
        self._handed: tuple[int, int] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._sources: list[EventSource] = []
        self._lock = threading.Lock()
        #: Windows read in the background / reads repeated in the engine's thread.
        self.windows_read = 0
        self.windows_retried = 0
        self._full_runs = 0
        #: Whether the engine's last read waited for the site longer than it took to decode
        #: (unknown before the first read: not assumed).
        self.site_bound = False

    @property
    def depth(self) -> int:
        """How many windows may be read at once."""
        return self._depth

    def learn_newest(self, newest: int) -> None:
        """Note the newest id the site reported (catch-up runs up to it)."""
        self._newest = max(self._newest, newest)

    def more_ahead(self) -> bool:
        """True while planned windows are left: the engine reads on without waiting."""
        return self._next_after is not None and (
            bool(self._pending) or self._next_after < self._newest
        )

    def next_batch(
        self, position: int, types: Collection[str] | None, retry_call: RetryCall
    ) -> list[Event] | None:
        """The events after ``position`` for the engine's next step; None when stopped.

        ``retry_call(what, read)`` is the engine's retry policy (``SiteRetry.call``).
        """
        wanted = frozenset(types) if types is not None else None
        if self._next_after is not None and not self._continues(position, wanted):
            self._drop_plan()
        if (
            self._next_after is None
            and self._depth > 1
            and self.site_bound
            and self._newest - position > self._batch
        ):
            self._next_after = position
            self._types = wanted
        if self._next_after is not None:
            events = self._from_plan(retry_call)
            if events is None or events:
                return events
            # the plan reached the newest id known: read on from here as usual
        return self._plain(position, types, retry_call)

    def close(self) -> None:
        """Stop background reads and close their connections."""
        self._drop_plan()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            sources, self._sources = self._sources, []
        for source in sources:
            closer = getattr(source, "close", None)
            if closer is not None:
                closer()

    # -- internals -------------------------------------------------------------

    def _plain(
        self, position: int, types: Collection[str] | None, retry_call: RetryCall
    ) -> list[Event] | None:
        started, cpu = perf_counter(), thread_time()
        batch: list[Event] | None = retry_call(
            "reading the event log", lambda: self._source.fetch_after(position, self._batch, types)
        )
        cpu = thread_time() - cpu
        self.site_bound = perf_counter() - started - cpu > cpu
        if not batch:
            self._full_runs = 0
            return batch
        last = int(batch[-1]["id"])
        self.learn_newest(last)
        if len(batch) < self._batch or self._depth <= 1:
            self._full_runs = 0
            return batch
        self._full_runs += 1
        # A full batch: the log may be far ahead. A read of the newest id tells whether
        # a catch-up plan is worth starting; asked after 1, 2, 4, 8... full batches in a
        # row, so a steady stream just above one batch per poll costs few extra reads.
        if self._newest - last <= self._batch and self._full_runs & (self._full_runs - 1) == 0:
            newest = retry_call("reading the newest event id", self._source.newest_id)
            if isinstance(newest, int):
                self.learn_newest(newest)
        return batch

    def _continues(self, position: int, types: frozenset[str] | None) -> bool:
        """Whether the engine asks for exactly what follows the last window handed on."""
        if types != self._types:
            return False
        if self._handed is None:
            return position == self._next_after or (
                bool(self._pending) and position == self._pending[0].after
            )
        last, upto = self._handed
        return last <= position <= upto

    def _from_plan(self, retry_call: RetryCall) -> list[Event] | None:
        self._fill()
        while self._pending:
            window = self._pending.popleft()
            events = self._result(window, retry_call)
            if events is None:
                self._drop_plan()
                return None
            self._fill()
            if events:
                self._handed = (int(events[-1]["id"]), window.upto)
                self.learn_newest(int(events[-1]["id"]))
                return events
            # a window of gaps only: nothing to hand on, read on
        self._drop_plan()
        return []

    def _fill(self) -> None:
        """Start background reads until ``depth`` windows are in flight or the plan ends."""
        assert self._next_after is not None
        while len(self._pending) < self._depth and self._next_after < self._newest:
            after = self._next_after
            upto = min(after + self._batch, self._newest)
            future = self._executor().submit(self._read, after, upto, self._types)
            self._pending.append(Window(after, upto, future))
            self._next_after = upto

    def _result(self, window: Window, retry_call: RetryCall) -> list[Event] | None:
        try:
            return window.future.result()
        except Exception as exc:  # the engine's retry policy decides what happens next
            log.debug("background read of ids %d..%d failed: %s", window.after, window.upto, exc)
            self.windows_retried += 1
            reader = cast(WindowSource, self._source)
            result: list[Event] | None = retry_call(
                "reading the event log",
                lambda: reader.fetch_window(window.after, window.upto, self._batch, self._types),
            )
            return result

    def _read(self, after: int, upto: int, types: frozenset[str] | None) -> list[Event]:
        source = getattr(self._local, "source", None)
        if source is None:
            source = self._source_factory()
            self._local.source = source
            with self._lock:
                self._sources.append(source)
        reader = cast(WindowSource, source)
        events = reader.fetch_window(after, upto, self._batch, types)
        self.windows_read += 1
        return events

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._depth, thread_name_prefix="read-ahead")
        return self._pool

    def _drop_plan(self) -> None:
        for window in self._pending:
            window.future.cancel()
        self._pending.clear()
        self._next_after = None
        self._handed = None
        self._types = None
