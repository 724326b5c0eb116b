"""In-memory stand-ins for the engine's collaborators (site, plugins, state)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shotgun_events.cursor import Cursor
from shotgun_events.errors import SiteError, StateWriteError
from shotgun_events.events import Event, PluginKey

#: Every dispatch mode, the shipped default first: a test over modes always runs the default.
DISPATCH_MODES = ("auto", "serial", "parallel")

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_event(event_id: int, *, created_at: datetime | None = None, **fields: Any) -> Event:
    """Build an EventLogEntry dict like the site returns."""
    event: Event = {
        "id": event_id,
        "event_type": fields.pop("event_type", "Shotgun_Shot_Change"),
        "attribute_name": fields.pop("attribute_name", "sg_status_list"),
        "meta": {"type": "attribute_change"},
        "entity": {"type": "Shot", "id": 1, "name": "sh010"},
        "user": {"type": "HumanUser", "id": 1, "name": "Ann"},
        "project": {"type": "Project", "id": 1, "name": "Demo"},
        "session_uuid": None,
        "created_at": created_at or T0,
    }
    event.update(fields)
    return event


class FakeSource:
    """An event log where some allocated ids are not visible yet."""

    def __init__(self) -> None:
        # Plugin workers read while the test writes: every access takes the lock.
        self._lock = threading.RLock()
        self.events: dict[int, Event] = {}
        self.hidden: set[int] = set()
        self.calls: list[tuple[str, Any]] = []
        self.fail_next = 0

    def add(self, *ids: int, created_at: datetime | None = None, **fields: Any) -> None:
        with self._lock:
            for event_id in ids:
                self.events[event_id] = make_event(event_id, created_at=created_at, **fields)

    def _check(self) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise SiteError("injected")

    def fetch_after(self, last_id: int, limit: int, event_types: Any = None) -> list[Event]:
        with self._lock:
            self.calls.append(("after", last_id))
            self._check()
            ids = sorted(
                i
                for i in self.events
                if i > last_id
                and i not in self.hidden
                and (event_types is None or self.events[i]["event_type"] in event_types)
            )
            return [dict(self.events[i]) for i in ids[:limit]]

    def fetch_ids(self, ids: Sequence[int]) -> list[Event]:
        with self._lock:
            self.calls.append(("ids", tuple(ids)))
            self._check()
            visible = [i for i in sorted(ids) if i in self.events and i not in self.hidden]
            return [dict(self.events[i]) for i in visible]

    def newest_id(self) -> int:
        with self._lock:
            self.calls.append(("newest", None))
            self._check()
            visible = [i for i in self.events if i not in self.hidden]
            return max(visible, default=0)

    def oldest_id(self) -> int:
        with self._lock:
            self.calls.append(("oldest", None))
            self._check()
            visible = [i for i in self.events if i not in self.hidden]
            return min(visible, default=0)

    def close(self) -> None:
        """Nothing to release."""


@dataclass(eq=False)
class FakeCallback:
    """A registered callback as the dispatcher sees it."""

    name: str
    func: Callable[..., object]
    matches: Callable[[Event], bool] = lambda event: True
    args: object = None
    stop_on_error: bool = True
    script_name: str = "script"
    script_key: str = "key"
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("plugin.fake"))
    retries: int | None = None
    retry_delay: float | None = None
    match_events: object = None


@dataclass(eq=False)
class FakePlugin:
    """A loaded plugin that records what it received."""

    name: str
    collection: Path = Path("/plugins")
    callbacks: list[FakeCallback] = field(default_factory=list)
    timers: list[Any] = field(default_factory=list)
    active: bool = True
    reason: str | None = None
    failed_at: float | None = None
    received: list[int] = field(default_factory=list)
    generation: int = 0
    concurrency: int = 1
    order_by: str = "entity"
    fingerprint: tuple[int, int, str] = (0, 0, "0" * 40)
    projects: tuple[int | str, ...] | None = None
    ignore_own_events: bool | None = None

    @property
    def key(self) -> PluginKey:
        return (str(self.collection), self.name)

    @property
    def path(self) -> Path:
        return self.collection / f"{self.name}.py"

    @property
    def logger(self) -> logging.Logger:
        """The plugin logger, ``plugin.<name>``, as the loader gives real plugins."""
        return logging.getLogger(f"plugin.{self.name}")

    def deactivate(self, reason: str, *, by_callback: bool = False) -> None:
        self.active = False
        self.reason = reason
        self.failed_at = time.monotonic() if by_callback else None


def recording_plugin(
    name: str,
    *,
    fail_on: set[int] | None = None,
    stop_on_error: bool = True,
    matches: Callable[[Event], bool] = lambda e: True,
    match_events: object = None,
) -> FakePlugin:
    """A plugin with one callback that records event ids and fails on some."""
    plugin = FakePlugin(name)
    failing = fail_on if fail_on is not None else set()

    def callback(sg: Any, logger: logging.Logger, event: Event, args: Any) -> None:
        if event["id"] in failing:
            raise RuntimeError(f"boom on {event['id']}")
        plugin.received.append(event["id"])

    plugin.callbacks.append(
        FakeCallback(
            "callback",
            callback,
            matches=matches,
            stop_on_error=stop_on_error,
            match_events=match_events,
        )
    )
    return plugin


@dataclass
class FakeScan:
    added: list[Any] = field(default_factory=list)
    reloaded: list[Any] = field(default_factory=list)
    removed: list[Any] = field(default_factory=list)


class FakeLoader:
    """A loader whose plugin list the test edits directly."""

    def __init__(self, plugins: list[FakePlugin]) -> None:
        self.plugins: list[Any] = list(plugins)
        self.pending = FakeScan(added=list(plugins))

    def scan(self, changed: Any = (), settling: Any = ()) -> FakeScan:
        result, self.pending = self.pending, FakeScan()
        return result

    def reload(self, key: PluginKey) -> Any:
        """Reloading a fake plugin switches it on again, as a successful load does."""
        for plugin in self.plugins:
            if plugin.key == key:
                plugin.active, plugin.reason, plugin.failed_at = True, None, None
                return plugin
        return None


class FakeStore:
    """A state store in memory that can be told to fail like a full disk."""

    def grouped(self) -> contextlib.nullcontext[None]:
        """Records are kept at once: nothing to group."""
        return contextlib.nullcontext()

    def __init__(self, saved: dict[PluginKey, Cursor] | None = None) -> None:
        self.saved = saved
        self.positions: dict[PluginKey, Cursor] = dict(saved or {})
        self.sections: dict[str, object] = {}
        self.records = 0
        self.full = False

    def load(self) -> dict[PluginKey, Cursor] | None:
        return None if self.saved is None else {k: c.copy() for k, c in self.saved.items()}

    def record(
        self, key: PluginKey, cursor: Cursor, change: Any = None, done_added: Any = None
    ) -> None:
        if self.full:
            raise StateWriteError("No space left on device")
        self.records += 1
        self.positions[key] = cursor.copy()

    def set_extra(self, name: str, value: object) -> None:
        self.sections[name] = value

    def add_extra(self, name: str, item: object, *, keep: int) -> None:
        items = list(self.sections.get(name) or [])  # type: ignore[call-overload]
        self.sections[name] = [*items, item][-keep:]

    def forget(self, key: PluginKey) -> None:
        self.positions.pop(key, None)

    def extras(self) -> dict[str, object]:
        return dict(self.sections)


class FakeConnections:
    """Hands out one dummy connection object that remembers session uuids."""

    class Sg:
        def __init__(self) -> None:
            self.session_uuids: list[str | None] = []

        def set_session_uuid(self, value: str | None) -> None:
            self.session_uuids.append(value)

    def __init__(self) -> None:
        self.sg = self.Sg()

    def get(self, script_name: str, script_key: str) -> Any:
        return self.sg


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds
