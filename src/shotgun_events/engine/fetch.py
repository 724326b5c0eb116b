"""The fetch step: take the next batch from the read-ahead, keep the head and the counters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shotgun_events.client.retry import SiteRetry
from shotgun_events.engine.pacing import Pacing
from shotgun_events.engine.readahead import ReadAhead
from shotgun_events.engine.settings import Stats
from shotgun_events.engine.siteclock import SiteClock
from shotgun_events.events import Event


class FreshReads:
    """Take the next batch of new events from the read-ahead and note what it tells.

    ``head`` is the highest event id read so far (or the start position);
    every read moves the site clock, the pacing and the counters, and the
    first one completed reports the engine ready.
    """

    def __init__(
        self,
        reader: ReadAhead,
        retry: SiteRetry,
        *,
        site_clock: SiteClock,
        pacing: Pacing,
        stats: Stats,
        monotonic: Callable[[], float],
        on_ready: Callable[[], None],
    ) -> None:
        self._reader = reader
        self._retry = retry
        self._site_clock = site_clock
        self._pacing = pacing
        self._stats = stats
        self._monotonic = monotonic
        self._on_ready = on_ready
        self._ready = False
        self.head = 0
        #: created_at of the newest event fetched (for plugins' lag in seconds).
        self.head_created_at: datetime | None = None

    def next_batch(self, position: int, types: frozenset[str] | None) -> list[Event] | None:
        """Return the events after ``position`` (of ``types``, None = all); None when stopped."""
        batch = self._reader.next_batch(position, types, self._retry.call)
        if batch is None:
            return None
        self._stats.batches += 1
        self._stats.events_fetched += len(batch)
        if batch:
            self.head = max(self.head, int(batch[-1]["id"]))
            created_at = batch[-1].get("created_at")
            self._site_clock.observe(created_at)
            if isinstance(created_at, datetime):
                self.head_created_at = created_at
        self._pacing.read_done(self._monotonic(), found=bool(batch), head=self.head)
        if not self._ready:
            self._ready = True
            self._on_ready()
        return batch
