"""Operator commands carried out inside the running engine: replay, skip, reset, enable, ...

Each function runs in the engine's thread (``Engine.submit``) at a safe point,
so it never races the poll loop. A plugin's worker is stopped around any
change of its cursor and started again afterwards; it then catches up from
the new position by itself. Every command is logged with the operator's
reason and kept in the state's audit list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.failures import DeadLetters
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.progress import as_report
from shotgun_events.errors import ControlError
from shotgun_events.operator import audit

log = logging.getLogger("engine.control")

#: Events re-read per request while replaying.
REPLAY_BATCH = 500


def replay(
    engine: Engine,
    plugin: str,
    from_id: int,
    to_id: int | None,
    reason: str,
    *,
    operator: str | None = None,
) -> dict[str, Any]:
    """Deliver events ``from_id``..``to_id`` to one plugin again; its position does not move."""
    runner = _runner(engine, plugin)
    with _paused(engine, runner):
        # Events after the plugin's position (its watermark, when concurrent) reach it
        # anyway: replaying them would deliver twice. Replay runs one event at a time in
        # id order, so the order of every ordering key is kept.
        position = runner.cursor.last_id
        last = position if to_id is None else min(to_id, position)
        if from_id < 1 or last < from_id:
            raise ControlError(
                f"nothing to replay between {from_id} and {last}: plugin {plugin} stands after "
                f"event {position}, and only events up to there can be replayed"
            )
        delivered = _replay_range(engine, runner, from_id, last, reason, operator)
    _audit(
        engine,
        "replay",
        plugin,
        reason,
        operator=operator,
        from_id=from_id,
        to_id=last,
        delivered=delivered,
    )
    return {"plugin": plugin, "from_id": from_id, "to_id": last, "delivered": delivered}


def _replay_range(
    engine: Engine,
    runner: PluginRunner,
    from_id: int,
    last: int,
    reason: str,
    operator: str | None,
) -> int:
    """Deliver the events in ``from_id..last`` to the runner's plugin; return how many ran."""
    plugin = runner.plugin.name
    delivered = 0
    position = from_id - 1
    while position < last:
        batch = engine.retry.call(
            f"reading events to replay to {plugin}",
            lambda p=position: engine.source.fetch_after(p, REPLAY_BATCH),  # type: ignore[misc]
        )
        if not batch:
            break
        for event in batch:
            event_id = int(event["id"])
            if event_id > last:
                position = last
                break
            outcome = engine.dispatcher.run(runner.plugin, event, replay=True)
            if outcome in (Outcome.FAILED, Outcome.INTERRUPTED):
                _audit(
                    engine,
                    "replay",
                    plugin,
                    reason,
                    operator=operator,
                    from_id=from_id,
                    to_id=last,
                    stopped_at=event_id,
                )
                raise ControlError(
                    f"replay to {plugin} stopped at event {event_id}: a callback failed "
                    f"(see the plugin's log); {delivered} events were replayed"
                )
            delivered += outcome is Outcome.DONE
            position = event_id
    return delivered


def skip(
    engine: Engine, plugin: str, event_id: int, reason: str, *, operator: str | None = None
) -> dict[str, Any]:
    """Give up the event a switched-off plugin is stuck on, and switch the plugin on again."""
    runner = _runner(engine, plugin)
    if runner.plugin.active:
        raise ControlError(f"plugin {plugin} is running; skip is for a plugin stuck on an event")
    with _paused(engine, runner):
        cursor = runner.cursor
        if cursor.is_awaited(event_id):
            cursor.settle_late(event_id)
        else:
            blocking = engine.source.fetch_after(cursor.last_id, 1)
            if not blocking or int(blocking[0]["id"]) != event_id:
                next_id = int(blocking[0]["id"]) if blocking else None
                raise ControlError(
                    f"plugin {plugin} is not stuck on event {event_id}: its next event is "
                    f"{next_id} (it stands after {cursor.last_id})"
                )
            cursor.advance(
                event_id,
                blocking[0].get("created_at"),
                engine.now(),
                engine.settings.backlog_timeout,
            )
        runner.save(rewritten=True)
        DeadLetters(engine.store).record(
            plugin, event_id, runner.plugin.reason or "", reason=f"skipped by an operator: {reason}"
        )
        _switch_on(engine, runner)
    _audit(engine, "skip", plugin, reason, operator=operator, event_id=event_id)
    return {"plugin": plugin, "skipped": event_id, "active": runner.plugin.active}


def reset(
    engine: Engine, plugin: str, to: str, reason: str, *, operator: str | None = None
) -> dict[str, Any]:
    """Move one plugin to start at event ``to`` (or after the newest event with ``latest``)."""
    runner = _runner(engine, plugin)
    if to == "latest":
        newest = engine.retry.call("reading the newest event id", engine.source.newest_id)
        if newest is None:
            raise ControlError("stopping; reset not done")
        target = newest
    else:
        target = _event_id(to) - 1
    with _paused(engine, runner):
        runner.cursor.jump_to(target)
        runner.save(rewritten=True)
    _audit(engine, "reset", plugin, reason, operator=operator, to=target + 1)
    return {"plugin": plugin, "starts_after": target}


def disable(
    engine: Engine, plugin: str, reason: str, *, operator: str | None = None
) -> dict[str, Any]:
    """Switch a plugin off until an operator enables it (kept across restarts)."""
    runner = _runner(engine, plugin)
    engine.switches.disabled[plugin] = reason
    engine.store.set_extra("disabled", dict(engine.switches.disabled))
    engine.apply_disabled()
    _audit(engine, "disable", plugin, reason, operator=operator)
    return {"plugin": plugin, "active": runner.plugin.active}


def enable(
    engine: Engine, plugin: str, reason: str, *, operator: str | None = None
) -> dict[str, Any]:
    """Switch on a plugin an operator disabled, or one switched off by a failing callback."""
    runner = _runner(engine, plugin)
    engine.switches.disabled.pop(plugin, None)
    engine.store.set_extra("disabled", dict(engine.switches.disabled))
    _switch_on(engine, runner)
    _audit(engine, "enable", plugin, reason, operator=operator)
    return {"plugin": plugin, "active": runner.plugin.active, "reason": runner.plugin.reason}


def reload(
    engine: Engine, plugin: str | None, reason: str, *, operator: str | None = None
) -> dict[str, Any]:
    """Reload one plugin (or all) from its file now, changed or not."""
    runners = [_runner(engine, plugin)] if plugin else engine.runners
    for runner in runners:
        engine.loader.reload(runner.key)
    engine.apply_disabled()
    _audit(engine, "reload", plugin or "all", reason, operator=operator)
    return {
        "reloaded": [r.plugin.name for r in runners],
        "inactive": {r.plugin.name: r.plugin.reason for r in runners if not r.plugin.active},
    }


def queue_pending_replays(engine: Engine) -> None:
    """Queue the replays an operator asked for while the daemon was stopped.

    Each entry leaves the state only once its replay has run, so a stop or a
    crash before that keeps it for the next start.
    """
    pending: list[dict[str, Any]] = engine.store.extras().get("pending_replays") or []
    for item in pending:
        engine.submit(_queued_replay(item))


def _queued_replay(item: dict[str, Any]) -> Callable[[Engine], dict[str, Any]]:
    to_id = item.get("to_id")

    def run(engine: Engine) -> dict[str, Any]:
        try:
            return replay(
                engine,
                str(item["plugin"]),
                int(item["from_id"]),
                None if to_id is None else int(to_id),
                str(item.get("reason", "")),
                operator=item.get("operator"),
            )
        finally:
            # Done or refused (e.g. the plugin is gone): either way not to be run again.
            left = [i for i in engine.store.extras().get("pending_replays") or [] if i != item]
            engine.store.set_extra("pending_replays", left)

    return run


def status(engine: Engine) -> dict[str, Any]:
    """Describe every plugin: state, position, backlog, lag, retries, dead letters, and its
    ceiling on site calls with the seconds its calls waited for it."""
    limits = engine.dispatcher.limits
    letters = DeadLetters(engine.store).entries()
    head = engine.head
    scope = engine.dispatcher.scope
    skipped = scope.skipped() if scope is not None else {}
    plugins = []
    registry = engine.dispatcher.in_flight
    now = registry.monotonic()
    running = registry.running()
    for runner in engine.runners:
        plugin = runner.plugin
        if plugin.name in engine.switches.disabled:
            state = "disabled"
        else:
            state = "active" if plugin.active else "inactive"
        retrying = engine.dispatcher.retrying.get(plugin.name)
        plugins.append(
            {
                "name": plugin.name,
                "collection": str(plugin.collection),
                "path": str(plugin.path),
                "state": state,
                "reason": plugin.reason,
                "last_event_id": runner.cursor.last_id,
                **runner.progress(),
                "concurrency": runner.spec.concurrency,
                "order_by": runner.spec.order_by,
                # executor (local/celery); Celery adds tasks in flight, queue, workers.
                **runner.executor_status(),
                "backlog": len(runner.awaited()),
                "lag_events": max(0, head - runner.cursor.last_id),
                "lag_seconds": runner.lag_seconds(engine.head_created_at),
                "retrying": {"event_id": retrying[0], "attempt": retrying[1]} if retrying else None,
                "dead_letters": sum(1 for letter in letters if letter.get("plugin") == plugin.name),
                "delivered": runner.delivered,
                # Events the site's log no longer had when the plugin got to them.
                "expired": runner.expired,
                # Callbacks running now in the daemon, the longest first (the in-flight registry).
                "running": [
                    {"event_id": w.event_id, "seconds": round(now - w.since, 1)}
                    for w in sorted(running, key=lambda w: w.since)
                    if w.plugin is plugin and w.thread is not None and not w.timer
                ][:5],
                # Its timers: schedule, runs, errors, skipped due times (engine/timers.py).
                "timers": engine.timers.describe(plugin),
                # Events not delivered because of the plugin's scope (cursor moved past them).
                "skipped": skipped.get(plugin.name, {}),
                "max_calls_per_second": limits.limit(plugin.name) if limits else None,
                "site_call_wait_seconds": round(limits.waited(plugin.name), 3) if limits else 0.0,
            }
        )
    outage = engine.outage
    return {
        "head": head,
        "dispatch": engine.settings.dispatch,
        "site": {
            "available": outage is None or not outage.down,
            "unavailable": outage.describe() if outage is not None else None,
            "outages": outage.count if outage is not None else 0,
            "events_held": outage.held if outage is not None else 0,
        },
        "plugins": plugins,
        "dead_letters": letters[-20:],
        "events_fetched": engine.stats.events_fetched,
        "progress": as_report(engine.progress.current),
    }


class _paused:  # noqa: N801 - used as a context manager, reads like a statement
    """Stop a plugin's worker around a change of its cursor, then start a new one."""

    def __init__(self, engine: Engine, runner: PluginRunner) -> None:
        self._engine = engine
        self._runner = runner

    def __enter__(self) -> None:
        self._engine.delivery.remove(self._runner)
        # A concurrent plugin's events in flight finish first; its cursor is then the
        # watermark (done ids above it kept), which the command may change.
        self._runner.quiesce()

    def __exit__(self, *exc: object) -> None:
        self._runner.resume()
        self._engine.delivery.add(self._runner)


def _switch_on(engine: Engine, runner: PluginRunner) -> None:
    plugin = runner.plugin
    if plugin.name in engine.switches.disabled:
        return
    if not plugin.callbacks:
        # It never loaded (or its last load failed): load it again from its file.
        engine.loader.reload(runner.key)
        return
    plugin.active = True
    plugin.reason = None
    plugin.failed_at = None


def _runner(engine: Engine, name: str) -> PluginRunner:
    runner = engine.runner_named(name)
    if runner is None:
        known = ", ".join(r.plugin.name for r in engine.runners) or "none"
        raise ControlError(f"no plugin named {name!r}; loaded plugins: {known}")
    return runner


def _event_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ControlError(f"expected 'latest' or an event id, not {text!r}") from None
    if value < 1:
        raise ControlError("event ids start at 1")
    return value


def _audit(
    engine: Engine,
    command: str,
    plugin: str,
    reason: str,
    *,
    operator: str | None = None,
    **details: Any,
) -> None:
    audit.record(engine.store, command, plugin, reason, operator=operator, **details)
