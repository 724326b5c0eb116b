"""What happens when a callback fails: retries with backoff, and the dead-letter list.

The original knew two answers to a failing callback: switch the plugin off
(``stopOnError=True``) or drop the event. We keep both as the outcome once
retries are used up, and record every event that was given up, so an
operator can see and replay it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shotgun_events.config.model import DEFAULTS
from shotgun_events.plugins.registrar import Callback

#: Dead letters kept in the state file (the oldest are dropped first).
DEAD_LETTER_LIMIT = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """Defaults from the config; a callback's own ``retries``/``retry_delay`` win."""

    retries: int = DEFAULTS.integer("daemon", "callback_retries")
    delay: float = DEFAULTS.number("daemon", "callback_retry_delay")
    max_delay: float = DEFAULTS.number("daemon", "callback_retry_max_delay")

    def attempts_for(self, callback: Callback) -> int:
        """Extra attempts after the first failure."""
        return self.retries if callback.retries is None else callback.retries

    def wait_before(self, callback: Callback, retry: int) -> float:
        """Seconds to wait before the ``retry``-th new attempt (1-based): doubling."""
        base = self.delay if callback.retry_delay is None else callback.retry_delay
        return float(min(base * 2.0 ** (retry - 1), self.max_delay))


class ExtrasStore(Protocol):
    """The part of the state store dead letters live in."""

    def extras(self) -> dict[str, Any]:
        """Return the extra sections."""
        ...

    def set_extra(self, name: str, value: Any) -> None:
        """Persist one extra section."""
        ...


class DeadLetters:
    """Events given up after their callback failed, kept in the state file."""

    SECTION = "dead_letters"

    def __init__(
        self,
        store: ExtrasStore,
        *,
        limit: int = DEAD_LETTER_LIMIT,
        scrub: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._store = store
        self._limit = limit
        # Error texts are the plugins' own: they can hold a password, like any log line.
        self._scrub = scrub
        self._lock = threading.Lock()

    def record(self, plugin: str, event_id: int, error: str, *, reason: str) -> None:
        """Add one given-up event (plugin, event id, error, time, why)."""
        entry = {
            "plugin": plugin,
            "event_id": event_id,
            "error": self._scrub(error)[:500],
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "reason": reason,
        }
        with self._lock:
            letters = list(self._store.extras().get(self.SECTION, []))
            letters.append(entry)
            self._store.set_extra(self.SECTION, letters[-self._limit :])

    def entries(self) -> list[dict[str, Any]]:
        """Return the recorded dead letters, oldest first."""
        return list(self._store.extras().get(self.SECTION, []))
