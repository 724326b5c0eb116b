"""The site's time, as seen from the daemon: immune to steps of the local wall clock.

Backlog deadlines are in site time (an event's ``created_at`` plus the
timeout). Comparing them with the daemon's wall clock would let an NTP step, or
a daemon clock that runs ahead of the site's, drop gaps early or wait too long.
So "now" is the newest ``created_at`` seen, moved forward by the monotonic
clock since it was seen; it never goes backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SiteClock:
    """Estimate the site's current time from the events it wrote."""

    def __init__(self, wall: Callable[[], datetime], monotonic: Callable[[], float]) -> None:
        self._wall = wall
        self._monotonic = monotonic
        # (site time, monotonic time when it was seen); one tuple so threads read it whole.
        self._anchor: tuple[datetime, float] | None = None

    def observe(self, created_at: object) -> None:
        """Learn from an event's creation time; only a later time moves the estimate."""
        if not isinstance(created_at, datetime):
            return
        moment = (
            created_at.replace(tzinfo=UTC)
            if created_at.tzinfo is None
            else created_at.astimezone(UTC)
        )
        if self._anchor is None or moment > self.now():
            self._anchor = (moment, self._monotonic())

    def now(self) -> datetime:
        """The site's time now; the wall clock until an event was seen."""
        anchor = self._anchor
        if anchor is None:
            return self._wall()
        seen, at = anchor
        return seen + timedelta(seconds=self._monotonic() - at)
