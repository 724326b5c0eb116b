"""What the HTTP server reads of the running daemon, from its own thread.

Everything here only reads attributes the engine publishes (positions,
heads, switches, the progress figures, the sink's counters). No engine lock
is taken; the runner's own short lock guards its backlog copy. A read that
races a plugin being added or removed is simply taken again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shotgun_events.client.connections import ConnectionPool
from shotgun_events.config.model import Config
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.engine.loop import Engine
from shotgun_events.observe.recent import PerMinute, RecentLog
from shotgun_events.observe.sink import MetricsSink
from shotgun_events.operator import operations, status
from shotgun_events.service.liveness import Liveness

#: Tries when a read races the engine changing its plugin list.
_TRIES = 5


@dataclass(frozen=True)
class PluginRow:
    """One plugin as the metrics and the page show it."""

    name: str
    state: str
    reason: str | None
    position: int
    lag_events: int
    lag_seconds: float
    backlog: int
    in_flight: int
    delivered: int
    retrying: tuple[int, int] | None
    #: ``inline``, ``pool`` or ``celery``; the Celery executor's counters (else empty).
    executor: str = "inline"
    tasks: dict[str, int] = field(default_factory=dict)
    #: (event id, seconds) of its longest-running callback now, from the in-flight registry.
    running: tuple[int, float] | None = None
    #: Events skipped because the site's log no longer had them.
    expired: int = 0
    #: Its timers as ``status`` describes them (engine/timers.py).
    timers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DaemonView:
    """The running daemon's parts the server reads."""

    config: Config
    engine: Engine
    pool: ConnectionPool
    sink: MetricsSink
    liveness: Liveness
    recent: RecentLog
    #: The ceiling on plugins' site calls; None when no plugin has one.
    started: float = field(default_factory=time.time)
    per_minute: PerMinute = field(init=False)

    def __post_init__(self) -> None:
        self.per_minute = PerMinute(lambda: self.engine.stats.events_fetched)

    def runners(self) -> list[PluginRunner]:
        """The engine's runners, read again if the list changed under us."""
        for _ in range(_TRIES):
            try:
                return list(self.engine.runners)
            except (KeyError, RuntimeError):
                continue
        return []

    def plugins(self) -> list[PluginRow]:
        """Every plugin's state, position, lag, backlog and what is in flight."""
        engine = self.engine
        head, head_at = engine.head, engine.head_created_at
        disabled = _copy(engine.switches.disabled)
        retrying = _copy(engine.dispatcher.retrying)
        registry = engine.dispatcher.in_flight
        now = registry.monotonic()
        oldest: dict[str, tuple[int, float]] = {}
        for work in registry.running():
            if work.thread is not None and not work.timer:
                age = now - work.since
                if age > oldest.get(work.plugin.name, (0, -1.0))[1]:
                    oldest[work.plugin.name] = (work.event_id, age)
        rows = []
        for runner in self.runners():
            plugin = runner.plugin
            reason: str | None
            if plugin.name in disabled:
                state, reason = "disabled", f"disabled by an operator: {disabled[plugin.name]}"
            else:
                state, reason = ("active" if plugin.active else "inactive"), plugin.reason
            rows.append(
                PluginRow(
                    name=plugin.name,
                    state=state,
                    reason=reason,
                    position=runner.cursor.last_id,
                    lag_events=max(0, head - runner.cursor.last_id),
                    lag_seconds=runner.lag_seconds(head_at),
                    backlog=len(runner.awaited()),
                    # Handed to the plugin's executor and not finished (running or queued).
                    in_flight=runner.progress()["in_flight"],
                    delivered=runner.delivered,
                    retrying=retrying.get(plugin.name),
                    executor=runner.spec.kind,
                    tasks=runner.executor_figures(),
                    running=oldest.get(plugin.name),
                    expired=runner.expired,
                    timers=engine.timers.describe(plugin),
                )
            )
        return rows

    def head_age(self) -> float | None:
        """Seconds since the newest event read was created (site time), or None."""
        created = self.engine.head_created_at
        if not isinstance(created, datetime):
            return None
        return max(0.0, (self.engine.now() - created.astimezone(UTC)).total_seconds())

    def uptime(self) -> float:
        """Seconds since this daemon (or its last reload) started."""
        return max(0.0, time.time() - self.started)

    def status_report(self) -> dict[str, Any]:
        """The data of ``status --json``, secrets masked."""
        for _ in range(_TRIES):
            try:
                live = operations.status(self.engine)
                break
            except (KeyError, RuntimeError):
                continue
        else:
            live = {"plugins": [], "note": "the plugin list kept changing; try again"}
        return status.live_report(self.config, live, self.engine.store.extras())


def _copy(mapping: dict[Any, Any]) -> dict[Any, Any]:
    """Copy a dict another thread may change (a resize mid-copy raises; copy again)."""
    for _ in range(_TRIES):
        try:
            return dict(mapping)
        except RuntimeError:
            continue
    return {}
