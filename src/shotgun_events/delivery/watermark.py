"""Every plugin's position: a watermark over events that may finish out of id order; pure rules.

Events are taken in id order (the *read* cursor moves as they are handed to
the executor) and finish in any order across ordering keys; an inline plugin
is the window of one, where each event finishes before the next is taken.
What is saved is the watermark: ``last_id`` = the lowest id not yet handled,
minus one; ``done`` = the ids above it already handled (none while events
finish in order, so the saved form is the original's); ``backlog`` as for
any cursor. After a crash the plugin reads again from the watermark and skips
the ids in ``done``, so it re-runs only the events that were in flight and
loses none. After a failure it reads again from where it was before the
first event that did not finish, gaps found since included.
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta

from shotgun_events.cursor import NO_GAP, Cursor, GapReport

#: No ids (shared: never changed by a caller).
_NONE: list[int] = []

FRESH = "fresh"
LATE = "late"
#: A fresh id recorded as done before a restart: moves the read cursor, runs nothing.
SEEN = "seen"


class Watermark:
    """Read position, events in flight and the handled ids above the lowest open one."""

    def __init__(self, saved: Cursor) -> None:
        #: Where reading continues; shares its backlog with the saved form.
        self.read = Cursor(saved.last_id, saved.backlog)
        self.done: set[int] = set(saved.done)
        self._done_heap = sorted(self.done)
        #: Fresh ids handed out and not handled (a heap; finished ones removed lazily).
        self._open: list[int] = []
        #: Open id -> where reading stood before it was taken (a failure rewinds to there).
        self._prior: dict[int, int] = {}
        self._closed: set[int] = set()
        self.late: set[int] = set()
        #: Ids whose run ended without handling them (failure, stop): read again later.
        self.stuck: set[int] = set()
        self._view = Cursor(saved.last_id, self.read.backlog, self.done)

    @property
    def last_id(self) -> int:
        """The watermark: every id up to it is handled or in the backlog."""
        return self._open[0] - 1 if self._open else self.read.last_id

    def saved(self) -> Cursor:
        """The form to persist: a view kept up to date, sharing the backlog and done set
        (the store copies what it keeps; ``copy()`` it to keep a snapshot)."""
        view = self._view
        view.last_id = self._open[0] - 1 if self._open else self.read.last_id
        view.backlog = self.read.backlog
        view.done = self.done
        return view

    def classify(self, event_id: int) -> str | None:
        """Say what a read event is to this plugin: FRESH, SEEN, LATE or None (not needed)."""
        if event_id > self.read.last_id:
            return SEEN if event_id in self.done else FRESH
        if event_id in self.read.backlog and event_id not in self.late:
            return LATE
        return None

    def take(
        self,
        event_id: int,
        kind: str,
        created_at: datetime | None,
        now: datetime,
        timeout: timedelta,
    ) -> GapReport:
        """Hand an event out (or pass a SEEN one): move the read cursor, note it open."""
        if kind == LATE:
            self.late.add(event_id)
            return NO_GAP
        prior = self.read.last_id
        report = self.read.advance(event_id, created_at, now, timeout)
        if kind == FRESH:
            heapq.heappush(self._open, event_id)
            self._prior[event_id] = prior
        else:
            self._settle_front()
        return report

    def finish(self, event_id: int, handled: bool) -> tuple[list[int], bool]:
        """Note an event finished; return (ids newly done above the watermark, backlog settled)."""
        if self.late and event_id in self.late:
            self.late.discard(event_id)
        elif not handled:
            self.stuck.add(event_id)
            return _NONE, False
        elif self._open and self._open[0] == event_id and not self._closed:
            # The lowest one open (always so with events finishing in order): off the front.
            heapq.heappop(self._open)
            del self._prior[event_id]
            if self._done_heap:
                self._settle_front()
            settled = bool(self.read.backlog) and self.read.backlog.pop(event_id, None) is not None
            return _NONE, settled
        elif event_id not in self._closed:
            self._closed.add(event_id)
        if not handled:
            return _NONE, False
        settled = self.read.backlog.pop(event_id, None) is not None
        self._settle_front()
        if event_id > self.last_id and event_id not in self.done:
            self.done.add(event_id)
            heapq.heappush(self._done_heap, event_id)
            return [event_id], settled
        return _NONE, settled

    def _settle_front(self) -> None:
        """Drop finished ids off the front of the open heap, and done ids under the watermark."""
        while self._open and self._open[0] in self._closed:
            finished = heapq.heappop(self._open)
            self._closed.discard(finished)
            self._prior.pop(finished, None)
        mark = self.last_id
        while self._done_heap and self._done_heap[0] <= mark:
            self.done.discard(heapq.heappop(self._done_heap))

    def rewind(self) -> list[int]:
        """With nothing in flight: read again from where reading stood before the lowest event
        that did not finish; return the backlog ids dropped.

        Backlog ids above that point are found again when their gap is read again.
        """
        mark = self._prior.get(self._open[0], self.last_id) if self._open else self.last_id
        self._open.clear()
        self._closed.clear()
        self._prior.clear()
        self.stuck.clear()
        self.read.last_id = mark
        dropped = [i for i in self.read.backlog if i > mark]
        for event_id in dropped:
            del self.read.backlog[event_id]
        return dropped
