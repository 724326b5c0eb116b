"""What the engine needs of the plugin loader and the folder watcher, as protocols."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shotgun_events.events import PluginKey

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin, ScanResult


class LoaderLike(Protocol):
    """The part of the plugin loader the engine uses."""

    plugins: list[Plugin]

    def scan(self, changed: Collection[Path] = (), settling: Collection[Path] = ()) -> ScanResult:
        """Load new and changed plugin files, unload deleted ones."""
        ...

    def reload(self, key: PluginKey) -> Plugin | None:
        """Reload one plugin now, changed or not."""
        ...


class WatcherLike(Protocol):
    """File-change notifications for plugin folders (watchdog)."""

    changed: threading.Event

    def take_due(self) -> set[Path]:
        """Return the changed paths that have been quiet long enough."""
        ...

    def pending(self) -> Mapping[Path, float]:
        """Return the paths still being written."""
        ...
