"""The small interfaces the engine sees its collaborators through."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .cursor import Cursor
from .events import PluginKey

if TYPE_CHECKING:
    from .loader import Plugin, ScanResult


class PositionRecorder(Protocol):
    """Where cursors are persisted."""

    def record(
        self,
        key: PluginKey,
        cursor: Cursor,
        change: tuple[dict[int, datetime], set[int]] | None = None,
    ) -> None:
        """Persist one plugin's cursor (``change``: backlog ids added/removed since last)."""
        ...


class StateStoreLike(PositionRecorder, Protocol):
    """The part of the state store the engine uses."""

    def load(self) -> dict[PluginKey, Cursor] | None:
        """Return saved positions, or None when there is no state at all."""
        ...

    def set_extra(self, name: str, value: object) -> None:
        """Persist a small named section next to the positions."""
        ...

    def forget(self, key: PluginKey) -> None:
        """Drop a saved position."""
        ...

    def extras(self) -> dict[str, Any]:
        """Return the extra sections (dead letters, disabled plugins, audit)."""
        ...


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
