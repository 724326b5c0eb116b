"""Routing an operator command: to the running daemon's control socket, or offline.

``run_command`` looks at the pid file: while the daemon runs, the command goes
through its control socket (``request``; the daemon's side is channel.py and
operations.py); while it is stopped, it is done on the state file by
offline.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from shotgun_events.config.model import Config
from shotgun_events.errors import ControlError
from shotgun_events.operator import audit
from shotgun_events.operator.offline import run_offline
from shotgun_events.operator.requests import reason_arg
from shotgun_events.service.pidfile import status_process


class ControlUnavailable(ControlError):  # noqa: N818 - reads as a state, like the others
    """The daemon's control socket cannot be reached (missing, refused, not allowed)."""


@dataclass(frozen=True)
class Reply:
    """What the daemon answered: the result, or ``done=False`` and a note while it still runs."""

    done: bool
    result: Any = None
    message: str = ""


# -- the client --------------------------------------------------------------------------


def request(
    path: Path, command: str, args: Mapping[str, Any] | None = None, *, timeout: float = 60.0
) -> Reply:
    """Send one command to the daemon listening on ``path``; raise ControlError on refusal."""
    payload = {"command": command, "args": {**(args or {}), "operator": audit.operator_name()}}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(path))
        except FileNotFoundError:
            raise ControlUnavailable(f"no control socket at {path}") from None
        except PermissionError:
            raise ControlUnavailable(
                f"may not use the control socket {path}; run the command as the daemon's user"
            ) from None
        except OSError as exc:
            raise ControlUnavailable(
                f"cannot reach the daemon at {path}: {exc.strerror or exc}"
            ) from None
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                # A refusing server may close early; its reply is still there to read.
                sock.sendall(json.dumps(payload).encode() + b"\n")
            data = _read_reply(sock)
        except TimeoutError:
            raise ControlError(
                f"no answer from the daemon within {timeout:g} s; see its log"
            ) from None
    try:
        reply = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError(f"the daemon sent an unreadable reply: {data[:200]!r}") from None
    if not isinstance(reply, dict):
        raise ControlError(f"the daemon sent an unexpected reply: {reply!r}")
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error") or "the daemon refused the command"))
    return Reply(bool(reply.get("done", True)), reply.get("result"), str(reply.get("message", "")))


def _read_reply(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    if not chunks:
        raise ControlError("the daemon closed the connection without answering; see its log")
    return b"".join(chunks)


# -- the command line's entry: live when the daemon runs, else on the state file ---------


def run_command(config: Config, command: str, args: Mapping[str, Any], out: TextIO) -> int:
    """Carry out an operator command on the running daemon, or offline; return the exit code."""
    reason = reason_arg(args)
    process = status_process(pid_file=config.pid_file)
    if process.running:
        path = config.control_socket_path
        try:
            reply = request(path, command, {**args, "reason": reason}, timeout=LIVE_TIMEOUT)
        except ControlUnavailable as exc:
            raise ControlError(
                f"the daemon runs (pid {process.pid}) but does not answer: {exc}; check "
                f"[daemon] control_socket in {config.path}, or stop the daemon and run the "
                "command again to edit its state file"
            ) from None
        out.write(f"{describe(command, reply)}\n")
        return 0
    out.write(f"{run_offline(config, command, args, reason).message}\n")
    return 0


#: Seconds the command line waits for the daemon (the server answers within ~30 s).
LIVE_TIMEOUT = 60.0


def describe(command: str, reply: Reply) -> str:
    """One or a few lines for the operator about what the daemon did."""
    if not reply.done:
        return reply.message
    result: Any = reply.result
    if command == "replay":
        return (
            f"replayed {result['delivered']} event(s) of {result['from_id']}..{result['to_id']} "
            f"to {result['plugin']}; its position did not move"
        )
    if command == "skip":
        state = "active again" if result.get("active") else "still inactive"
        return (
            f"skipped event {result['skipped']} for {result['plugin']} (recorded as a dead "
            f"letter); the plugin is {state}"
        )
    if command == "reset":
        return (
            "\n".join(
                f"reset {item['plugin']}: it continues after event {item['starts_after']}"
                for item in result
            )
            or "no plugins loaded; nothing reset"
        )
    if command == "disable":
        return f"disabled {result['plugin']}; it stays off until enabled, also across restarts"
    if command == "enable":
        if result.get("active"):
            return f"enabled {result['plugin']}; it continues from its saved position"
        return f"enabled {result['plugin']}, but it is inactive: {result.get('reason')}"
    if command == "reload":
        lines = [f"reloaded {', '.join(result['reloaded']) or 'nothing'}"]
        lines += [f"  {name} is inactive: {why}" for name, why in result["inactive"].items()]
        return "\n".join(lines)
    return json.dumps(result, default=str)
