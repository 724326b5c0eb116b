"""LocalSite: the embedded stand-in for a Flow Production Tracking site, with test controls."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .activity import Activity
from .api import Api
from .controls import Counters, Faults, Latency
from .eventlog import Actor, Link
from .schema import Schema
from .seed import seed_production
from .server import SiteApp, SiteHTTPServer
from .store import Store
from .webhooks import WebhookSender

LOOPBACK = ("127.0.0.1", "localhost")
#: Every interface: only inside a container, so the other containers of its stack reach it.
EVERY_INTERFACE = "0.0.0.0"
DEFAULT_SCRIPTS: Mapping[str, str] = {"shotgun_events": "local"}
#: The /_local/<action> endpoints: each takes the keyword arguments of the method.
CONTROL_ACTIONS = (
    "reserve_event_ids",
    "commit_reserved",
    "discard_reserved",
    "append_events",
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
)


class LocalSite:
    """A local site the real ``shotgun_api3`` client talks to over HTTP on 127.0.0.1.

    Scripts listed in ``scripts`` authenticate with their key; their ApiUser has
    ``generate_event_log_entries`` set to ``generate_events`` (on by default here, unlike
    a real site, because the daemon exists to read those events).
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        scripts: Mapping[str, str] | None = None,
        seed: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        generate_events: bool = True,
        open_scripts: bool = False,
        webhook_url: str | None = None,
        webhook_secret: str = "",
        webhook_batch: bool = False,
        latency_ms: float = 0.0,
    ) -> None:
        """Configure the site; nothing is opened until start().

        ``open_scripts``: accept any script name at its first call (see ``Api``).
        """
        if host not in (*LOOPBACK, EVERY_INTERFACE):
            raise ValueError(
                f"the local site binds 127.0.0.1 (or 0.0.0.0 inside a container), not {host!r}"
            )
        self.db_path = Path(db_path) if db_path is not None else None
        self.scripts = dict(DEFAULT_SCRIPTS if scripts is None else scripts)
        self._seed_on_start = seed
        self._host = "127.0.0.1"
        self._bind = EVERY_INTERFACE if host == EVERY_INTERFACE else self._host
        self._port = port
        self._generate_events = generate_events
        self._open_scripts = open_scripts
        self._tmpdir: str | None = None
        self._store: Store | None = None
        self._api: Api | None = None
        self._server: SiteHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._activity: Activity | None = None
        self._stopping = threading.Event()
        self.faults = Faults()
        self.counters = Counters()
        self.webhooks = WebhookSender(lambda: self._store)
        if webhook_url is not None:
            self.webhooks.configure(webhook_url, webhook_secret, webhook_batch)
        self.latency = Latency(latency_ms)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the site listens on (known once started)."""
        if self._server is None:
            return self._port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give ``shotgun_api3.Shotgun``."""
        return f"http://{self._host}:{self.port}"

    @property
    def api(self) -> Api:
        """The API object (for in-process helpers such as the activity generator)."""
        if self._api is None:
            raise RuntimeError("the local site is not started")
        return self._api

    def start(self) -> LocalSite:
        """Open the database and start serving in a background thread."""
        if self._server is not None:
            return self
        path = self.db_path
        if path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="shotgun_events_site_")
            path = Path(self._tmpdir) / "site.sqlite3"
        self._stopping.clear()
        self._store = Store(path, Schema())
        self._store.on_commit.append(self.webhooks.committed)
        self._api = Api(
            self._store,
            self._store.schema,
            self.scripts,
            open_scripts=self._open_scripts,
            generate_events=self._generate_events,
        )
        try:
            self._ensure_scripts()
            if self._seed_on_start:
                self.seed()
            app = SiteApp(
                self._api, self.faults, self.counters, self._stopping, self._control, self.latency
            )
            self._server = SiteHTTPServer((self._bind, self._port), app)
        except BaseException:
            self._close_store()
            raise
        self._port = self.port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"local-site:{self._port}",
            daemon=True,
        )
        self._thread.start()
        self.webhooks.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections, close the database (and delete a temp one)."""
        self.stop_activity()
        self.webhooks.stop()
        self._stopping.set()
        self.faults.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.end_connections()
            self._server.server_close()  # joins the handler threads
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close_store()

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
            self._api = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> LocalSite:
        """Start the site."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the site."""
        self.stop()

    def _ensure_scripts(self) -> None:
        api = self.api
        system = Actor(None, log_events=False)
        with api.store.transaction() as conn:
            for name in self.scripts:
                row = conn.execute(
                    'SELECT id FROM "ApiUser" WHERE firstname = ? AND retired = 0', (name,)
                ).fetchone()
                if row is None:
                    api.writer.create(
                        system,
                        "ApiUser",
                        [
                            {"field_name": "firstname", "value": name},
                            {
                                "field_name": "generate_event_log_entries",
                                "value": self._generate_events,
                            },
                        ],
                        ["id"],
                    )
                else:
                    conn.execute(
                        'UPDATE "ApiUser" SET generate_event_log_entries = ? WHERE id = ?',
                        (int(self._generate_events), row[0]),
                    )

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

    # -- controls ----------------------------------------------------------------

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

    def _control(self, action: str, kwargs: dict[str, Any]) -> Any:
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"unknown control {action!r}; known: {', '.join(CONTROL_ACTIONS)}")
        method: Callable[..., Any] = getattr(self, action)
        result = method(**kwargs)
        return list(result) if isinstance(result, tuple) else result
