"""WakeUps: how another thread (the webhook receiver) asks the poll loop to read now.

Any number of ``notify`` calls between two reads collapse into one: the loop
takes the highest event id asked for and decides, in its own thread, whether
it is worth a read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class WakeUps:
    """A thread-safe mailbox of event ids plus the Event the poll loop waits on."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._highest = 0
        self._notified = 0

    def notify(self, event_ids: Iterable[int]) -> None:
        """Record that these events exist and wake the loop (0 or no id: unknown id)."""
        with self._lock:
            self._notified += 1
            self._highest = max(self._highest, 0, *event_ids)
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a wake-up; True when one is pending."""
        return self._event.wait(timeout)

    def take(self) -> int | None:
        """The highest id asked for since the last take (0: unknown), or None without a wake-up."""
        with self._lock:
            if not self._event.is_set():
                return None
            self._event.clear()
            highest, self._highest = self._highest, 0
            return highest

    @property
    def notified(self) -> int:
        """How many notifications arrived so far (for status and benchmarks)."""
        return self._notified
