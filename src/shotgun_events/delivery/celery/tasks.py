"""What the daemon side of Celery keeps per task and per plugin, and needs of the hub."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from shotgun_events.events import Event


class Hub(Protocol):
    """What the executor needs of the CeleryHub."""

    def add(self, client: Any) -> None:
        """Serve this executor."""
        ...

    def remove(self, client: Any) -> None:
        """Stop serving it."""
        ...

    def send(self, client: Any, queue: str, body: dict[str, Any], task_id: str) -> bool:
        """Publish one task; False while Redis is away."""
        ...

    def forget(self, task_id: str) -> None:
        """Stop waiting for this task id."""
        ...


@dataclass
class Task:
    """One task of one key: the events it carries and when it is (re)sent."""

    key: Hashable
    events: list[Event]
    task_id: str | None = None
    sent_at: float = 0.0
    #: When to send (again); None while out.
    due: float | None = None
    refusals: int = 0


@dataclass
class Counters:
    """What status shows of one Celery plugin."""

    sent: int = 0
    resent: int = 0
    timed_out: int = 0
    refused: int = 0
    failed: int = 0
    dead_letters: int = 0
