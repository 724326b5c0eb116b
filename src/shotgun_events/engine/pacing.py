"""When the poll loop reads next: adaptive polling and wake-ups, as a pure rule.

Three inputs decide the next read, all in monotonic seconds passed in by the
caller (no clock is read here, so tests drive it with plain numbers):

- a read that returned events makes the next one come after ``active``
  seconds, since more are likely on their way;
- each read that returned nothing doubles the wait, step by step, back up to
  ``idle`` (the configured ``fetch_interval``): an idle daemon reads exactly
  as often as one without adaptive polling;
- a wake-up (a webhook naming an event the plugins have not passed yet)
  brings the next read forward to now, but never closer than ``wake_gap``
  to the previous read, so a burst of deliveries costs a handful of reads.
  When the named event is still not visible after that read (a real site
  shows rows 0.3-0.4 s after the write), the loop looks again after a wait
  that doubles each time until it reaches ``idle``, then leaves it to the
  regular polls.
"""

from __future__ import annotations

#: Shortest time between two reads that wake-ups cause (a burst of 500
#: deliveries in one second then costs about 1 / WAKE_GAP reads, not 500).
WAKE_GAP = 0.15


class Pacing:
    """The next-read rule for one poll loop; called from the loop's thread only."""

    def __init__(self, *, idle: float, active: float, wake_gap: float = WAKE_GAP) -> None:
        """``idle`` is fetch_interval; ``active`` (clamped to ``idle``) the wait while busy."""
        self.idle = max(0.0, idle)
        self.active = max(0.0, min(active, self.idle))
        self.wake_gap = max(0.0, min(wake_gap, self.idle))
        self._interval = self.idle
        self._last_read: float | None = None
        #: Highest event id a wake-up asked for that no read has brought yet (0: none).
        self._wanted = 0
        #: Wait before looking again for a wanted event that was not there yet.
        self._retry = self.wake_gap

    @property
    def interval(self) -> float:
        """The current wait between two regular reads."""
        return self._interval

    @property
    def wanted(self) -> int:
        """The highest event id a pending wake-up asks for (0 when none is pending)."""
        return self._wanted

    def read_done(self, now: float, *, found: bool, head: int) -> None:
        """Note a fresh read at ``now``: ``found`` events or not; ``head``: highest id seen."""
        self._last_read = now
        if found:
            self._interval = self.active
        else:
            # Step by step back to the idle interval; never below the active one.
            self._interval = min(self.idle, max(self._interval * 2, self.active, 1e-3))
        if self._wanted and head >= self._wanted:
            self._wanted = 0
            self._retry = self.wake_gap
        elif self._wanted:
            self._retry *= 2
            if self._retry >= self.idle:
                # The regular polls will find it: stop reading early for it.
                self._wanted = 0
                self._retry = self.wake_gap

    def wake(self, event_id: int) -> None:
        """Ask for a read soon because event ``event_id`` exists (0: an id that is not known)."""
        self._wanted = max(self._wanted, event_id, 1)

    def next_read(self, now: float) -> float:
        """The monotonic time of the next read (``now`` or later means: read now)."""
        if self._last_read is None:
            return now
        due = self._last_read + self._interval
        if self._wanted:
            due = min(due, self._last_read + self._retry)
        return due
