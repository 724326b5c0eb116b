"""The ``reset`` operator command: move plugins' positions while the daemon is stopped.

It is also the way out of a corrupt state file: with ``--all`` the unreadable
files are set aside (renamed, never deleted) and a fresh state is written in
which every plugin starts at the chosen event.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from shotgun_events.client.source import daemon_source
from shotgun_events.config.model import Config
from shotgun_events.cursor import Cursor
from shotgun_events.errors import ControlError, StateError
from shotgun_events.events import PluginKey
from shotgun_events.operator import audit
from shotgun_events.operator.offline import OPERATOR_WAIT, offline_lock
from shotgun_events.service.pidfile import status_process
from shotgun_events.state.legacy import ANY_PLUGIN
from shotgun_events.state.store import StateStore

log = logging.getLogger("engine.control")


@dataclass(frozen=True)
class ResetRequest:
    """Which plugins to move, where to, and why."""

    plugins: tuple[str, ...]
    everything: bool
    to: str  # "latest" or an event id
    reason: str


def run_reset(config: Config, request: ResetRequest, out: TextIO) -> int:
    """Carry out a reset on the state file of a stopped daemon; return the exit code."""
    if status_process(pid_file=config.pid_file).running:
        raise ControlError(
            f"the daemon is running (pid file {config.pid_file}); stop it first with: "
            f"shotgunEventDaemon -c {config.path} stop"
        )
    if not request.everything and not request.plugins:
        raise ControlError("name the plugins to reset, or use --all")
    # Held from before the state is read to after it is written: a daemon starting
    # meanwhile waits for it, and a running daemon makes us refuse.
    lock = offline_lock(
        config,
        "reset",
        advice="the daemon is running: stop it first with: "
        f"shotgunEventDaemon -c {config.path} stop",
    )
    lock.acquire(wait_for_operator=OPERATOR_WAIT)
    try:
        return _reset_locked(config, request, out)
    finally:
        lock.release()


def _reset_locked(config: Config, request: ResetRequest, out: TextIO) -> int:
    target = _target_id(config, request.to)
    store = StateStore(config.event_id_file, config_path=config.path)
    try:
        positions = store.load() or {}
    except StateError as exc:
        if not request.everything:
            raise ControlError(
                f"{exc}; only 'reset --all' can replace a corrupt state file"
            ) from exc
        moved = _set_aside(store)
        out.write(f"set the unreadable state aside: {', '.join(str(p) for p in moved)}\n")
        store = StateStore(config.event_id_file, config_path=config.path)
        positions = store.load() or {}
    try:
        keys = _select(positions, request)
        if request.everything:
            # Plugins that never ran have no entry yet: the shared start applies to
            # them at the next start, then the engine drops it.
            store.record(ANY_PLUGIN, Cursor(target))
        for key in keys:
            store.record(key, Cursor(target))
        _audit(store, request, target, keys)
        store.compact()
    finally:
        store.close()
    names = ", ".join(name for _, name in keys) or "(none saved yet)"
    out.write(f"reset {names} to start after event {target}; reason: {request.reason}\n")
    return 0


def _target_id(config: Config, to: str) -> int:
    """Turn ``latest`` or an event id into the id plugins will start after."""
    if to != "latest":
        try:
            event_id = int(to)
        except ValueError:
            raise ControlError(f"--to takes 'latest' or an event id, not {to!r}") from None
        if event_id < 1:
            raise ControlError("--to takes an event id of 1 or more")
        return event_id - 1
    source = daemon_source(config)
    try:
        return source.newest_id()
    except Exception as exc:
        raise ControlError(
            f"cannot read the newest event from {config.server} ({exc}); "
            "give an event id with --to ID instead"
        ) from exc
    finally:
        source.close()


def _select(positions: dict[PluginKey, Cursor], request: ResetRequest) -> list[PluginKey]:
    keys = [k for k in positions if k != ANY_PLUGIN]
    if request.everything:
        return sorted(keys)
    chosen = [k for k in keys if k[1] in request.plugins]
    missing = set(request.plugins) - {k[1] for k in chosen}
    if missing:
        known = ", ".join(sorted({k[1] for k in keys})) or "none"
        raise ControlError(
            f"no saved position for plugin(s) {', '.join(sorted(missing))}; known: {known}"
        )
    return sorted(chosen)


def _set_aside(store: StateStore) -> list[Path]:
    """Rename the unreadable snapshot and journal so a fresh state can be written."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for path in (store.path, store.journal_path):
        if path.exists():
            aside = path.with_name(f"{path.name}.corrupt-{stamp}")
            os.replace(path, aside)
            moved.append(aside)
    return moved


def _audit(store: StateStore, request: ResetRequest, target: int, keys: list[PluginKey]) -> None:
    plugins = "all" if request.everything else ",".join(k[1] for k in keys)
    audit.record(store, "reset", plugins, request.reason, to=target + 1, daemon="stopped")
