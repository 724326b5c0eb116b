"""What the status page remembers: recent warnings and errors, and events per minute.

``RecentLog`` is a logging handler (attached through ``LogSetup.attach``, so
every record it sees is scrubbed of secrets first) keeping the last warnings
and errors, and each plugin's last error with its time. ``PerMinute`` samples
a growing counter into one-minute buckets for the last hour's chart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: Warnings and errors kept for the page.
KEEP = 30
MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class Entry:
    """One remembered log record."""

    time: float
    level: str
    logger: str
    message: str


class RecentLog(logging.Handler):
    """Keep the last warnings and errors, and the last error of each plugin."""

    def __init__(self, keep: int = KEEP) -> None:
        super().__init__(logging.WARNING)
        self._entries: deque[Entry] = deque(maxlen=keep)
        self._plugin_errors: dict[str, Entry] = {}
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Remember the record's first line (never its traceback)."""
        try:
            text = record.getMessage().strip().splitlines()
        except Exception:  # a plugin's bad format string: the file handler reports it
            return
        entry = Entry(
            record.created,
            record.levelname,
            record.name,
            (text[0] if text else "")[:MESSAGE_LIMIT],
        )
        with self._guard:
            self._entries.append(entry)
            parts = record.name.split(".")
            if record.levelno >= logging.ERROR and parts[0] == "plugin" and len(parts) > 1:
                self._plugin_errors[parts[1]] = entry

    def entries(self) -> list[Entry]:
        """The remembered records, newest first."""
        with self._guard:
            return list(reversed(self._entries))

    def last_error(self, plugin: str) -> Entry | None:
        """The plugin's last ERROR record, or None."""
        with self._guard:
            return self._plugin_errors.get(plugin)


class PerMinute:
    """Turn samples of a growing counter into counts per minute for the last ``minutes``."""

    def __init__(
        self,
        read: Callable[[], int],
        *,
        minutes: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read = read
        self._minutes = minutes
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[int, int] = {}
        self._last = read()

    def sample(self) -> None:
        """Add what the counter grew by since the last sample to the current minute."""
        value = self._read()
        minute = int(self._clock() // 60)
        with self._lock:
            grown = max(0, value - self._last)
            self._last = value
            self._counts[minute] = self._counts.get(minute, 0) + grown
            for old in [m for m in self._counts if m <= minute - self._minutes]:
                del self._counts[old]

    def series(self) -> list[tuple[int, int]]:
        """(minute start as epoch seconds, count) for each of the last minutes, oldest first."""
        self.sample()
        minute = int(self._clock() // 60)
        with self._lock:
            return [
                (m * 60, self._counts.get(m, 0))
                for m in range(minute - self._minutes + 1, minute + 1)
            ]
