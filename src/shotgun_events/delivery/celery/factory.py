"""Building a plugin's CeleryExecutor from the daemon's parts, and what ``status`` shows of it.

``delivery/executors.Executors`` builds each plugin's executor from the spec
``choose`` gave it; for a ``celery`` spec it calls this factory, which keys
the plugin's tasks by its ``order_by`` (delivery/keys.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shotgun_events.client.outage import Outage
from shotgun_events.config.celery_section import CeleryConfig
from shotgun_events.delivery.celery.app import queue_name
from shotgun_events.delivery.celery.executor import CeleryExecutor
from shotgun_events.delivery.celery.hub import CeleryHub
from shotgun_events.delivery.executors import ExecutorSpec, OnDone
from shotgun_events.delivery.failures import FailurePolicy
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.delivery.keys import key_function

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin


class CeleryFactory:
    """Make one CeleryExecutor per plugin, all on one hub."""

    def __init__(
        self,
        hub: CeleryHub,
        config: CeleryConfig,
        *,
        policy: FailurePolicy,
        registry: InFlight,
        outage: Outage | None = None,
    ) -> None:
        self.hub = hub
        self._config = config
        self._policy = policy
        self._registry = registry
        self._outage = outage

    def __call__(self, plugin: Plugin, spec: ExecutorSpec, on_done: OnDone) -> CeleryExecutor:
        """Return the executor of ``plugin``, one task in flight per ``spec.order_by`` key."""
        return CeleryExecutor(
            plugin,
            hub=self.hub,
            queue=queue_name(self._config, plugin.name),
            on_done=on_done,
            order_key=key_function(spec.order_by),
            policy=self._policy,
            registry=self._registry,
            outage=self._outage,
            task_batch=self._config.task_batch,
            task_timeout=self._config.task_timeout,
            describe=self._describe,
        )

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
