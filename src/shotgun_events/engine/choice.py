"""Which delivery the ``dispatch`` setting picks: serial, parallel (a worker per plugin) or auto."""

from __future__ import annotations

import threading
from collections.abc import Callable

from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.auto import AutoDelivery
from shotgun_events.delivery.base import Delivery
from shotgun_events.delivery.base import Hooks as DeliveryHooks
from shotgun_events.delivery.parallel import ParallelDelivery
from shotgun_events.delivery.serial import SerialDelivery
from shotgun_events.engine.settings import Settings


def make_delivery(
    settings: Settings,
    hooks: DeliveryHooks,
    stop: threading.Event,
    *,
    source_factory: Callable[[], EventSource],
    retry: SiteRetry,
) -> Delivery:
    """Return the delivery for ``settings.dispatch`` ("serial" unless parallel or auto)."""
    if settings.dispatch in ("parallel", "auto"):
        own = ParallelDelivery(
            hooks,
            stop,
            source_factory=source_factory,
            retry=retry,
            batch_size=settings.batch_size,
            max_pending=settings.max_pending_batches,
            detach_after=settings.detach_after,
            state_retry_interval=settings.state_retry_interval,
        )
        if settings.dispatch == "parallel":
            return own
        return AutoDelivery(hooks, stop, own=own)
    return SerialDelivery(hooks, stop)
