"""Per-plugin position in the event log and the backlog of missing ids; pure, no I/O.

Ids are allocated before the transaction that writes the row commits, so a
reader can see id N+2 before N+1. A cursor remembers the highest id delivered
and, for each id it skipped over, until when it is still worth waiting for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class GapReport:
    """What one advance did to the backlog."""

    waiting: tuple[int, ...] = ()
    #: Ids skipped over whose wait would already be over: logged, not waited for.
    abandoned: tuple[int, ...] = ()


#: The report of an advance that skipped nothing (the common case; shared, immutable).
NO_GAP = GapReport()


@dataclass
class Cursor:
    """Where one plugin stands: the highest id delivered and the ids still awaited."""

    last_id: int
    backlog: dict[int, datetime] = field(default_factory=dict)
    #: Ids above ``last_id`` already handled (plugins whose events finish out of order):
    #: ``last_id`` is then the watermark, every id up to it handled or in the backlog.
    done: set[int] = field(default_factory=set)

    def copy(self) -> Cursor:
        """Return an independent copy (the state store keeps snapshots)."""
        return Cursor(self.last_id, dict(self.backlog), set(self.done))

    def is_fresh(self, event_id: int) -> bool:
        """Tell whether an event from a forward read has not been seen yet."""
        return event_id > self.last_id

    def is_awaited(self, event_id: int) -> bool:
        """Tell whether an event found by id is one this cursor still waits for."""
        return event_id in self.backlog

    def advance(
        self, event_id: int, created_at: datetime | None, now: datetime, timeout: timedelta
    ) -> GapReport:
        """Move past a delivered fresh event, putting every skipped id in the backlog.

        The wait for a skipped id is measured from the creation time of the
        event that revealed the gap: the missing row was allocated before it.
        """
        if event_id == self.last_id + 1:
            self.last_id = event_id
            return NO_GAP
        if event_id <= self.last_id:
            return NO_GAP
        skipped = range(self.last_id + 1, event_id)
        self.last_id = event_id
        if self.done:
            self.done = {i for i in self.done if i > event_id}
        expiry = _aware(created_at or now) + timeout
        if expiry <= _aware(now):
            return GapReport(abandoned=tuple(skipped))
        for missing in skipped:
            self.backlog[missing] = expiry
        return GapReport(waiting=tuple(skipped))

    def settle_late(self, event_id: int) -> bool:
        """Forget a backlog id once its late event was delivered; never moves backwards."""
        return self.backlog.pop(event_id, None) is not None

    def expire(self, now: datetime) -> list[int]:
        """Drop and return the backlog ids whose wait is over."""
        moment = _aware(now)
        due = sorted(i for i, expiry in self.backlog.items() if expiry <= moment)
        for event_id in due:
            del self.backlog[event_id]
        return due

    def jump_to(self, event_id: int) -> None:
        """Place the cursor at an id chosen by an operator, dropping the backlog."""
        self.last_id = event_id
        self.backlog.clear()
        self.done.clear()


def _aware(moment: datetime) -> datetime:
    """Return the instant in UTC, treating naive datetimes as UTC.

    Converting matters for arithmetic: ``datetime + timedelta`` works on the wall
    time of the datetime's own zone, so near a DST change a local-zone time
    (shotgun_api3 hands out local times) plus 5 minutes can land an hour off.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def ranges(ids: tuple[int, ...] | list[int]) -> str:
    """Compress ids into 'a-b, c' for one-line log messages."""
    parts: list[str] = []
    start = prev = None
    for value in sorted(ids):
        if start is None:
            start = prev = value
        elif prev is not None and value == prev + 1:
            prev = value
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = value
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    if len(parts) > 10:
        return ", ".join(parts[:10]) + f" and {len(parts) - 10} more ranges"
    return ", ".join(parts)
