"""The plugin watcher's rules: which folders it watches and how, which events count.

No observer, no state. ``plan`` decides how each folder is watched: natively
(inotify), except a folder the daemon writes into (state, journal, logs, pid
file, control socket), which is polled through ``code_entries``, a listing of
its ``*.py`` files and sub-folders only. Every write to a file of the daemon's
own is an inotify event for a native watch of its folder; polled, the
daemon's files are never even listed, so they cost nothing and wake nothing.

``EVENT_FILTER`` narrows what the observer reports at all; ``moves_folders``
tells a folder created, deleted or moved (the watches must follow);
``changed_files`` lists the ``*.py`` paths a file event names (both ends of a
move), outside ``__pycache__``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

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


class Watch(NamedTuple):
    """One folder the watcher observes: with its sub-folders or not, polled or native."""

    path: Path
    recursive: bool
    polled: bool


def plan(
    targets: Iterable[tuple[Path, bool]], outputs: Collection[Path], *, poll_all: bool = False
) -> set[Watch]:
    """How to watch each (folder, recursive) target so the daemon's own writes are never seen.

    A folder in ``outputs`` is polled on its own; a recursive target with one
    of them below it is split into its folder and one target per sub-folder,
    down to the output folders. Everything else is watched as asked, natively
    unless ``poll_all``.
    """
    found: set[Watch] = set()
    todo = list(targets)
    while todo:
        folder, recursive = todo.pop()
        below = recursive and any(folder in out.parents for out in outputs)
        if folder in outputs or below:
            found.add(Watch(folder, False, poll_all or folder in outputs))
            if recursive:
                todo.extend((child, True) for child in subfolders(folder))
        else:
            found.add(Watch(folder, recursive, poll_all))
    return found


def watched_dir(name: str) -> bool:
    """Whether a sub-folder of this name can hold plugin or helper code."""
    return not name.startswith(".") and name != "__pycache__"


def subfolders(folder: Path) -> list[Path]:
    """The sub-folders of ``folder`` that can hold code (none if it cannot be read)."""
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        return [
            Path(e.path)
            for e in entries
            if watched_dir(e.name) and e.is_dir(follow_symlinks=False)
        ]
    return []


def code_entries(path: str | None) -> Iterator[os.DirEntry[str]]:
    """A folder listing for the polling observer: ``*.py`` files and code sub-folders only."""
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name.endswith(".py") or (
                watched_dir(entry.name) and entry.is_dir(follow_symlinks=False)
            ):
                yield entry


def python_files(folder: Path, recursive: bool) -> list[tuple[Path, os.stat_result]]:
    """(path, stat) of the ``*.py`` files in a folder (and its code sub-folders)."""
    found: list[tuple[Path, os.stat_result]] = []
    todo = [folder]
    while todo:
        current = todo.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        if entry.name.endswith(".py") and entry.is_file():
                            found.append((Path(entry.path), entry.stat()))
                        elif (
                            recursive
                            and watched_dir(entry.name)
                            and entry.is_dir(follow_symlinks=False)
                        ):
                            todo.append(Path(entry.path))
                    except OSError:
                        continue  # vanished meanwhile: the observer reports it
        except OSError:
            continue  # a missing or unreadable folder: nothing is being written there
    return found
