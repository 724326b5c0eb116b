"""LocalSite: the embedded stand-in for a Flow Production Tracking site, with test controls."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from .activity import Activity
from .api import Api
from .controls import Counters, Faults, Latency
from .eventlog import Actor
from .schema import Schema
from .server import SiteApp, SiteHTTPServer
from .sitecontrols import Controls
from .store import Store
from .studio import load_studio_schema
from .webhooks import WebhookSender

LOOPBACK = ("127.0.0.1", "localhost")
#: Every interface: only inside a container, so the other containers of its stack reach it.
EVERY_INTERFACE = "0.0.0.0"
DEFAULT_SCRIPTS: Mapping[str, str] = {"shotgun_events": "local"}


class LocalSite(Controls):
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
        schema: str | Path | None = None,
        schema_entity: str | Path | None = None,
    ) -> None:
        """Configure the site; nothing is opened until start().

        ``open_scripts``: accept any script name at its first call (see ``Api``).
        ``schema`` / ``schema_entity``: serve a studio's own schema from the files
        mockgun's ``generate_schema`` writes, or a JSON dump (see ``studio.py``); they
        are read (and a bad file refused) here.
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
        self._schema_files: tuple[Path, Path | None] | None = None
        if schema is not None:
            self._schema_files = (Path(schema), Path(schema_entity) if schema_entity else None)
            load_studio_schema(*self._schema_files)  # a bad file fails here, not at start()

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
        schema = Schema() if self._schema_files is None else load_studio_schema(*self._schema_files)
        self._store = Store(path, schema)
        self._store.on_commit.append(self.webhooks.committed)
        self._api = Api(
            self._store,
            self._store.schema,
            self.scripts,
            files_dir=path.parent / f"{path.stem}-files",
            open_scripts=self._open_scripts,
            generate_events=self._generate_events,
        )
        try:
            self._ensure_scripts()
            with self._store.lock:
                self._api.pages.ensure_builtin()
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
        self._store.site_url = self.url
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
