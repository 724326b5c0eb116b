"""The daemon's Celery set-up: connect the hub, build the Celery executors' factory, close it all.

``wiring.py`` calls ``celery_wiring(config, ...)`` when some plugin runs on
Celery (``[daemon] executor = celery`` or ``[plugin:NAME] executor =
celery``). It checks the packages are installed, reaches Redis before the
daemon reports ready (so ``start`` fails with one line when Redis never
comes), and returns the factory that ``delivery/executors.Executors`` calls
for a plugin whose spec says ``celery``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shotgun_events.client.outage import Outage
from shotgun_events.delivery.failures import FailurePolicy
from shotgun_events.delivery.inflight import InFlight

if TYPE_CHECKING:
    from shotgun_events.config.model import Config
    from shotgun_events.delivery.celery.factory import CeleryFactory
    from shotgun_events.delivery.celery.hub import CeleryHub

log = logging.getLogger("engine.celery")

#: Attempts to reach Redis at start: waits of 0.5, 1, 2 and 4 s between them, so a
#: missing Redis is reported well inside ``start``'s 30 s readiness wait.
CONNECT_ATTEMPTS = 5
CONNECT_FIRST_WAIT = 0.5


@dataclass
class CeleryWiring:
    """The daemon's hub and the factory of its plugins' Celery executors."""

    hub: CeleryHub
    factory: CeleryFactory

    def close(self) -> None:
        """Stop collecting results (after the engine closed its executors)."""
        self.hub.close()


def celery_wiring(
    config: Config,
    *,
    policy: FailurePolicy,
    registry: InFlight,
    outage: Outage,
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

    require_celery(f"[daemon] executor / [plugin:NAME] executor = celery in {config.path}")
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
    factory = CeleryFactory(hub, config.celery, policy=policy, registry=registry, outage=outage)
    return CeleryWiring(hub=hub, factory=factory)
