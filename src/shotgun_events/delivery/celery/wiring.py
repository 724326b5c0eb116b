"""The daemon's Celery set-up: connect the hub, choose each plugin's executor, close it all.

``app.py`` calls ``celery_wiring(config, ...)`` when some plugin runs on
Celery (``[daemon] dispatch = celery`` or ``[plugin:NAME] executor =
celery``). It checks the packages are installed, reaches Redis before the
daemon reports ready (so ``start`` fails with one line when Redis never
comes), and returns the executor factory and spec resolver the engine takes:
a plugin whose spec kind is ``celery`` gets a ``CeleryExecutor``, every other
plugin the in-daemon executors of ``delivery/plan.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.executor import Executor, ExecutorFactory, ExecutorSpec, OnDone
from shotgun_events.delivery.failures import DeadLetters, RetryPolicy
from shotgun_events.delivery.ordering import key_function
from shotgun_events.delivery.plan import local_executor, spec_resolver

if TYPE_CHECKING:
    from shotgun_events.config.model import Config
    from shotgun_events.delivery.celery.factory import CeleryFactory
    from shotgun_events.delivery.celery.hub import CeleryHub
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.celery")

#: Attempts to reach Redis at start: waits of 0.5, 1, 2 and 4 s between them, so a
#: missing Redis is reported well inside ``start``'s 30 s readiness wait.
CONNECT_ATTEMPTS = 5
CONNECT_FIRST_WAIT = 0.5


def engine_dispatch(dispatch: str) -> str:
    """Return how the engine schedules runners for ``[daemon] dispatch``.

    ``celery`` schedules like ``auto``: submitting to Celery returns at once, so
    plugins share a worker thread; one held back by its executor's back-pressure
    (2,000 events not answered) gets a thread of its own and holds up no other.
    """
    return "auto" if dispatch == "celery" else dispatch


def celery_spec_resolver(config: Config) -> Callable[[Plugin], ExecutorSpec]:
    """Return plugin -> spec whose kind is ``config.executor_for(plugin)`` (local or celery)."""
    own = spec_resolver(config.plugin_settings)

    def spec_for(plugin: Plugin) -> ExecutorSpec:
        return replace(own(plugin), kind=config.executor_for(plugin.name))

    return spec_for


@dataclass
class CeleryWiring:
    """The daemon's hub and factory, and the engine's executor factory built on them."""

    hub: CeleryHub
    factory: CeleryFactory
    local: ExecutorFactory

    def executor_for(self, plugin: Plugin, spec: ExecutorSpec, on_done: OnDone) -> Executor:
        """Celery for a celery spec (one task in flight per ``order_by`` key), else local."""
        if spec.kind == "celery":
            return self.factory(plugin, spec.order_by, on_done)
        return self.local(plugin, spec, on_done)

    def close(self) -> None:
        """Stop collecting results (after the engine closed its executors)."""
        self.hub.close()


def celery_wiring(
    config: Config,
    *,
    dispatcher: Dispatcher,
    policy: RetryPolicy,
    dead_letters: DeadLetters,
    wait: Callable[[float], bool],
    reloading: bool = False,
) -> CeleryWiring:
    """Reach Redis (raising BrokerUnavailableError when it never answers) and start the hub.

    ``wait(seconds)`` waits between attempts and returns True when the daemon
    is asked to stop meanwhile. On a reload (SIGHUP) Redis is not waited for:
    a running daemon must not exit because Redis is away for a moment; the
    hub's outage handling holds every Celery plugin's position until it is
    back. A missing celery/redis package raises ConfigError.
    """
    from shotgun_events.delivery.celery import require_celery

    require_celery(f"[daemon] dispatch / [plugin:NAME] executor = celery in {config.path}")
    # Imported only now: a daemon without Celery never imports celery.
    from shotgun_events.delivery.celery.factory import CeleryFactory
    from shotgun_events.delivery.celery.hub import CeleryHub

    hub = CeleryHub(config.celery)
    if not reloading:
        hub.connect(attempts=CONNECT_ATTEMPTS, first_wait=CONNECT_FIRST_WAIT, wait=wait)
    hub.start()
    log.info(
        "plugin callbacks run on Celery workers through Redis at %s", config.celery.safe_broker
    )
    factory = CeleryFactory(
        hub,
        config.celery,
        policy=policy,
        dead_letters=dead_letters,
        key_function=key_function,
    )
    return CeleryWiring(hub=hub, factory=factory, local=local_executor(dispatcher))
