"""What an observer's event means to the plugin watcher: which events count, which paths they name.

Pure: no observer, no state. ``EVENT_FILTER`` narrows what the observer
reports at all; ``moves_folders`` tells a folder created, deleted or moved
(the watches must follow); ``changed_files`` lists the ``*.py`` paths a file
event names (both ends of a move), outside ``__pycache__``.
"""

from __future__ import annotations

import os
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

_FILE_EVENTS = frozenset(
    {
        EVENT_TYPE_CREATED,
        EVENT_TYPE_MODIFIED,
        EVENT_TYPE_DELETED,
        EVENT_TYPE_MOVED,
        EVENT_TYPE_CLOSED,
        EVENT_TYPE_ATTRIB,
    }
)
_DIR_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED})
# Narrows the inotify mask: the loader's own reads (open, close-no-write) stay silent.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


def moves_folders(event: FileSystemEvent) -> bool:
    """Tell whether a folder was created, deleted or moved (the watches must be synced)."""
    return event.is_directory and event.event_type in _DIR_EVENTS


def changed_files(event: FileSystemEvent) -> list[Path]:
    """The absolute ``*.py`` paths a file event names; none for folders and other events."""
    if event.is_directory or event.event_type not in _FILE_EVENTS:
        return []
    paths = [event.src_path]
    if event.event_type == EVENT_TYPE_MOVED:
        paths.append(event.dest_path)
    return [
        Path(os.path.abspath(os.fsdecode(p)))
        for p in paths
        if p and os.fsdecode(p).endswith(".py") and "__pycache__" not in os.fsdecode(p)
    ]
