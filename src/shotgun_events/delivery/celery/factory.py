"""Building a plugin's CeleryExecutor from the daemon's parts, and what ``status`` shows of it.

The engine asks an executor factory ``(plugin, spec, on_done) -> Executor``
for each plugin (delivery/executor.py); for a plugin whose executor is
``celery`` the daemon's wiring calls ``CeleryFactory`` with the plugin's
ordering key function (delivery/ordering.py).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from shotgun_events.config.celery_section import CeleryConfig
from shotgun_events.delivery.celery.app import queue_name
from shotgun_events.delivery.celery.executor import CeleryExecutor
from shotgun_events.delivery.celery.hub import CeleryHub
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.failures import DeadLetters, RetryPolicy
from shotgun_events.events import Event

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

KeyFn = Callable[[Event], Hashable]


class CeleryFactory:
    """Make one CeleryExecutor per plugin, all on one hub."""

    def __init__(
        self,
        hub: CeleryHub,
        config: CeleryConfig,
        *,
        policy: RetryPolicy,
        dead_letters: DeadLetters | None,
        key_function: Callable[[str], KeyFn],
    ) -> None:
        self.hub = hub
        self._config = config
        self._policy = policy
        self._dead_letters = dead_letters
        self._key_function = key_function
        self.executors: dict[str, CeleryExecutor] = {}

    def __call__(
        self, plugin: Plugin, order_by: str, on_done: Callable[[Event, Outcome], None]
    ) -> CeleryExecutor:
        """Return the executor of ``plugin`` keyed by ``order_by``."""
        executor = CeleryExecutor(
            plugin,
            hub=self.hub,
            queue=queue_name(self._config, plugin.name),
            on_done=on_done,
            order_key=self._key_function(order_by),
            policy=self._policy,
            dead_letters=self._dead_letters,
            task_batch=self._config.task_batch,
            task_timeout=self._config.task_timeout,
            describe=self._describe,
        )
        self.executors[plugin.name] = executor
        return executor

    def _describe(self, executor: CeleryExecutor) -> dict[str, Any]:
        """Queue length and the workers seen recently serving the plugin (None: Redis away)."""
        if not self.hub.available:
            # Asking would wait for socket time-outs; status must answer at once.
            return {"queue_length": None, "workers": None, "redis_reachable": False}
        name = executor.plugin.name
        return {
            "queue_length": self.hub.queue_length(executor.queue),
            "workers": sorted(
                str(w.get("hostname"))
                for w in self.hub.workers()
                if name in (w.get("plugins") or {})
            ),
            "redis_reachable": True,
        }

    def status(self) -> dict[str, Any]:
        """Per plugin: tasks in flight, events held, queue length; and the workers seen."""
        plugins = {
            name: {
                "executor": "celery",
                "queue": ex.queue,
                "tasks_in_flight": ex.tasks_in_flight(),
                "events_held": len(ex.in_flight()),
                "queue_length": self.hub.queue_length(ex.queue),
                "sent": ex.counters.sent,
                "timed_out": ex.counters.timed_out,
                "refused": ex.counters.refused,
            }
            for name, ex in sorted(self.executors.items())
        }
        workers = [
            {
                "hostname": w.get("hostname"),
                "plugins": sorted(w.get("plugins") or {}),
                "concurrency": w.get("concurrency"),
                "seen": w.get("seen"),
            }
            for w in self.hub.workers()
        ]
        return {
            "broker": self._config.safe_broker,
            "redis_reachable": self.hub.available,
            "plugins": plugins,
            "workers": workers,
        }
