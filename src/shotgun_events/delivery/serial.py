"""Serial delivery: every plugin in the engine's thread, event by event, in the original's order."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from shotgun_events.delivery.base import Hooks
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event

log = logging.getLogger("engine.delivery")


class SerialDelivery:
    """Every plugin in the engine's thread: event by event, plugin by plugin."""

    def __init__(self, hooks: Hooks, stop: threading.Event) -> None:
        self._hooks = hooks
        self._stop = stop
        self._runners: list[PluginRunner] = []
        # (runner, monotonic start, thread id) of the event in hand, for the callback watch.
        self._current: tuple[PluginRunner, float, int] | None = None

    def add(self, runner: PluginRunner) -> None:
        """Start delivering to a new plugin."""
        self._runners.append(runner)

    def remove(self, runner: PluginRunner) -> None:
        """Stop delivering to a removed plugin."""
        self._runners.remove(runner)

    def order(self, runners: list[PluginRunner]) -> None:
        """Adopt the plugin order of the loader (collections, then file names)."""
        self._runners = list(runners)

    def fetch_position(self, head: int) -> int:
        """Read from the slowest active plugin, as the original did."""
        active = [r.cursor.last_id for r in self._runners if r.active]
        return min(active) if active else head

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Nothing to wait for: delivery happens inside the engine's step."""

    def deliver(self, batch: list[Event]) -> bool:
        """Hand each event to every active plugin in order; False if interrupted."""
        now = self._hooks.clock()
        try:
            for event in batch:
                if self._stop.is_set():
                    return False
                self._one(event, now)
            for runner in self._runners:
                runner.flush()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            return False
        return True

    def deliver_late(self, events: list[Event]) -> None:
        """Hand on late events to the plugins that wait for them."""
        now = self._hooks.clock()
        try:
            for event in events:
                self._one(event, now)
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)

    def _one(self, event: Event, now: datetime) -> None:
        thread = threading.get_ident()
        for runner in self._runners:
            self._current = (runner, time.monotonic(), thread)
            try:
                outcome = runner.handle(event, now)
            finally:
                self._current = None
            if outcome is Outcome.FAILED:
                self._hooks.on_failed(runner.plugin)
            elif outcome is Outcome.INTERRUPTED:
                return

    def expire(self, now: datetime) -> None:
        """Give up on backlog ids whose wait is over."""
        try:
            for runner in self._runners:
                runner.expire(now)
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)

    def save_pending(self) -> bool:
        """Retry failed state writes; False while they still fail."""
        pending = [r for r in self._runners if r.unsaved]
        try:
            for runner in pending:
                runner.save()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            return False
        if pending:
            log.warning("the state file can be written again; resuming delivery")
        return True

    def busy(self) -> list[tuple[PluginRunner, float, int | None]]:
        """The plugin handling an event in the engine's thread, if any, and for how long."""
        current = self._current
        if current is None:
            return []
        runner, since, thread = current
        return [(runner, time.monotonic() - since, thread)]

    def in_flight(self) -> set[int]:
        """Late events are handled before ``deliver_late`` returns."""
        return set()

    def drain(self, timeout: float) -> bool:
        """Delivery is done when ``deliver`` returns."""
        return True

    def close(self, timeout: float) -> None:
        """Persist cursors that moved over unmatched events."""
        for runner in self._runners:
            try:
                runner.flush()
            except StateWriteError as exc:
                self._hooks.on_state_trouble(exc)
