"""Where each plugin starts: its saved position, the legacy shared id, or the start position."""

from __future__ import annotations

import logging
import os

from shotgun_events.cursor import Cursor
from shotgun_events.events import PluginKey
from shotgun_events.state.legacy import ANY_PLUGIN

log = logging.getLogger("engine")


class SavedPositions:
    """The positions read from the state file, handed out once per plugin."""

    def __init__(self, saved: dict[PluginKey, Cursor] | None) -> None:
        self.found = saved is not None
        self._saved = dict(saved or {})
        # The original's oldest state format: one last id for every plugin.
        self.legacy_default = self._saved.pop(ANY_PLUGIN, None)
        #: Keys whose entry was matched under another spelling (to forget in the store).
        self.respelled: list[PluginKey] = []

    def take(self, key: PluginKey, *, start: int, first_scan: bool) -> Cursor:
        """Return the cursor a plugin starts with, saying in the log where it comes from."""
        cursor = self._pop(key)
        if cursor is not None:
            return cursor
        if first_scan and self.legacy_default is not None:
            log.info(
                "plugin %s starts after event %d (legacy state)",
                key[1],
                self.legacy_default.last_id,
            )
            return self.legacy_default.copy()
        log.info("plugin %s has no saved position: starting after event %d", key[1], start)
        return Cursor(start)

    def keep(self, key: PluginKey, cursor: Cursor) -> None:
        """Remember a removed plugin's position, in case its file comes back."""
        self._saved[key] = cursor

    def _pop(self, key: PluginKey) -> Cursor | None:
        cursor = self._saved.pop(key, None)
        if cursor is not None:
            return cursor
        # A folder written differently (trailing slash, ./, ..) in an old state file.
        wanted = (os.path.normpath(key[0]), key[1])
        for saved_key in list(self._saved):
            if (os.path.normpath(saved_key[0]), saved_key[1]) == wanted:
                log.info("plugin %s: using the position saved for folder %s", key[1], saved_key[0])
                self.respelled.append(saved_key)
                return self._saved.pop(saved_key)
        return None
