"""Operator commands done on a stopped daemon's state file (skip, disable, enable, replay, reload).

live.py routes a command here when the daemon is not running. The state file
has one writer at a time: they hold the state lock (state/lock.py) while they
work, so they refuse while a daemon holds it and a starting daemon waits for
them, and they write through ``StateStore``, so every change is a journal line or an atomic
snapshot. ``reset`` lives in reset.py (it also recovers a corrupt state file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shotgun_events.client.source import daemon_source
from shotgun_events.config.model import Config
from shotgun_events.cursor import Cursor
from shotgun_events.delivery.failures import DeadLetters
from shotgun_events.errors import ControlError
from shotgun_events.events import Event, PluginKey
from shotgun_events.operator import audit
from shotgun_events.operator.requests import int_arg, optional_int_arg, text_arg
from shotgun_events.service.pidfile import status_process
from shotgun_events.state.legacy import ANY_PLUGIN
from shotgun_events.state.lock import StateLock
from shotgun_events.state.store import StateStore

STOPPED = "stopped"


@dataclass(frozen=True)
class Done:
    """What an offline command did: one line for the operator, and the details."""

    message: str
    result: dict[str, Any] = field(default_factory=dict)


def skip(config: Config, plugin: str, event_id: int, reason: str) -> Done:
    """Move a plugin past the event it is stuck on and record it as a dead letter."""
    _ensure_stopped(config)
    store = _store(config)
    try:
        positions = store.load() or {}
        key = _saved_key(positions, plugin, config)
        cursor = positions[key]
        if cursor.is_awaited(event_id):
            cursor.settle_late(event_id)
        else:
            _advance_past(config, cursor, plugin, event_id)
        store.record(key, cursor)
        error = _last_error(store.extras(), key)
        DeadLetters(store).record(
            plugin, event_id, error, reason=f"skipped by an operator: {reason}"
        )
        audit.record(store, "skip", plugin, reason, event_id=event_id, daemon=STOPPED)
    finally:
        store.close()
    return Done(
        f"skipped event {event_id} for {plugin} (recorded as a dead letter); it resumes after "
        f"event {cursor.last_id} at the next start",
        {"plugin": plugin, "skipped": event_id, "last_event_id": cursor.last_id},
    )


def disable(config: Config, plugin: str, reason: str) -> Done:
    """Keep a plugin switched off from the next start on, until it is enabled."""
    _ensure_stopped(config)
    store = _store(config)
    try:
        positions = store.load() or {}
        _known(positions, plugin, config)
        disabled = dict(store.extras().get("disabled") or {})
        disabled[plugin] = reason
        store.set_extra("disabled", disabled)
        audit.record(store, "disable", plugin, reason, daemon=STOPPED)
    finally:
        store.close()
    return Done(
        f"disabled {plugin}: it stays off from the next start until "
        f"'shotgunEventDaemon enable {plugin}'",
        {"plugin": plugin, "disabled": True},
    )


def enable(config: Config, plugin: str, reason: str) -> Done:
    """Let a plugin an operator disabled run again from the next start."""
    _ensure_stopped(config)
    store = _store(config)
    try:
        store.load()
        disabled = dict(store.extras().get("disabled") or {})
        if plugin not in disabled:
            return Done(
                f"{plugin} was not disabled by an operator; nothing to change (a plugin "
                "switched off by a failing callback is tried again at the next start)",
                {"plugin": plugin, "disabled": False},
            )
        del disabled[plugin]
        store.set_extra("disabled", disabled)
        audit.record(store, "enable", plugin, reason, daemon=STOPPED)
    finally:
        store.close()
    return Done(
        f"enabled {plugin}: it runs from the next start, from its saved position",
        {"plugin": plugin, "disabled": False},
    )


def replay(config: Config, plugin: str, from_id: int, to_id: int | None, reason: str) -> Done:
    """Queue a replay that the daemon carries out when it next starts."""
    _ensure_stopped(config)
    if from_id < 1:
        raise ControlError("--from-id takes an event id of 1 or more")
    store = _store(config)
    try:
        positions = store.load() or {}
        key = _known(positions, plugin, config)
        if to_id is None:
            if key is None:
                raise ControlError(
                    f"{plugin} has no saved position yet; give the last event with --to-id"
                )
            to_id = positions[key].last_id
        if to_id < from_id:
            raise ControlError(f"nothing to replay between {from_id} and {to_id}")
        pending = list(store.extras().get("pending_replays") or [])
        item = {
            "plugin": plugin,
            "from_id": from_id,
            "to_id": to_id,
            "reason": reason,
            "operator": audit.operator_name(),
        }
        pending.append(item)
        store.set_extra("pending_replays", pending)
        audit.record(store, "replay", plugin, reason, from_id=from_id, to_id=to_id, daemon=STOPPED)
    finally:
        store.close()
    return Done(
        f"replay of events {from_id}..{to_id} to {plugin} is queued: the daemon runs it when "
        "it next starts (the plugin's position does not move)",
        {"plugin": plugin, "from_id": from_id, "to_id": to_id, "queued": True},
    )


def reload(config: Config, plugin: str | None) -> Done:
    """Nothing to do while stopped: plugins are loaded from their files at start."""
    _ensure_stopped(config)
    which = plugin or "plugins"
    return Done(
        f"the daemon is not running: {which} load from their files when it starts; nothing to do",
        {"reloaded": []},
    )


# -- the offline entry: one command under the state lock ----------------------------


def offline_lock(config: Config, command: str, *, advice: str | None = None) -> StateLock:
    """The state lock an offline command holds while it edits the state file."""
    return StateLock(
        config.event_id_file,
        role=command,
        config_path=config.path,
        daemon_advice=advice
        or "the daemon is running: run the command again once it is ready, and it goes "
        f"through its control socket {config.control_socket_path}",
    )


def run_offline(config: Config, command: str, args: Mapping[str, Any], reason: str) -> Done:
    """Do one operator command on the stopped daemon's state file, holding the state lock."""
    # One writer per state file: a daemon starting now waits for us, or we refuse.
    lock = offline_lock(config, command)
    lock.acquire(wait_for_operator=OPERATOR_WAIT)
    try:
        return _offline_locked(config, command, args, reason)
    finally:
        lock.release()


#: Seconds an offline command waits for another offline command.
OPERATOR_WAIT = 10.0


def _offline_locked(config: Config, command: str, args: Mapping[str, Any], reason: str) -> Done:
    plugin = args.get("plugin")
    if command == "replay":
        return replay(
            config,
            text_arg(args, "plugin"),
            int_arg(args, "from_id"),
            optional_int_arg(args, "to_id"),
            reason,
        )
    if command == "skip":
        return skip(config, text_arg(args, "plugin"), int_arg(args, "event_id"), reason)
    if command == "disable":
        return disable(config, text_arg(args, "plugin"), reason)
    if command == "enable":
        return enable(config, text_arg(args, "plugin"), reason)
    if command == "reload":
        return reload(config, plugin if isinstance(plugin, str) else None)
    raise ControlError(f"unknown command {command!r}")


# -- helpers -----------------------------------------------------------------------------


def _ensure_stopped(config: Config) -> None:
    process = status_process(pid_file=config.pid_file)
    if process.running:
        raise ControlError(
            f"the daemon is running (pid {process.pid}); the command must go through its "
            f"control socket {config.control_socket_path}"
        )


def _store(config: Config) -> StateStore:
    return StateStore(config.event_id_file, fsync="always", config_path=config.path)


def _known(positions: dict[PluginKey, Cursor], plugin: str, config: Config) -> PluginKey | None:
    """Return the plugin's saved key, None if it only exists as a file; else ControlError."""
    keys = [k for k in positions if k != ANY_PLUGIN and k[1] == plugin]
    if len(keys) > 1:
        folders = ", ".join(k[0] for k in sorted(keys))
        raise ControlError(f"{plugin} has positions in several folders ({folders}); rename one")
    if keys:
        return keys[0]
    if any((folder / f"{plugin}.py").is_file() for folder in config.plugin_paths):
        return None
    known = sorted({k[1] for k in positions if k != ANY_PLUGIN})
    raise ControlError(
        f"no plugin named {plugin!r} (no saved position, no {plugin}.py in the plugin "
        f"folders); known: {', '.join(known) or 'none'}"
    )


def _saved_key(positions: dict[PluginKey, Cursor], plugin: str, config: Config) -> PluginKey:
    key = _known(positions, plugin, config)
    if key is None:
        raise ControlError(f"{plugin} has no saved position yet; there is nothing to skip")
    return key


def _advance_past(config: Config, cursor: Cursor, plugin: str, event_id: int) -> None:
    """Advance the cursor over ``event_id`` if it is the plugin's next event on the site."""
    if event_id <= cursor.last_id:
        raise ControlError(
            f"{plugin} is already past event {event_id} (it stands after {cursor.last_id})"
        )
    following = _next_event(config, cursor.last_id)
    if following is None or int(following["id"]) != event_id:
        next_id = None if following is None else int(following["id"])
        raise ControlError(
            f"{plugin} is not stuck on event {event_id}: its next event is {next_id} "
            f"(it stands after {cursor.last_id})"
        )
    created = following.get("created_at")
    now = datetime.now(UTC)
    cursor.advance(
        event_id,
        created if isinstance(created, datetime) else None,
        now,
        timedelta(seconds=config.backlog_timeout),
    )


def _next_event(config: Config, after: int) -> Event | None:
    source = daemon_source(config)
    try:
        found = source.fetch_after(after, 1)
    except Exception as exc:
        raise ControlError(
            f"cannot read the event log from {config.server} ({exc}); skip needs the site "
            "to check which event the plugin is stuck on"
        ) from exc
    finally:
        source.close()
    return found[0] if found else None


def _last_error(extras: dict[str, Any], key: PluginKey) -> str:
    """The reason the daemon last gave for the plugin being off, for the dead letter."""
    info = (extras.get("plugins") or {}).get(f"{key[0]}::{key[1]}") or {}
    return str(info.get("reason") or "")
