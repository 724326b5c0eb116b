"""Read the original daemon's pickled state file without running any code from it.

Formats understood (pickle protocol 0, 1 or 2, written by Python 2 or 3):

* ``{plugin_folder: {plugin_name: (last_event_id, {backlog_id: expiry})}}`` -
  the plugin name may end in ``.py`` (dropped here); expiries are naive local
  times (converted to aware UTC with this machine's time zone); a plugin's value
  may also be a bare integer (its last id, empty backlog), as very old
  versions wrote;
* a bare integer: the last id of every plugin (the oldest format). It comes
  back as the position of :data:`ANY_PLUGIN`. The engine gives that position
  to each plugin it loads at start, records them, then calls
  ``StateStore.forget(ANY_PLUGIN)`` so that plugins added later start from the
  newest event, as the original does.

Unpickling goes through :class:`PlainDataUnpickler`: containers, numbers and
strings are built by pickle opcodes alone, and the only callables a pickle may
name are the ``datetime`` types (and ``_codecs.encode``, which Python 3 uses
to pickle the bytes inside a datetime at protocols below 3). Anything else
(``os.system``, ``builtins.eval``...) is refused before it is called.

This module also phrases the "state is corrupt" message used by ``state.py``,
so both files give the same recovery command.
"""

from __future__ import annotations

import io
import pickle
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from shotgun_events.cursor import Cursor
from shotgun_events.errors import StateError
from shotgun_events.events import PluginKey

#: Position that applies to every plugin (imported from a bare-integer legacy file).
#: A collection path is absolute, so it can never be "*".
ANY_PLUGIN: PluginKey = ("*", "*")

_ALLOWED_GLOBALS = frozenset(
    {
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("_codecs", "encode"),
    }
)


def reset_command(config_path: Path | None) -> str:
    """Return the operator command that starts every plugin from the newest event."""
    conf = str(config_path) if config_path is not None else "<conf>"
    return f"shotgunEventDaemon -c {conf} reset --all --to latest"


def corrupt_error(
    path: Path, what: str, config_path: Path | None, *, kind: str = "state file"
) -> StateError:
    """Build the one-line error for an unreadable state file, with the way out."""
    return StateError(
        f"{kind} {path} is corrupt ({what}); restore it from a backup, or start from "
        f"the newest event with: {reset_command(config_path)}"
    )


def backup_path(path: Path, data: bytes) -> Path:
    """Return where to keep an imported pickle, never overwriting a different earlier backup."""
    candidate = path.with_name(path.name + ".legacy.pickle")
    number = 1
    while candidate.exists() and candidate.read_bytes() != data:
        candidate = path.with_name(f"{path.name}.legacy.{number}.pickle")
        number += 1
    return candidate


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data and datetimes, and refuses every other callable."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolve only the allowed datetime types; everything else is an error."""
        if (module, name) not in _ALLOWED_GLOBALS:
            raise StateError(f"not plain data: refusing to load {module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: plain data never has them."""
        raise StateError("not plain data: refusing a persistent id")


#: First bytes of the pickles the original wrote: protocol 2+ (0x80), protocols 0/1
#: dict or tuple (MARK, EMPTY_DICT), and the bare-integer forms (INT, LONG, BININT*).
_PICKLE_STARTS = frozenset(b"\x80(}IJKLM")


def looks_like_pickle(data: bytes) -> bool:
    """Tell the original's pickle from our JSON (or from any other text, reported as not JSON)."""
    stripped = data.lstrip()
    return bool(stripped) and stripped[0] in _PICKLE_STARTS


def parse_legacy(
    data: bytes, path: Path, config_path: Path | None = None
) -> dict[PluginKey, Cursor]:
    """Decode the original daemon's state bytes into positions; raise StateError if unusable.

    A bare-integer file gives ``{ANY_PLUGIN: Cursor(n)}``.
    """
    if not data.strip():
        raise corrupt_error(path, "empty legacy state file", config_path)
    try:
        # "bytes" keeps Python 2 str as bytes: datetimes accept their state as
        # bytes, and paths are decoded below as UTF-8, which latin1 would mangle.
        raw = PlainDataUnpickler(io.BytesIO(data), encoding="bytes").load()
    except StateError as exc:
        raise corrupt_error(path, str(exc), config_path) from None
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean the same here
        raise corrupt_error(
            path, f"not a readable legacy pickle: {type(exc).__name__}: {exc}", config_path
        ) from None
    try:
        return _positions(raw)
    except ValueError as exc:
        raise corrupt_error(path, f"not in a known legacy layout: {exc}", config_path) from None


def _positions(raw: Any) -> dict[PluginKey, Cursor]:
    """Convert the unpickled object into cursors, checking every type on the way."""
    if _is_int(raw):
        return {ANY_PLUGIN: Cursor(int(raw))}
    if not isinstance(raw, dict):
        raise ValueError(f"top level is a {type(raw).__name__}, not a dict or an integer")
    positions: dict[PluginKey, Cursor] = {}
    for folder, plugins in raw.items():
        collection = _text(folder, "plugin folder")
        if not isinstance(plugins, dict):
            raise ValueError(f"plugins of {collection!r} are a {type(plugins).__name__}")
        for name, value in plugins.items():
            plugin = _text(name, "plugin name")
            plugin = plugin.removesuffix(".py")
            positions[(collection, plugin)] = _cursor(value, f"{collection}/{plugin}")
    return positions


def _cursor(value: Any, where: str) -> Cursor:
    """Convert one plugin's ``(last_id, backlog)`` tuple (or bare last id) into a Cursor."""
    if _is_int(value):
        return Cursor(int(value))
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{where}: expected (last_id, backlog), got {type(value).__name__}")
    last_id, backlog = value
    if not _is_int(last_id):
        raise ValueError(f"{where}: last id is a {type(last_id).__name__}")
    if backlog is None:
        backlog = {}
    if not isinstance(backlog, dict):
        raise ValueError(f"{where}: backlog is a {type(backlog).__name__}")
    cursor = Cursor(int(last_id))
    for event_id, expiry in backlog.items():
        if not _is_int(event_id):
            raise ValueError(f"{where}: backlog id {event_id!r} is not an integer")
        cursor.backlog[int(event_id)] = _utc(expiry, where)
    return cursor


def _utc(expiry: Any, where: str) -> datetime:
    """Turn the original's naive local expiry into an aware UTC datetime."""
    if isinstance(expiry, datetime):
        # astimezone() on a naive datetime reads it as local time, as the original wrote it.
        return expiry.astimezone(UTC)
    if isinstance(expiry, date):
        return datetime(expiry.year, expiry.month, expiry.day).astimezone(UTC)
    raise ValueError(f"{where}: backlog expiry is a {type(expiry).__name__}")


def _text(value: Any, what: str) -> str:
    """Decode a Python 2 byte string (UTF-8, else latin-1) or pass a str through."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    raise ValueError(f"{what} {value!r} is not a string")


def _is_int(value: Any) -> bool:
    """Tell whether a value is an integer id (bool excluded)."""
    return isinstance(value, int) and not isinstance(value, bool)
