"""The plugin steps: a runner per loaded plugin and its timers, in step with files and switches."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.executors import ExecutorFactory, ExecutorSpec
from shotgun_events.delivery.fanout import Fanout
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.engine.positions import SavedPositions
from shotgun_events.engine.settings import Settings
from shotgun_events.engine.timers import TimerSchedule
from shotgun_events.errors import StateWriteError
from shotgun_events.events import PluginKey
from shotgun_events.plugins.protocols import LoaderLike, WatcherLike
from shotgun_events.plugins.switches import PluginSwitches
from shotgun_events.state.protocols import StateStoreLike

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine")


class PluginSet:
    """Scan the plugin files, give each loaded plugin a runner, and publish who is active."""

    def __init__(
        self,
        *,
        loader: LoaderLike,
        watcher: WatcherLike | None,
        store: StateStoreLike,
        dispatcher: Dispatcher,
        delivery: Fanout,
        settings: Settings,
        stop: threading.Event,
        switches: PluginSwitches,
        executors: ExecutorFactory,
        spec_for: Callable[[Plugin], ExecutorSpec],
        on_changed: Callable[[Iterable[Plugin]], None],
        state_trouble: Callable[[StateWriteError], None],
    ) -> None:
        self._loader = loader
        self._watcher = watcher
        self._store = store
        self._dispatcher = dispatcher
        self._delivery = delivery
        self._settings = settings
        self._stop = stop
        self._switches = switches
        self._executors = executors
        self._spec_for = spec_for
        self._on_changed = on_changed
        self._state_trouble = state_trouble
        #: The runners by plugin key (in no particular order; ``ordered`` gives delivery order).
        self.by_key: dict[PluginKey, PluginRunner] = {}
        #: The plugins' timers, run where each plugin's events run.
        self.timers = TimerSchedule(policy=dispatcher.policy, outage=dispatcher.outage)
        #: Where each plugin starts: the saved positions, and those of plugins removed meanwhile.
        self.positions = SavedPositions(None)

    def ordered(self) -> list[PluginRunner]:
        """The runners in delivery order (collections, then file names)."""
        return [self.by_key[p.key] for p in self._loader.plugins if p.key in self.by_key]

    def refresh(self, *, head: int, initial: bool = False) -> None:
        """Pick up added, changed and deleted plugin files; new plugins start after ``head``.

        The first scan loads every file, even one the watcher saw being written
        a moment ago: a plugin present at start must start at the start
        position, not later as if it had been added while running.
        """
        if self._watcher is None or initial:
            result = self._loader.scan()
        else:
            due = self._watcher.take_due()
            result = self._loader.scan(changed=due, settling=self._watcher.pending())
        if result.removed:
            self.timers.sync(self.ordered())  # before their executors close
        for plugin in result.removed:
            runner = self.by_key.pop(plugin.key, None)
            if runner is not None:
                self._delivery.remove(runner)
                runner.close(self._settings.stop_grace)
                self.positions.keep(plugin.key, runner.saved_cursor())
                log.info(
                    "plugin %s removed; its position %d is kept", plugin.name, runner.cursor.last_id
                )
        for plugin in self._loader.plugins:
            if plugin.key not in self.by_key:
                runner = self._new_runner(plugin, head=head, first_scan=initial)
                self.by_key[plugin.key] = runner
                self._delivery.add(runner)
        self._switches.apply_disabled(self._loader.plugins)
        self._delivery.order(self.ordered())
        if result or initial:
            self.timers.sync(self.ordered())
        if result:
            self.publish_status()
            self._on_changed(self._loader.plugins)

    def apply_disabled(self) -> None:
        """Keep plugins an operator disabled switched off, also across reloads."""
        self._switches.apply_disabled(self._loader.plugins)

    def revive_cooled_down(self) -> None:
        """Switch plugins a failure turned off back on once their cool-down is over."""
        if self._switches.revive_cooled_down(self._loader.plugins):
            self.publish_status()

    def publish_status(self) -> None:
        """Record every plugin's active flag, reason and path in the state file's extras."""
        status = {
            f"{p.key[0]}::{p.key[1]}": {"active": p.active, "reason": p.reason, "path": str(p.path)}
            for p in self._loader.plugins
        }
        try:
            self._store.set_extra("plugins", status)
        except StateWriteError as exc:
            self._state_trouble(exc)

    def _new_runner(self, plugin: Plugin, *, head: int, first_scan: bool) -> PluginRunner:
        cursor = self.positions.take(plugin.key, start=head, first_scan=first_scan)
        runner = PluginRunner(
            plugin,
            cursor,
            dispatcher=self._dispatcher,
            executors=self._executors,
            spec_for=self._spec_for,
            recorder=self._store,
            backlog_timeout=self._settings.backlog_timeout,
            stop=self._stop,
        )
        # Persist the start position at once, so a crash before the first event
        # does not move a new plugin's start to a later "newest event".
        try:
            runner.save()
        except StateWriteError as exc:
            self._state_trouble(exc)
        return runner
