"""Auto delivery: quick plugins share the engine's thread; a slow one gets a thread of its own.

Every plugin starts in the shared group, run like serial mode (event by
event, plugin by plugin, no hand-off between threads, so trivial plugins
cost what they cost in serial mode). The time each plugin spends in one
batch is measured; a plugin that spends more than ``threshold`` seconds (150 ms) in
a batch is taken out of the group at once, with its cursor saved, and given
a worker of its own (the parallel mode's ``Worker``): from where it stopped
it reads from the site on its own until it has caught up, then follows the
engine's batches. The others go on with the rest of the batch, so a slow
plugin holds them for at most ``threshold`` seconds per promotion. A
promoted plugin whose worker is caught up and idle goes back to the group
after ``rejoin_after`` seconds; each new promotion doubles that wait, so a
plugin that is slow for good stays on its own thread.

The threshold is wall time, so it also sees a plugin waiting on the site or
sleeping. It is well above what trivial plugins take per batch even when
other threads (read-ahead, promoted workers) hold the GIL: at 25 ms, GIL
waits alone got trivial plugins promoted during a catch-up from a distant
site, which then each read on their own.

Limit: a single callback that does not return holds the group until it
returns (the callback watch logs its stack), as in serial mode.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from shotgun_events.delivery.base import Hooks
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.parallel import ParallelDelivery
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.delivery.serial import SerialDelivery
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event

log = logging.getLogger("engine.delivery")


class _TimedGroup(SerialDelivery):
    """Serial delivery that measures each plugin's time per batch and hands off slow ones."""

    def __init__(
        self,
        hooks: Hooks,
        stop: threading.Event,
        *,
        threshold: float,
        on_slow: Callable[[PluginRunner, float], None],
        monotonic: Callable[[], float],
    ) -> None:
        super().__init__(hooks, stop)
        self._threshold = threshold
        self._on_slow = on_slow
        self._clock = monotonic
        self._spent: dict[int, float] = {}

    @property
    def runners(self) -> list[PluginRunner]:
        """The plugins of the group."""
        return list(self._runners)

    def deliver(self, batch: list[Event]) -> bool:
        """Deliver as serial mode does, measuring each plugin's share of the batch."""
        self._spent.clear()
        return super().deliver(batch)

    def _one(self, event: Event, now: datetime) -> None:
        thread = threading.get_ident()
        for runner in list(self._runners):
            started = self._clock()
            self._current = (runner, started, thread)
            try:
                outcome = runner.handle(event, now)
            finally:
                self._current = None
            if outcome is None:
                continue  # not wanted: no callback ran, nothing to measure
            spent = self._spent.get(id(runner), 0.0) + self._clock() - started
            self._spent[id(runner)] = spent
            if outcome is Outcome.FAILED:
                self._hooks.on_failed(runner.plugin)
            elif outcome is Outcome.INTERRUPTED:
                return
            if spent > self._threshold and runner.active:
                self._runners.remove(runner)
                self._spent.pop(id(runner), None)
                self._on_slow(runner, spent)


class AutoDelivery:
    """Quick plugins in the engine's thread, slow ones on workers of their own."""

    def __init__(
        self,
        hooks: Hooks,
        stop: threading.Event,
        *,
        own: ParallelDelivery,
        threshold: float = 0.15,
        rejoin_after: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hooks = hooks
        self._own = own
        self._rejoin_after = rejoin_after
        self._monotonic = monotonic
        self._group = _TimedGroup(
            hooks, stop, threshold=threshold, on_slow=self._promote, monotonic=monotonic
        )
        #: id(runner) -> (runner, when it got its own thread, promotions so far)
        self._promoted: dict[int, tuple[PluginRunner, float, int]] = {}
        self._promotions: dict[int, int] = {}
        #: The most plugins on threads of their own at once (benchmarks, status).
        self.most_promoted = 0

    # -- membership --------------------------------------------------------------

    def add(self, runner: PluginRunner) -> None:
        """A new plugin starts in the shared group."""
        self._group.add(runner)

    def remove(self, runner: PluginRunner) -> None:
        """Stop delivering to a removed plugin, wherever it runs."""
        self._promotions.pop(id(runner), None)
        if self._promoted.pop(id(runner), None) is not None:
            self._own.remove(runner)
        else:
            self._group.remove(runner)

    def promoted(self) -> list[PluginRunner]:
        """The plugins running on a thread of their own now."""
        return [runner for runner, _, _ in self._promoted.values()]

    def _promote(self, runner: PluginRunner, spent: float) -> None:
        count = self._promotions.get(id(runner), 0) + 1
        self._promotions[id(runner)] = count
        try:
            runner.flush()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
        log.info(
            "plugin %s took %.2f s of one batch; it runs on a thread of its own so the "
            "other plugins are not held up",
            runner.plugin.name,
            spent,
        )
        self._promoted[id(runner)] = (runner, self._monotonic(), count)
        self.most_promoted = max(self.most_promoted, len(self._promoted))
        self._own.add(runner)

    def _rejoin_idle(self) -> None:
        """Bring back promoted plugins that are caught up, idle and were away long enough."""
        now = self._monotonic()
        for key, (runner, since, count) in list(self._promoted.items()):
            wait = self._rejoin_after * 2 ** (count - 1)
            if now - since < wait or not self._own.is_idle(runner):
                continue
            self._own.remove(runner)
            del self._promoted[key]
            self._group.add(runner)
            log.info(
                "plugin %s is caught up; it shares the engine's thread again", runner.plugin.name
            )

    # -- the Delivery interface ----------------------------------------------------

    def fetch_position(self, head: int) -> int:
        """Read from the slowest plugin of the group (workers read on their own)."""
        own = self._own.fetch_position(head)
        if any(r.active for r in self._group.runners):
            return self._group.fetch_position(head)
        return own

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Wait while a promoted, attached plugin has no room (it is detached if it stays full)."""
        if self._promoted:
            self._own.wait_for_room(stop, serve)

    def deliver(self, batch: list[Event]) -> bool:
        """Queue the batch for the promoted plugins, then run it through the group."""
        if not batch:
            return True
        # Before the batch is queued: a worker that handled all it was given is idle now.
        self._rejoin_idle()
        head = self._own.fetch_position(0)
        fresh = [e for e in batch if int(e["id"]) > head]
        if fresh:
            self._own.deliver(fresh)
        return self._group.deliver(batch)

    def deliver_late(self, events: list[Event]) -> None:
        """Late events go to whoever waits for them."""
        self._own.deliver_late(events)
        self._group.deliver_late(events)

    def expire(self, now: datetime) -> None:
        """Expire backlogs in the group now and in the workers between their events."""
        self._group.expire(now)
        self._own.expire(now)

    def save_pending(self) -> bool:
        """Retry the group's failed state writes (workers retry their own)."""
        return self._group.save_pending()

    def busy(self) -> list[tuple[PluginRunner, float, int | None]]:
        """Plugins inside a callback, in the group and on their own threads."""
        return [*self._group.busy(), *self._own.busy()]

    def in_flight(self) -> set[int]:
        """Late events queued for workers and not handled yet."""
        return self._own.in_flight()

    def drain(self, timeout: float) -> bool:
        """The group is done when ``deliver`` returns; wait for the workers."""
        return self._own.drain(timeout)

    def close(self, timeout: float) -> None:
        """Stop the workers, persist the group's cursors."""
        self._own.close(timeout)
        self._group.close(timeout)
