"""The backlog step: read by id the late events plugins still wait for, once per poll interval."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.fanout import Fanout
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.engine.settings import Stats
from shotgun_events.engine.siteclock import SiteClock


class BacklogPoll:
    """Look for late events by id, no more often than ``interval`` seconds."""

    def __init__(
        self,
        source: EventSource,
        retry: SiteRetry,
        *,
        interval: float,
        monotonic: Callable[[], float],
        site_clock: SiteClock,
        stats: Stats,
    ) -> None:
        self._source = source
        self._retry = retry
        self._interval = interval
        self._monotonic = monotonic
        self._site_clock = site_clock
        self._stats = stats
        self._next_poll = 0.0

    def poll(self, runners: Iterable[PluginRunner], delivery: Fanout) -> None:
        """Read the ids the active plugins await and hand what turned up to ``delivery``."""
        if self._monotonic() < self._next_poll:
            return
        self._next_poll = self._monotonic() + self._interval
        awaited: set[int] = set()
        for runner in runners:
            if runner.active:
                awaited |= runner.awaited()
        # Late events already handed to a worker are not read (and queued) again.
        awaited -= delivery.in_flight()
        if not awaited:
            return
        ids = sorted(awaited)
        found = self._retry.call("reading missing event ids", lambda: self._source.fetch_ids(ids))
        self._stats.backlog_reads += 1
        if found:
            for event in found:
                self._site_clock.observe(event.get("created_at"))
            delivery.deliver_late(found)
