"""The delivery interface: what the engine asks of a way of running plugins, and what it hears back.

``SerialDelivery`` (serial.py) keeps the original's order: for each event,
every plugin in turn, in one thread. ``ParallelDelivery`` (parallel.py) gives
each plugin a worker with its own cursor (worker.py), so a slow plugin falls
behind alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event

if TYPE_CHECKING:
    from shotgun_events.delivery.runner import PluginRunner
    from shotgun_events.plugins.loader import Plugin


class Delivery(Protocol):
    """The engine's view of delivery, whatever the threading."""

    def add(self, runner: PluginRunner) -> None:
        """Start delivering to a new plugin."""
        ...

    def remove(self, runner: PluginRunner) -> None:
        """Stop delivering to a removed plugin."""
        ...

    def fetch_position(self, head: int) -> int:
        """Return the id after which the engine reads next."""
        ...

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Block while no plugin can take another batch, calling ``serve`` meanwhile."""
        ...

    def deliver(self, batch: list[Event]) -> bool:
        """Hand a fresh batch on; False when delivery was cut short."""
        ...

    def deliver_late(self, events: list[Event]) -> None:
        """Hand on events found through the backlog."""
        ...

    def expire(self, now: datetime) -> None:
        """Give up on backlog ids whose wait is over."""
        ...

    def save_pending(self) -> bool:
        """Retry failed state writes; False while they still fail."""
        ...

    def busy(self) -> list[tuple[PluginRunner, float, int | None]]:
        """Return (runner, seconds in the current callback, thread id) for busy plugins."""
        ...

    def in_flight(self) -> set[int]:
        """Ids of late events handed on but not handled yet (not to be read again)."""
        ...

    def drain(self, timeout: float) -> bool:
        """Wait until every active plugin has handled what it was given (tests, benchmarks)."""
        ...

    def close(self, timeout: float) -> None:
        """Finish the events in hand and stop."""
        ...


class Hooks:
    """What delivery reports back to the engine."""

    def __init__(
        self,
        *,
        on_failed: Callable[[Plugin], None],
        on_state_trouble: Callable[[StateWriteError], None],
        clock: Callable[[], datetime],
        event_types: Callable[[], Collection[str] | None] = lambda: None,
    ) -> None:
        self.on_failed = on_failed
        self.on_state_trouble = on_state_trouble
        self.clock = clock
        self.event_types = event_types
