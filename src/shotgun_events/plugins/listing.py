"""Listing plugin folders: which files are plugins, in the original's order, with their stat.

One ``os.scandir`` per folder and one ``stat`` per plugin file; a folder that
cannot be read is reported once (and once more when it is readable again)
and listed as None, so the loader keeps its plugins as they are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from shotgun_events.plugins.helpers import normalise

# The loader's logger: these lines are part of what a scan says.
log = logging.getLogger("engine.loader")

#: (plugin name, path, (mtime_ns, size)) of one plugin file in a folder listing.
Entry = tuple[str, Path, tuple[int, int]]


def is_plugin_file(name: str) -> bool:
    """Tell whether a file name in a plugin folder names a plugin."""
    return name.endswith(".py") and not name.startswith((".", "_"))


def _file_order(entry: tuple[str, Path, object]) -> str:
    """Sort key of a plugin: its file name with ``.py``, as the original orders plugins."""
    return f"{entry[0]}.py"


def with_settling(
    collection: Path, entries: list[Entry], waiting: set[Path]
) -> list[tuple[str, Path, tuple[int, int] | None]]:
    """Add settling plugin files that are missing right now (mid-rename), without a stat."""
    listed = {normalise(path) for _, path, _ in entries}
    merged: list[tuple[str, Path, tuple[int, int] | None]] = list(entries)
    merged.extend(
        (path.name[:-3], collection / path.name, None)
        for path in waiting
        if path not in listed and path.parent == normalise(collection) and is_plugin_file(path.name)
    )
    merged.sort(key=_file_order)
    return merged


class FolderLister:
    """Lists plugin folders, remembering which ones could not be read so it says so once."""

    def __init__(self) -> None:
        self._unreadable: set[Path] = set()

    def list(self, collection: Path) -> list[Entry] | None:
        """List a folder's plugin files with their (mtime_ns, size), sorted by name.

        None when the folder cannot be read.
        """
        found: list[Entry] = []
        try:
            with os.scandir(collection) as it:
                for entry in it:
                    if not is_plugin_file(entry.name):
                        continue
                    try:
                        if not entry.is_file():
                            continue
                        st = entry.stat()
                    except OSError:
                        continue  # vanished between listing and stat: the next scan sees it
                    found.append((entry.name[:-3], Path(entry.path), (st.st_mtime_ns, st.st_size)))
        except OSError as exc:
            if collection not in self._unreadable:
                log.warning(
                    "plugin folder %s cannot be read (%s); keeping its plugins as they are "
                    "and retrying at every scan",
                    collection,
                    exc,
                )
                self._unreadable.add(collection)
            return None
        if collection in self._unreadable:
            log.info("plugin folder %s is readable again", collection)
            self._unreadable.discard(collection)
        found.sort(key=_file_order)
        return found
