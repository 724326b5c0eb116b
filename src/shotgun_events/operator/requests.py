"""What a control request asks for: its arguments checked, and the action to submit.

``build_action`` turns a command and its JSON arguments into a callable that
the engine runs in its own thread (``operations``, imported only when the
daemon serves a request). The argument checks are shared with live.py (the
client) and offline.py (the commands on a stopped daemon's state).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shotgun_events.errors import ControlError

if TYPE_CHECKING:
    from shotgun_events.engine.loop import Engine

Action = Callable[["Engine"], Any]

DEFAULT_REASON = "no reason given"


def build_action(
    command: str, args: Mapping[str, Any], *, status: Action | None = None
) -> tuple[Action, bool]:
    """Turn a request into the action to submit, and whether it may wait long (not status).

    ``status``: the status action with the daemon's parts bound (else ``operations.status``).
    """
    from shotgun_events.operator import (
        operations,  # the engine's side; imported when the daemon serves a request
    )

    reason = reason_arg(args)
    who = args.get("operator")
    operator = who if isinstance(who, str) and who else None
    if command == "status":
        return status or operations.status, False
    if command == "replay":
        plugin, first = text_arg(args, "plugin"), int_arg(args, "from_id")
        last = optional_int_arg(args, "to_id")
        return lambda e: operations.replay(e, plugin, first, last, reason, operator=operator), True
    if command == "skip":
        plugin, event_id = text_arg(args, "plugin"), int_arg(args, "event_id")
        return lambda e: operations.skip(e, plugin, event_id, reason, operator=operator), True
    if command == "reset":
        return _reset_action(args, reason, operator), True
    if command == "disable":
        plugin = text_arg(args, "plugin")
        return lambda e: operations.disable(e, plugin, reason, operator=operator), True
    if command == "enable":
        plugin = text_arg(args, "plugin")
        return lambda e: operations.enable(e, plugin, reason, operator=operator), True
    if command == "reload":
        name = args.get("plugin")
        if name is not None and (not isinstance(name, str) or not name):
            raise ControlError("plugin: expected a plugin name or nothing (every plugin)")
        return lambda e: operations.reload(e, name, reason, operator=operator), True
    known = ", ".join(COMMANDS)
    raise ControlError(f"unknown command {command!r}; known: {known}")


COMMANDS = ("status", "replay", "skip", "reset", "disable", "enable", "reload")


def _reset_action(args: Mapping[str, Any], reason: str, operator: str | None) -> Action:
    from shotgun_events.operator import operations

    to = text_arg(args, "to")
    everything = bool(args.get("all", False))
    names = args.get("plugins", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ControlError("plugins: expected a list of plugin names")
    if everything == bool(names):
        raise ControlError("name the plugins to reset, or use --all (not both)")

    def action(engine: Engine) -> Any:
        chosen = [r.plugin.name for r in engine.runners] if everything else names
        return [operations.reset(engine, name, to, reason, operator=operator) for name in chosen]

    return action


def reason_arg(args: Mapping[str, Any]) -> str:
    """The operator's reason on one line, or the default when none was given."""
    reason = args.get("reason")
    if reason is None or reason == "":
        return DEFAULT_REASON
    if not isinstance(reason, str):
        raise ControlError("reason: expected text")
    return " ".join(reason.split())  # one line in the log, whatever was typed


def text_arg(args: Mapping[str, Any], name: str) -> str:
    """A required non-empty text argument."""
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError(f"{name}: expected text, got {value!r}")
    return value


def int_arg(args: Mapping[str, Any], name: str) -> int:
    """A required event id (an integer, not a bool or a string)."""
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"{name}: expected an event id, got {value!r}")
    return value


def optional_int_arg(args: Mapping[str, Any], name: str) -> int | None:
    """An optional event id."""
    return None if args.get(name) is None else int_arg(args, name)
