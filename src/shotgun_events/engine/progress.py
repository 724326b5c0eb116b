"""Catch-up progress: how far behind the daemon is, how fast it gains, and when it will be level.

While the daemon is behind (the last read was a full batch, or a plugin is
a batch or more behind the newest event read), every ``every`` seconds it asks
the site for the newest id and the oldest event not yet delivered, logs one
line (events behind, age of the oldest, rate, estimate), and publishes the
same figures for ``status`` and the status page. Two small reads per period,
in the engine's thread, only while catching up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from shotgun_events.client.source import EventSource
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.errors import SiteError

log = logging.getLogger("engine.progress")


class EngineView(Protocol):
    """What progress reads of the engine (in the engine's thread)."""

    @property
    def head(self) -> int:
        """The newest event id read."""
        ...

    @property
    def runners(self) -> list[PluginRunner]:
        """The plugins' runners."""
        ...

    @property
    def source(self) -> EventSource:
        """The engine's view of the site."""
        ...

    def now(self) -> datetime:
        """The site's time."""
        ...


@dataclass(frozen=True)
class Progress:
    """One measurement of a catch-up."""

    behind_events: int
    oldest_age_seconds: float | None
    rate: float | None
    eta_seconds: float | None
    started_at: float

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain JSON values (``status --json``, ``/status.json``)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for a person: behind, oldest, rate, estimate."""
        parts = [f"{self.behind_events:,} events behind"]
        if self.oldest_age_seconds is not None:
            parts.append(f"oldest undelivered {duration(self.oldest_age_seconds)} old")
        if self.rate is not None:
            parts.append(f"{self.rate:,.0f} events/s")
        if self.eta_seconds is not None:
            parts.append(f"caught up in about {duration(self.eta_seconds)}")
        elif self.rate is not None:
            parts.append("not gaining on the site yet")
        return ", ".join(parts)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    whole = int(max(0.0, seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


class CatchUp:
    """Measure and report a catch-up every ``every`` seconds; ``current`` is None when level."""

    def __init__(
        self,
        *,
        batch_size: int,
        every: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._batch_size = batch_size
        self._every = every
        self._monotonic = monotonic
        self._next = monotonic() + every
        self._last: tuple[float, int, int] | None = None  # (when, slowest position, newest id)
        self._started: float | None = None
        #: The latest measurement while catching up (read from other threads), else None.
        self.current: Progress | None = None

    def step(self, engine: EngineView, *, full: bool) -> None:
        """Measure when a period is over and the daemon is (or was) behind."""
        now = self._monotonic()
        if now < self._next:
            return
        self._next = now + self._every
        positions = [r.cursor.last_id for r in engine.runners if r.active]
        if not positions:
            return
        slowest = min(positions)
        if not (full or engine.head - slowest >= self._batch_size or self._started is not None):
            return
        try:
            newest = engine.source.newest_id()
            oldest = engine.source.fetch_after(slowest, 1) if newest > slowest else []
        except SiteError as exc:
            log.debug("catch-up progress not measured: %s", exc)
            return
        behind = max(0, newest - slowest)
        if behind < self._batch_size and not full:
            self._finish(now, slowest)
            return
        self._report(now, engine, slowest, newest, behind, oldest[0] if oldest else None)

    def _report(
        self,
        now: float,
        engine: EngineView,
        slowest: int,
        newest: int,
        behind: int,
        oldest: dict[str, Any] | None,
    ) -> None:
        if self._started is None:
            self._started = time.time()
        created = oldest.get("created_at") if oldest else None
        age = (engine.now() - created).total_seconds() if isinstance(created, datetime) else None
        rate = eta = None
        if self._last is not None and now > self._last[0]:
            elapsed = now - self._last[0]
            rate = max(0.0, (slowest - self._last[1]) / elapsed)
            gaining = rate - max(0.0, (newest - self._last[2]) / elapsed)
            eta = behind / gaining if gaining > 0 else None
        self._last = (now, slowest, newest)
        self.current = Progress(behind, age, rate, eta, self._started)
        log.info("catching up: %s", self.current.describe())

    def _finish(self, now: float, slowest: int) -> None:
        if self._started is not None:
            log.info(
                "caught up: every plugin is within %d events of the newest (after %s)",
                self._batch_size,
                duration(time.time() - self._started),
            )
        self._started = None
        self._last = None
        self.current = None


def as_report(progress: Progress | None) -> dict[str, Any] | None:
    """The published progress as JSON values, or None when not catching up."""
    return None if progress is None else progress.as_dict()
