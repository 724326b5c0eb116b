"""Which executor runs a plugin's events: its own request, overridden by the config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.executor import Executor, ExecutorSpec, InlineExecutor, OnDone
from shotgun_events.delivery.keyed import KeyedExecutor

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin


def spec_resolver(settings: Mapping[str, Any]) -> Callable[[Plugin], ExecutorSpec]:
    """Return plugin -> spec: ``[plugin:NAME]`` concurrency/order_by/executor win over code."""

    def spec_for(plugin: Plugin) -> ExecutorSpec:
        section = settings.get(plugin.name)
        concurrency = getattr(section, "concurrency", None)
        order_by = getattr(section, "order_by", None)
        kind = getattr(section, "executor", None)
        return ExecutorSpec(
            concurrency=int(concurrency or getattr(plugin, "concurrency", 1) or 1),
            order_by=str(order_by or getattr(plugin, "order_by", "entity")),
            kind=str(kind or "local"),
        )

    return spec_for


def local_executor(
    dispatcher: Dispatcher,
) -> Callable[[Plugin, ExecutorSpec, OnDone], Executor]:
    """Return the factory of in-daemon executors: inline for 1, a keyed pool above."""

    def make(plugin: Plugin, spec: ExecutorSpec, on_done: OnDone) -> Executor:
        if spec.concurrency <= 1:
            return InlineExecutor(plugin, dispatcher, on_done)
        return KeyedExecutor(
            plugin, dispatcher, on_done, concurrency=spec.concurrency, order_by=spec.order_by
        )

    return make
