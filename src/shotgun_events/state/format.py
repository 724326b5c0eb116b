"""The state file's formats: encoding and decoding snapshots and journal lines; no I/O.

See ``state.py`` for the files and how they are written.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shotgun_events.cursor import Cursor
from shotgun_events.events import PluginKey
from shotgun_events.state.legacy import corrupt_error

#: Backlog ids added (with their expiry) and removed since a key's last record.
BacklogChange = tuple[Mapping[int, datetime], Collection[int]]
FORMAT = "shotgun_events.state"
JOURNAL_FORMAT = "shotgun_events.journal"
VERSION = 1


@dataclass
class SavedState:
    """What the state files say: positions, extra sections, and the snapshot's generation."""

    positions: dict[PluginKey, Cursor] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    generation: int = 0


def parse_snapshot(path: Path, data: bytes, config_path: Path | None) -> SavedState:
    """Decode and check a snapshot, raising StateError with what is wrong."""
    if not data.strip():
        raise corrupt_error(path, "empty file", config_path)
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise corrupt_error(path, f"not JSON, truncated?: {exc}", config_path) from None
    try:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f'no "format": "{FORMAT}"')
        if doc.get("version") != VERSION:
            raise ValueError(f"version {doc.get('version')!r}, this daemon reads {VERSION}")
        state = SavedState(generation=as_int(doc.get("journal_generation"), "journal_generation"))
        plugins = as_dict(doc.get("plugins"), "plugins")
        for collection, entries in plugins.items():
            for name, entry in as_dict(entries, f"plugins.{collection}").items():
                where = f"plugins.{collection}.{name}"
                entry = as_dict(entry, where)
                cursor = Cursor(as_int(entry.get("last_id"), f"{where}.last_id"))
                cursor.backlog = decode_backlog(
                    as_dict(entry.get("backlog", {}), f"{where}.backlog")
                )
                cursor.done = decode_done(entry.get("done", []), f"{where}.done")
                state.positions[(collection, name)] = cursor
        state.extras = as_dict(doc.get("extras", {}), "extras")
    except ValueError as exc:
        raise corrupt_error(path, f"wrong schema: {exc}", config_path) from None
    return state


def apply_entry(entry: Any, state: SavedState) -> None:
    """Apply one journal line to the state."""
    if "k" in entry:
        collection, name = entry["k"]
        key: PluginKey = (str(collection), str(name))
        cursor = state.positions.get(key) or Cursor(0)
        last_id = as_int(entry["l"], "l")
        done = cursor.done
        if "d" in entry:
            done = done | decode_done(entry["d"], "d")
        if "D" in entry:
            done = decode_done(entry["D"], "D")
        if done:
            done = {i for i in done if i > last_id}
        cursor = Cursor(last_id, dict(cursor.backlog), done)
        if "b" in entry:
            cursor.backlog = decode_backlog(as_dict(entry["b"], "b"))
        for event_id in entry.get("r", ()):
            cursor.backlog.pop(as_int(event_id, "r"), None)
        cursor.backlog.update(decode_backlog(as_dict(entry.get("a", {}), "a")))
        state.positions[key] = cursor
    elif "forget" in entry:
        collection, name = entry["forget"]
        state.positions.pop((str(collection), str(name)), None)
    elif "extra" in entry and "add" in entry:
        name = str(entry["extra"])
        keep = as_int(entry["keep"], "keep")
        state.extras[name] = appended(state.extras.get(name), entry["add"], keep)
    elif "extra" in entry:
        state.extras[str(entry["extra"])] = entry["value"]
    else:
        raise ValueError(f"unknown entry {sorted(entry)}")


def delta_line(
    key: PluginKey, last_id: int, change: BacklogChange, done_added: Collection[int] = ()
) -> str:
    """Encode a record from the backlog (and done-set) changes the caller already knows."""
    added, removed = change
    entry: dict[str, Any] = {"k": list(key), "l": int(last_id)}
    if added:
        entry["a"] = {str(i): iso(e) for i, e in added.items()}
    if removed:
        entry["r"] = sorted(removed)
    if done_added:
        entry["d"] = sorted(done_added)
    return json.dumps(entry, separators=(",", ":")) + "\n"


def record_line(key: PluginKey, cursor: Cursor, old: Cursor | None) -> str:
    """Encode a record whose backlog changed: as a delta, or whole when that is shorter."""
    before = old.backlog if old is not None else {}
    added = {i: e for i, e in cursor.backlog.items() if before.get(i) != e}
    removed = [i for i in before if i not in cursor.backlog]
    entry: dict[str, Any] = {"k": list(key), "l": int(cursor.last_id)}
    if cursor.done or (old is not None and old.done):
        # The done set is small (bounded by the runner's window): written whole.
        entry["D"] = sorted(cursor.done)
    if len(added) + len(removed) > len(cursor.backlog):
        entry["b"] = {str(i): iso(e) for i, e in cursor.backlog.items()}
    else:
        if added:
            entry["a"] = {str(i): iso(e) for i, e in added.items()}
        if removed:
            entry["r"] = removed
    return json.dumps(entry, separators=(",", ":")) + "\n"


def snapshot_bytes(state: SavedState, generation: int) -> bytes:
    plugins: dict[str, dict[str, Any]] = {}
    for (collection, name), cursor in sorted(state.positions.items()):
        entry: dict[str, Any] = {
            "last_id": cursor.last_id,
            "backlog": {str(i): iso(e) for i, e in sorted(cursor.backlog.items())},
        }
        if cursor.done:
            # Only plugins whose events finish out of order: other entries stay as they were.
            entry["done"] = sorted(cursor.done)
        plugins.setdefault(collection, {})[name] = entry
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "journal_generation": generation,
        "plugins": plugins,
        "extras": state.extras,
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def appended(section: Any, item: Any, keep: int) -> list[Any]:
    """A list section with one more item, its newest ``keep`` items kept."""
    items = list(section) if isinstance(section, list) else []
    items.append(item)
    return items[-keep:] if keep > 0 else []


def iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def decode_backlog(raw: dict[str, Any]) -> dict[int, datetime]:
    backlog: dict[int, datetime] = {}
    for event_id, expiry in raw.items():
        moment = datetime.fromisoformat(expiry) if isinstance(expiry, str) else None
        if moment is None or moment.tzinfo is None:
            raise ValueError(f"backlog expiry {expiry!r} is not an ISO 8601 time with offset")
        backlog[int(event_id)] = moment.astimezone(UTC)
    return backlog


def decode_done(raw: Any, where: str) -> set[int]:
    """Decode a list of handled ids above a watermark."""
    if not isinstance(raw, list):
        raise ValueError(f"{where} is not a list of event ids")
    return {as_int(value, where) for value in raw}


def as_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where} is not an integer")
    return value


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not an object")
    return value
