"""The SQLite database behind the site: tables per entity type, links, names, id counters."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .rules import INT_TYPES, REAL_TYPES
from .schema import EntitySpec, FieldSpec, Schema

EVENT_TABLE = "EventLogEntry"


def q(name: str) -> str:
    """Quote an SQL identifier (type and field names come from the schema, never the caller)."""
    return '"' + name.replace('"', '""') + '"'


def columns_for(spec: FieldSpec) -> list[tuple[str, str]]:
    """The SQL columns (name, type) one field is stored in; none for multi-entity fields."""
    if spec.name == "id" or spec.is_multi or spec.data_type == "password" or spec.virtual:
        return []
    if spec.is_entity:
        cols = [(f"{spec.name}__type", "TEXT"), (f"{spec.name}__id", "INTEGER")]
        if spec.prebuilt:
            cols.append((f"{spec.name}__json", "TEXT"))
        return cols
    if spec.data_type in INT_TYPES or spec.data_type in ("checkbox", "image"):
        return [(spec.name, "INTEGER")]  # an image holds the id of its thumbnail's file
    if spec.data_type in REAL_TYPES:
        return [(spec.name, "REAL")]
    return [(spec.name, "TEXT")]


class Store:
    """One SQLite connection in WAL mode, shared by all threads under one lock.

    Every API call runs under ``lock``; a write call runs inside ``transaction()`` so a
    batch and the event rows it produces commit (or vanish) together.
    """

    def __init__(self, path: Path, schema: Schema) -> None:
        """Open (creating if needed) the database at ``path``."""
        self.path = path
        self.schema = schema
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: the log's head stays cached
        #: The base URL clients reach the site at (file and thumbnail URLs start with it).
        self.site_url = ""
        self.conn.create_function("sg_site_url", 0, lambda: self.site_url)
        #: ``Type:id`` of the user the current call acts as (set per call, under ``lock``).
        self.caller = ""
        self.conn.create_function("sg_caller", 0, lambda: self.caller)
        self._in_tx = False
        #: Event ids made visible by the open transaction (EventLog notes them).
        self.tx_events: list[range] = []
        #: Called after each COMMIT that made events visible, with their ids (webhooks).
        self.on_commit: list[Callable[[list[range]], None]] = []
        self._create_tables()
        self._event_high = self._load_event_high()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it."""
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self.lock:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()

    # -- schema ----------------------------------------------------------------

    def _create_tables(self) -> None:
        c = self.conn
        c.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value INTEGER)")
        c.execute(
            "CREATE TABLE IF NOT EXISTS names (type TEXT, id INTEGER, name TEXT,"
            " retired INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (type, id)) WITHOUT ROWID"
        )
        c.execute(
            "CREATE TABLE IF NOT EXISTS links (src_type TEXT, field TEXT, src_id INTEGER,"
            " dst_type TEXT, dst_id INTEGER, pos INTEGER,"
            " PRIMARY KEY (src_type, field, src_id, dst_type, dst_id)) WITHOUT ROWID"
        )
        c.execute("CREATE INDEX IF NOT EXISTS ix_links_dst ON links (dst_type, dst_id, field)")
        c.execute("CREATE TABLE IF NOT EXISTS reserved (id INTEGER PRIMARY KEY, created_at TEXT)")
        # uploaded files, one per Attachment (same id); the bytes live in the files folder
        c.execute(
            "CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY, token TEXT, name TEXT,"
            " content_type TEXT, size INTEGER, stored TEXT, kind TEXT, ready_at TEXT)"
        )
        for spec in self.schema.entities.values():
            self.ensure_table(spec)

    def ensure_table(self, spec: EntitySpec) -> None:
        """Create a type's table, or add the columns of fields it gained since."""
        c = self.conn
        type_name = spec.name
        cols: list[tuple[str, str]] = []
        for f in spec.fields.values():
            cols.extend(columns_for(f))
        body = "".join(f", {q(n)} {t}" for n, t in cols)
        c.execute(
            f"CREATE TABLE IF NOT EXISTS {q(type_name)} (id INTEGER PRIMARY KEY,"
            f" retired INTEGER NOT NULL DEFAULT 0{body})"
        )
        existing = {row[1] for row in c.execute(f"PRAGMA table_info({q(type_name)})")}
        for n, t in cols:
            if n not in existing:  # a field added to the schema since the file was made
                c.execute(f"ALTER TABLE {q(type_name)} ADD COLUMN {q(n)} {t}")
        for f in spec.fields.values():
            # the event log only gets the one index retire/revive/rename need, so
            # bulk appends stay fast
            indexed = f.name == "entity" if type_name == EVENT_TABLE else True
            if f.is_entity and indexed and f.name not in ("created_by", "updated_by"):
                ix = q(f"ix_{type_name}_{f.name}")
                c.execute(
                    f"CREATE INDEX IF NOT EXISTS {ix} ON {q(type_name)}"
                    f" ({q(f.name + '__type')}, {q(f.name + '__id')})"
                )

    # -- transactions ----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one write transaction (nested calls join the outer one)."""
        with self.lock:
            if self._in_tx:
                yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            self.tx_events = []
            try:
                yield self.conn
            except BaseException:
                # ids handed out inside a rolled-back transaction stay used in memory:
                # a real site leaves such gaps too
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
                if self.tx_events:
                    for listener in self.on_commit:
                        listener(self.tx_events)
            finally:
                self._in_tx = False
                self.tx_events = []

    # -- event ids -------------------------------------------------------------

    def _load_event_high(self) -> int:
        row = self.conn.execute("SELECT value FROM kv WHERE key='event_high'").fetchone()
        top = self.conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {q(EVENT_TABLE)}").fetchone()
        res = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM reserved").fetchone()
        return max(int(row[0]) if row else 0, int(top[0]), int(res[0]))

    @property
    def event_high(self) -> int:
        """The highest event id handed out so far (visible, reserved or discarded)."""
        return self._event_high

    def allocate_event_ids(self, n: int) -> int:
        """Hand out ``n`` consecutive event ids (inside a transaction); returns the first."""
        first = self._event_high + 1
        self._event_high += n
        self.conn.execute(
            "INSERT INTO kv (key, value) VALUES ('event_high', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (self._event_high,),
        )
        return first

    # -- names -----------------------------------------------------------------

    def set_name(self, type_name: str, entity_id: int, name: Any, retired: int = 0) -> None:
        """Record the display name a link to this entity carries."""
        self.conn.execute(
            "INSERT INTO names (type, id, name, retired) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(type, id) DO UPDATE SET name = excluded.name",
            (type_name, entity_id, None if name is None else str(name), retired),
        )

    def link_of(self, type_name: str, entity_id: int) -> dict[str, Any] | None:
        """``{type, id, name}`` of an existing entity (retired or not), else None."""
        row = self.conn.execute(
            "SELECT name FROM names WHERE type = ? AND id = ?", (type_name, entity_id)
        ).fetchone()
        if row is None:
            return None
        return {"type": type_name, "id": entity_id, "name": row[0]}

    def state_of(self, type_name: str, entity_id: int) -> int | None:
        """1 if retired, 0 if active, None if the entity never existed."""
        row = self.conn.execute(
            "SELECT retired FROM names WHERE type = ? AND id = ?", (type_name, entity_id)
        ).fetchone()
        return None if row is None else int(row[0])

    def set_retired(self, type_name: str, entity_id: int, retired: int) -> None:
        """Retire or revive the row and its name entry."""
        self.conn.execute(
            f"UPDATE {q(type_name)} SET retired = ? WHERE id = ?", (retired, entity_id)
        )
        self.conn.execute(
            "UPDATE names SET retired = ? WHERE type = ? AND id = ?",
            (retired, type_name, entity_id),
        )
