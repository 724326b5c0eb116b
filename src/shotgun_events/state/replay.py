"""Reading a state file back: snapshot, then the journal replayed over it.

Decides which journal lines apply (generation check), tolerates a torn last
line, and hands a legacy pickle to the writer's importer (or only decodes it
for read-only callers). Writes nothing itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from shotgun_events.cursor import Cursor
from shotgun_events.events import PluginKey
from shotgun_events.state.files import journal_of, read_bytes
from shotgun_events.state.format import (
    JOURNAL_FORMAT,
    SavedState,
    apply_entry,
    as_int,
    parse_snapshot,
)
from shotgun_events.state.legacy import corrupt_error, looks_like_pickle, parse_legacy

__all__ = ["LegacyImporter", "load_state"]

log = logging.getLogger("engine.state")

#: The writer's one-time import of a legacy pickle: (pickle bytes, its positions) -> state.
LegacyImporter = Callable[[bytes, dict[PluginKey, Cursor]], SavedState]


def load_state(
    path: Path, config_path: Path | None, importer: LegacyImporter | None
) -> SavedState | None:
    """Read snapshot + journal; with an importer, a legacy pickle is imported, else only decoded."""
    journal = journal_of(path)
    # A live writer may compact between our two reads; the generation check
    # below notices it and we read again (only the read-only view can race).
    for _attempt in range(20):
        data = read_bytes(path)
        if data is None:
            if read_bytes(journal) is not None:
                raise corrupt_error(path, f"missing, but its journal {journal} exists", config_path)
            return None
        if looks_like_pickle(data):
            positions = parse_legacy(data, path, config_path)
            if importer is None:
                return SavedState(positions=positions)
            return importer(data, positions)
        state = parse_snapshot(path, data, config_path)
        journal_data = read_bytes(journal)
        if journal_data is None or _replay(journal, journal_data, state, config_path, importer):
            return state
        if importer is not None:
            break
        time.sleep(0.01)
    raise corrupt_error(
        journal,
        "its generation is newer than the snapshot's: the snapshot was replaced by an older "
        "copy? move the journal away to use the snapshot as it is",
        config_path,
        kind="state journal",
    )


def _replay(
    journal: Path,
    data: bytes,
    state: SavedState,
    config_path: Path | None,
    importer: LegacyImporter | None,
) -> bool:
    """Apply journal lines onto the snapshot; False if the journal is newer than it."""
    lines = data.split(b"\n")
    tail = lines.pop()  # bytes after the last newline: empty unless the last write was torn
    if not lines:
        if tail.strip(b"\0 \t\r"):
            _warn_torn(journal, 1, importer)
        return True  # empty journal, or a header cut short while being created
    try:
        header = json.loads(lines[0])
        generation = as_int(header.get("generation"), "generation")
        if header.get("format") != JOURNAL_FORMAT:
            raise ValueError("no journal format marker")
    except (ValueError, AttributeError) as exc:
        raise corrupt_error(
            journal, f"line 1 is not a journal header: {exc}", config_path, kind="state journal"
        ) from None
    if generation < state.generation:
        return True  # compaction finished its snapshot; these lines are already in it
    if generation > state.generation:
        return False
    for number, line in enumerate(lines[1:], start=2):
        try:
            apply_entry(json.loads(line), state)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            if number == len(lines) and not tail:
                _warn_torn(journal, number, importer)  # last line garbled by a power cut
                return True
            raise corrupt_error(
                journal, f"line {number} is unreadable: {exc}", config_path, kind="state journal"
            ) from None
    if tail:
        _warn_torn(journal, len(lines) + 1, importer)
    return True


def _warn_torn(journal: Path, line: int, importer: LegacyImporter | None) -> None:
    # Only a writer's load (it passes an importer) means a crash; a reader
    # merely caught a write in progress.
    level = logging.WARNING if importer is not None else logging.DEBUG
    log.log(level, "ignoring torn last line %d of %s (interrupted write)", line, journal)
