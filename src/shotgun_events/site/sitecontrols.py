"""The test controls of a LocalSite: methods, and ``POST /_local/<action>`` endpoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .activity import Activity
from .api import Api
from .controls import Counters, Faults, Latency
from .eventlog import Actor, Link
from .seed import seed_production
from .webhooks import WebhookSender

#: The /_local/<action> endpoints: each takes the keyword arguments of the method.
CONTROL_ACTIONS = (
    "reserve_event_ids",
    "commit_reserved",
    "discard_reserved",
    "append_events",
    "drop_events_before",
    "inject_fault",
    "clear_faults",
    "call_counts",
    "connection_count",
    "reset_counts",
    "newest_event_id",
    "event_count",
    "start_activity",
    "stop_activity",
    "seed",
    "add_script",
    "configure_webhook",
    "webhook_fault",
    "clear_webhook_faults",
    "webhook_stats",
    "set_latency",
    "enable_entity",
)


class Controls:
    """Reserved event ids, bulk events, faults, counters, activity, webhooks, schema."""

    scripts: dict[str, str]
    faults: Faults
    counters: Counters
    latency: Latency
    webhooks: WebhookSender
    _activity: Activity | None

    @property
    def api(self) -> Api:
        """The started site's API (LocalSite gives it)."""
        raise NotImplementedError

    def script_user(self) -> Link:
        """The ApiUser of the first configured script (who seeds the site)."""
        name = next(iter(self.scripts), None)
        user = (
            self.api.authenticate({"script_name": name, "script_key": self.scripts[name]}).user
            if name
            else None
        )
        if user is None:
            raise RuntimeError("the local site has no script to act as")
        return user

    def add_script(self, name: str, key: str) -> None:
        """Accept this script name and key from now on (creates its ApiUser)."""
        self.scripts[name] = key
        with self.api.store.lock:
            self.api.add_script(name, key)

    def seed(self) -> bool:
        """Create the demo production (if not there yet) through the API write path."""
        with self.api.store.lock:
            return seed_production(self.api, Actor(self.script_user(), log_events=True))

    def reserve_event_ids(self, n: int) -> list[int]:
        """Allocate ``n`` event ids that stay invisible until committed."""
        return self.api.events.reserve(n)

    def commit_reserved(
        self, ids: Sequence[int], event_type: str = "Shotgun_Shot_Change", **fields: Any
    ) -> None:
        """Make reserved ids visible as events, dated when they were reserved.

        ``fields`` may give attribute_name, meta, entity, user, project, session_uuid and
        description.
        """
        self.api.events.commit_reserved(ids, event_type=event_type, **fields)

    def discard_reserved(self, ids: Sequence[int]) -> None:
        """Never commit these reserved ids: they become permanent gaps."""
        self.api.events.discard_reserved(ids)

    def append_events(
        self,
        n: int,
        *,
        event_type: str = "Shotgun_Shot_Change",
        entity: Link | None = None,
        project: Link | None = None,
        created_at: str | None = None,
        **fields: Any,
    ) -> tuple[int, int]:
        """Bulk-append ``n`` synthetic events; returns (first id, last id)."""
        first, last = self.api.events.append(
            n,
            event_type=event_type,
            entity=entity,
            project=project,
            created_at=created_at,
            **fields,
        )
        return first, last

    def drop_events_before(self, event_id: int) -> int:
        """Delete the events below ``event_id`` (the log's retention); returns how many."""
        return self.api.events.drop_before(event_id)

    def inject_fault(
        self,
        kind: str,
        count: int = 1,
        *,
        status: int | None = None,
        seconds: float | None = None,
        method: str | None = None,
    ) -> None:
        """Misbehave on the next ``count`` API calls: status, hang, drop, reset or garbage."""
        self.faults.inject(kind, count, status=status, seconds=seconds, method=method)

    def clear_faults(self) -> None:
        """Drop queued faults and release hanging calls."""
        self.faults.clear()

    def set_latency(self, ms: float) -> float:
        """Delay every API call by ``ms`` milliseconds before serving it (0 = off); returns it."""
        self.latency.set(ms)
        return self.latency.ms

    def call_counts(self) -> dict[str, int]:
        """API calls received, by method_name."""
        return self.counters.calls()

    def connection_count(self) -> int:
        """TCP connections accepted."""
        return self.counters.connections()

    def reset_counts(self) -> None:
        """Zero the call and connection counters."""
        self.counters.reset()

    def newest_event_id(self) -> int:
        """The highest visible EventLogEntry id."""
        return self.api.events.newest_id()

    def event_count(self) -> int:
        """How many EventLogEntry rows are visible."""
        return self.api.events.count()

    def start_activity(self, rate_per_second: float, seed: int | None = None) -> None:
        """Start believable production changes at about ``rate_per_second`` events/s."""
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be > 0")
        self.stop_activity()
        self.seed()
        self._activity = Activity(self.api, rate_per_second, seed)
        self._activity.start()

    def stop_activity(self) -> None:
        """Stop the activity generator (no-op when it is not running)."""
        if self._activity is not None:
            self._activity.stop()
            self._activity = None

    def configure_webhook(self, url: str | None, secret: str = "", batch: bool = False) -> None:
        """Send a signed webhook delivery to ``url`` for every event committed from now on."""
        self.webhooks.configure(url, secret, batch)

    def webhook_fault(
        self, kind: str, count: int = 1, *, seconds: float = 0.0, copies: int = 2
    ) -> None:
        """Delay, duplicate, drop or mis-sign (``missign``) the next ``count`` deliveries."""
        self.webhooks.fault(kind, count, seconds=seconds, copies=copies)

    def clear_webhook_faults(self) -> None:
        """Forget queued webhook faults."""
        self.webhooks.clear_faults()

    def webhook_stats(self) -> dict[str, Any]:
        """Webhook deliveries queued, sent, dropped, ... and the answers' HTTP statuses."""
        return self.webhooks.snapshot()

    def enable_entity(self, type_name: str, display_name: str) -> None:
        """Switch a custom entity type on (CustomEntity01, ...), as a site admin does."""
        with self.api.store.lock:
            self.api.schema_editor.enable_entity(type_name, display_name)

    def _control(self, action: str, kwargs: dict[str, Any]) -> Any:
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"unknown control {action!r}; known: {', '.join(CONTROL_ACTIONS)}")
        method: Callable[..., Any] = getattr(self, action)
        result = method(**kwargs)
        return list(result) if isinstance(result, tuple) else result
