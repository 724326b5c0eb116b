"""The state store: one writer's journal lines and compactions, and the read-only entry points.

Durable per-plugin positions: an atomic JSON snapshot plus an append-only journal.
Reading a file back is ``state.replay``; atomic file writes are ``state.files``.

Files, for the configured ``eventIdFile`` ``P``::

    P                 snapshot, only ever replaced atomically
    P.journal         one JSON line per change made since the snapshot
    P.legacy.pickle   the original daemon's pickle, kept after the one-time import

Snapshot (indented JSON, grouped like the original's pickle)::

    {"format": "shotgun_events.state", "version": 1, "journal_generation": 7,
     "plugins": {"/opt/plugins": {"myPlugin": {"last_id": 1240,
                 "backlog": {"1238": "2024-05-01T10:00:00+00:00"}}}},
     "extras": {"dead_letters": []}}

Journal: a header line ``{"format": "shotgun_events.journal", "generation": G}``,
then one compact line per change::

    {"k":["/opt/plugins","myPlugin"],"l":1235}              position, backlog unchanged
    {"k":[...],"l":1240,"a":{"1238":"<expiry>"},"r":[1230]}  backlog delta: added, removed
    {"k":[...],"l":1240,"b":{"1238":"<expiry>"}}             whole backlog, when shorter
    {"forget":["/opt/plugins","myPlugin"]}
    {"extra":"dead_letters","value":[...]}
    {"extra":"dead_letters","add":{...},"keep":1000}        one more list item, oldest dropped

The usual record (backlog unchanged) is ~50 bytes and one write() call.

Compaction writes snapshot G+1, then atomically replaces the journal with an
empty journal G+1. After a crash between the two, the old journal (G) is
skipped on load: all it holds is already in snapshot G+1, so nothing is
replayed over a newer snapshot. The writer compacts when it opens, which also
drops a torn last line, every ``compact_every`` records, and on close.

Durability: each record reaches the kernel (one ``os.write``) before
``record()`` returns, so killing the process, even with kill -9, loses
nothing. Inside ``grouped()`` the records a thread makes reach the kernel
together, in one write at the end of the block: the shared lane groups the
records of one event's pass over its plugins, so a kill re-delivers that one
event to the plugins that had handled it, and one write call serves them all.
``fsync`` only matters for a power cut or kernel crash: "always" syncs every
record (or group), "interval" at most every ``fsync_interval`` seconds (so a
power cut loses at most about that much), "never" leaves it to the kernel.
Snapshots are always synced (file, then folder): renaming unsynced data can
leave an empty file after a power cut.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from shotgun_events.config.model import DEFAULTS
from shotgun_events.cursor import Cursor
from shotgun_events.errors import StateWriteError
from shotgun_events.events import PluginKey
from shotgun_events.state.files import journal_of, write_atomic
from shotgun_events.state.format import (
    JOURNAL_FORMAT,
    BacklogChange,
    SavedState,
    appended,
    delta_line,
    record_line,
    snapshot_bytes,
)
from shotgun_events.state.legacy import ANY_PLUGIN, backup_path
from shotgun_events.state.replay import load_state
from shotgun_events.telemetry import NULL, Telemetry

__all__ = [
    "ANY_PLUGIN",
    "FSYNC_POLICIES",
    "SavedState",
    "StateStore",
    "read_positions",
    "read_state",
]

log = logging.getLogger("engine.state")

FSYNC_POLICIES = ("always", "interval", "never")


class _Groups(threading.local):
    """Per thread: the journal lines of an open ``grouped()`` block, None outside one."""

    lines: list[str] | None = None


class StateStore:
    """The daemon's persistent positions, one writer per state file; thread-safe."""

    telemetry: Telemetry = NULL

    def __init__(
        self,
        path: Path,
        *,
        fsync: str = DEFAULTS.text("daemon", "state_fsync"),
        fsync_interval: float = 1.0,
        compact_every: int = 20000,
        clock: Callable[[], float] = time.monotonic,
        config_path: Path | None = None,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        self._path = Path(path)
        self._journal_path = journal_of(self._path)
        self._fsync = fsync
        self._fsync_interval = fsync_interval
        self._compact_every = max(1, compact_every)
        self._clock = clock
        self._config_path = config_path
        self._lock = threading.Lock()
        self._state: SavedState | None = None  # None until loaded
        self._fd: int | None = None  # None: the next change compacts first
        self._since_compact = 0
        self._synced_at = clock()
        self._key_json: dict[PluginKey, str] = {}
        #: Per thread: the lines recorded inside ``grouped()``, written at its end.
        self._groups = _Groups()

    @property
    def path(self) -> Path:
        """The snapshot file (the configured eventIdFile)."""
        return self._path

    @property
    def journal_path(self) -> Path:
        """The journal next to the snapshot."""
        return self._journal_path

    def load(self) -> dict[PluginKey, Cursor] | None:
        """Read the state (importing a legacy pickle once); None when there is none at all."""
        with self._lock:
            self._close_fd()
            state = load_state(self._path, self._config_path, importer=self._import_legacy)
            self._state = state or SavedState()
            if state is None:
                return None
            return {key: cursor.copy() for key, cursor in state.positions.items()}

    def record(
        self,
        key: PluginKey,
        cursor: Cursor,
        change: BacklogChange | None = None,
        done_added: Collection[int] | None = None,
    ) -> None:
        """Persist one plugin's position: one journal line; raise StateWriteError if not saved.

        ``change`` (ids added to and removed from the backlog since the last record
        of this key) lets a large backlog be recorded without comparing it whole;
        ``done_added`` does the same for the ids above a watermark handled since.
        """
        with self._lock:
            state = self._writable()
            old = state.positions.get(key)
            if old is not None and (cursor.done or old.done or done_added):
                self._record_watermark(key, cursor, old, change, done_added)
            elif change is not None and old is not None and (change[0] or change[1]):
                self._append(delta_line(key, cursor.last_id, change))
                old.last_id = cursor.last_id
                old.backlog.update(change[0])
                for event_id in change[1]:
                    old.backlog.pop(event_id, None)
            elif old is not None and (change is not None or old.backlog == cursor.backlog):
                if old.last_id == cursor.last_id:
                    return  # nothing changed: keep the journal short
                key_json = self._key_json.get(key) or self._cache_key(key)
                self._append(f'{{"k":{key_json},"l":{int(cursor.last_id)}}}\n')
                old.last_id = cursor.last_id
            else:
                self._append(record_line(key, cursor, old))
                state.positions[key] = cursor.copy()
            self._after_change()

    def _record_watermark(
        self,
        key: PluginKey,
        cursor: Cursor,
        old: Cursor,
        change: BacklogChange | None,
        done_added: Collection[int] | None,
    ) -> None:
        """Record a watermark with handled ids above it (concurrent plugins only)."""
        assert self._state is not None
        if change is None or done_added is None:
            self._append(record_line(key, cursor, old))
            self._state.positions[key] = cursor.copy()
            self._after_change()
            return
        added, removed = change
        if old.last_id == cursor.last_id and not added and not removed and not done_added:
            return
        if added or removed:
            self._append(delta_line(key, cursor.last_id, change, done_added))
        else:
            # The usual record of a concurrent plugin: built by hand, as the plain one is.
            key_json = self._key_json.get(key) or self._cache_key(key)
            done = ",".join(map(str, sorted(done_added)))
            extra = f',"d":[{done}]' if done_added else ""
            self._append(f'{{"k":{key_json},"l":{int(cursor.last_id)}{extra}}}\n')
        moved = old.last_id != cursor.last_id
        old.last_id = cursor.last_id
        old.backlog.update(added)
        for event_id in removed:
            old.backlog.pop(event_id, None)
        old.done.update(done_added)
        if moved and old.done:
            old.done = {i for i in old.done if i > old.last_id}
        self._after_change()

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """Write the journal lines this thread records in the block in one call, at its end.

        A failed write stops using the journal: the next record writes a new
        snapshot from what is in memory, which includes the lines of the block.
        """
        groups = self._groups
        if groups.lines is not None:
            yield  # already grouping: the outer block writes
            return
        lines: list[str] = []
        groups.lines = lines
        try:
            yield
        finally:
            groups.lines = None
            if lines:
                with self._lock:
                    if self._fd is None:
                        self._writable()  # compacted meanwhile, or a failed write: snapshot
                    else:
                        self._write("".join(lines))
                        self._sync_by_policy()

    def forget(self, key: PluginKey) -> None:
        """Drop a plugin's position (operator reset only; removed plugins keep theirs)."""
        with self._lock:
            state = self._writable()
            if key not in state.positions:
                return
            self._append(json.dumps({"forget": list(key)}, separators=(",", ":")) + "\n")
            del state.positions[key]
            self._after_change()

    def extras(self) -> dict[str, Any]:
        """Return a copy of the extra sections (dead letters, disabled plugins, audit...)."""
        with self._lock:
            if self._state is None:
                self._load_quietly()
            assert self._state is not None
            return copy.deepcopy(self._state.extras)

    def set_extra(self, name: str, value: Any) -> None:
        """Store one small JSON-serializable section; TypeError if it is not JSON."""
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            state = self._writable()
            self._append(f'{{"extra":{json.dumps(name)},"value":{text}}}\n')
            state.extras[name] = json.loads(text)  # a private copy, as it will read back
            self._after_change()

    def add_extra(self, name: str, item: Any, *, keep: int) -> None:
        """Append one item to a list section, keeping its newest ``keep`` items.

        The journal gets the item alone: a section of a thousand dead letters costs
        one short line per new letter, not the whole list again.
        """
        text = json.dumps(item, separators=(",", ":"))
        with self._lock:
            state = self._writable()
            self._append(f'{{"extra":{json.dumps(name)},"add":{text},"keep":{int(keep)}}}\n')
            state.extras[name] = appended(state.extras.get(name), json.loads(text), keep)
            self._after_change()

    def compact(self) -> None:
        """Write the whole state as a new snapshot and start an empty journal."""
        with self._lock:
            self._writable(compact=False)
            self._compact_locked()

    def flush(self) -> None:
        """Force what was recorded onto the disk (fsync)."""
        with self._lock:
            if self._fd is not None:
                self._sync()

    def close(self) -> None:
        """Compact (if anything changed) and close the journal."""
        with self._lock:
            if self._state is not None and (self._fd is not None and self._since_compact):
                self._compact_locked()
            self._close_fd()

    # -- internals (called with the lock held) ---------------------------------------------

    def _load_quietly(self) -> None:
        """Load on first use when the engine did not call load() itself."""
        state = load_state(self._path, self._config_path, importer=self._import_legacy)
        self._state = state or SavedState()

    def _writable(self, *, compact: bool = True) -> SavedState:
        """Return the in-memory state, opening the journal (by compacting) when needed."""
        if self._state is None:
            self._load_quietly()
        assert self._state is not None
        if self._fd is None and compact:
            # A fresh snapshot + empty journal: drops a torn tail, and after a
            # failed write it is the only safe place to append again.
            self._compact_locked()
        return self._state

    def _cache_key(self, key: PluginKey) -> str:
        text = json.dumps(list(key))
        self._key_json[key] = text
        return text

    def _append(self, line: str) -> None:
        """Write one journal line in one call (kept for the end of a group); on failure, stop
        using this journal."""
        lines: list[str] | None = self._groups.lines
        if lines is None:
            self._write(line)
        else:
            lines.append(line)

    def _write(self, text: str) -> None:
        assert self._fd is not None
        data = text.encode()
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # short writes: regular files rarely, but never lose a byte
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            # The line may be half written: append nothing after it, so it
            # stays a torn *last* line until the next compaction replaces it.
            self._close_fd()
            raise self._write_error(exc, self._journal_path) from exc
        self.telemetry.state_written(None)

    def _after_change(self) -> None:
        """Sync by policy (a group syncs once, when written) and compact every N changes."""
        self._since_compact += 1
        if self._fsync != "never" and self._groups.lines is None:
            self._sync_by_policy()
        if self._since_compact >= self._compact_every:
            try:
                self._compact_locked()
            except StateWriteError as exc:
                # The change itself is safe in the journal; compaction is retried later.
                self._since_compact = 0
                log.warning("state compaction failed, retrying later: %s", exc)

    def _sync_by_policy(self) -> None:
        if self._fsync == "always":
            self._sync()
        elif self._fsync == "interval":
            now = self._clock()
            if now - self._synced_at >= self._fsync_interval:
                self._sync()
                self._synced_at = now

    def _sync(self) -> None:
        assert self._fd is not None
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._close_fd()
            raise self._write_error(exc, self._journal_path) from exc

    def _compact_locked(self) -> None:
        """Snapshot G+1 atomically, then replace the journal by an empty journal G+1."""
        assert self._state is not None
        generation = self._state.generation + 1
        try:
            write_atomic(self._path, snapshot_bytes(self._state, generation))
        except OSError as exc:
            raise self._write_error(exc, self._path) from exc
        self._state.generation = generation
        # The snapshot holds what this thread's group recorded so far: not to be written again.
        lines: list[str] | None = self._groups.lines
        if lines:
            lines.clear()
        # From here the old journal is stale (load skips it): never append to it again.
        self._close_fd()
        header = json.dumps({"format": JOURNAL_FORMAT, "generation": generation}) + "\n"
        try:
            write_atomic(self._journal_path, header.encode())
            self._fd = os.open(self._journal_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise self._write_error(exc, self._journal_path) from exc
        self._since_compact = 0
        self._synced_at = self._clock()

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError as exc:
                log.warning("closing state journal %s failed: %s", self._journal_path, exc)

    def _write_error(self, exc: OSError, path: Path) -> StateWriteError:
        self.telemetry.state_written(exc.strerror or type(exc).__name__)
        return StateWriteError(
            f"cannot write state file {path}: {exc.strerror or exc}; positions are not "
            f"advanced until it succeeds (free space or fix permissions in {path.parent})"
        )

    def _import_legacy(self, data: bytes, positions: dict[PluginKey, Cursor]) -> SavedState:
        """Keep the pickle as a backup, then replace it by JSON state and a fresh journal."""
        backup = backup_path(self._path, data)
        state = SavedState(positions=positions)
        try:
            if not backup.exists():
                write_atomic(backup, data)
        except OSError as exc:
            raise self._write_error(exc, backup) from exc
        self._state = state
        self._compact_locked()
        default = positions.get(ANY_PLUGIN)
        log.info(
            "imported legacy state from %s: %d plugin positions%s; original kept as %s",
            self._path,
            len(positions) - (default is not None),
            f", last id {default.last_id} for every plugin" if default else "",
            backup,
        )
        return state


def read_positions(path: Path, config_path: Path | None = None) -> dict[PluginKey, Cursor] | None:
    """Read positions without writing anything (for ``status`` while the daemon runs)."""
    state = read_state(path, config_path)
    return None if state is None else state.positions


def read_state(path: Path, config_path: Path | None = None) -> SavedState | None:
    """Read positions and extras without writing anything; None when there is no state."""
    return load_state(Path(path), config_path, importer=None)
