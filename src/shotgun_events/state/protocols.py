"""What the engine and the runners need of the state store, as protocols."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from shotgun_events.cursor import Cursor
from shotgun_events.events import PluginKey


class PositionRecorder(Protocol):
    """Where cursors are persisted."""

    def record(
        self,
        key: PluginKey,
        cursor: Cursor,
        change: tuple[dict[int, datetime], set[int]] | None = None,
        done_added: Collection[int] | None = None,
    ) -> None:
        """Persist one plugin's cursor (``change``: backlog ids added/removed since last;
        ``done_added``: ids above the watermark handled since last)."""
        ...


class ExtrasStore(Protocol):
    """The named sections kept beside the positions (dead letters, disabled plugins, audit)."""

    def extras(self) -> dict[str, Any]:
        """Return a copy of the extra sections."""
        ...

    def set_extra(self, name: str, value: Any) -> None:
        """Persist one section whole."""
        ...

    def add_extra(self, name: str, item: Any, *, keep: int) -> None:
        """Append one item to a list section, keeping its newest ``keep`` items."""
        ...


class StateStoreLike(PositionRecorder, ExtrasStore, Protocol):
    """The part of the state store the engine uses."""

    def load(self) -> dict[PluginKey, Cursor] | None:
        """Return saved positions, or None when there is no state at all."""
        ...

    def grouped(self) -> AbstractContextManager[None]:
        """Write what this thread records inside the block at its end, in one call."""
        ...

    def forget(self, key: PluginKey) -> None:
        """Drop a saved position."""
        ...
