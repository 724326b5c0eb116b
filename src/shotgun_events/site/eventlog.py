"""EventLogEntry rows: written with every change, reserved ids, and bulk synthetic events."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, utc_now
from .specs import FieldSpec
from .store import EVENT_TABLE, Store, q

_COLUMNS = (
    "id",
    "event_type",
    "attribute_name",
    "meta",
    "entity__type",
    "entity__id",
    "entity__json",
    "user__type",
    "user__id",
    "user__json",
    "project__type",
    "project__id",
    "project__json",
    "session_uuid",
    "created_at",
    "description",
)
_INSERT = (
    f"INSERT INTO {q(EVENT_TABLE)} ({', '.join(q(c) for c in _COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _COLUMNS)})"
)

Link = dict[str, Any]


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the user events name, the caller's session, and whether to log."""

    user: Link | None
    session_uuid: str | None = None
    log_events: bool = True
    sudo_actual_user: Link | None = None

    @property
    def caller(self) -> str:
        """``Type:id`` of the user; per-user values are read for it (``sg_caller()``)."""
        return f"{self.user['type']}:{self.user['id']}" if self.user else ""

    @property
    def who(self) -> str:
        """The name event descriptions start with."""
        return str(self.user["name"]) if self.user else "Someone"


def dumps(value: Any) -> str:
    """Compact JSON, as stored in the database."""
    return json.dumps(value, separators=(",", ":"))


def _key(link: Link | None) -> tuple[str, int] | None:
    return None if link is None else (link["type"], link["id"])


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name"))
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _link_cols(link: Link | None, visible: bool = True) -> tuple[Any, Any, Any]:
    if not link:
        return None, None, None
    slim = {"type": link["type"], "id": link["id"], "name": link.get("name")}
    return link["type"], link["id"], dumps(slim) if visible else None


class EventLog:
    """Appends and manages EventLogEntry rows; callers hold the store lock (and a transaction)."""

    def __init__(self, store: Store) -> None:
        """Work on ``store``'s connection."""
        self.store = store

    def record(
        self,
        actor: Actor,
        event_type: str,
        meta: dict[str, Any],
        *,
        entity: Link | None,
        project: Link | None,
        attribute_name: str | None = None,
        description: str = "",
        entity_visible: bool = True,
    ) -> int:
        """Append one event for a change ``actor`` made; returns its id."""
        if actor.sudo_actual_user:
            meta = {**meta, "sudo_actual_user": actor.sudo_actual_user}
        event_id = self.store.allocate_event_ids(1)
        self.store.conn.execute(
            _INSERT,
            (
                event_id,
                event_type,
                attribute_name,
                dumps(meta),
                *_link_cols(entity, entity_visible),
                *_link_cols(actor.user),
                *_link_cols(project),
                actor.session_uuid,
                utc_now(),
                description,
            ),
        )
        self.store.tx_events.append(range(event_id, event_id + 1))
        return event_id

    def field_change(
        self,
        actor: Actor,
        type_name: str,
        f: FieldSpec,
        link: Link,
        project: Link | None,
        old: Any,
        new: Any,
        in_create: bool = False,
    ) -> None:
        """Append the ``Shotgun_<Type>_Change`` row of one field, as a real site writes it."""
        meta: dict[str, Any] = {
            "type": "attribute_change",
            "attribute_name": f.name,
            "entity_type": type_name,
            "entity_id": link["id"],
            "field_data_type": f.data_type,
            "old_value": old,
            "new_value": new,
        }
        if f.is_entity or f.is_multi:
            olds = old if f.is_multi else [old] if old else []
            news = new if f.is_multi else [new] if new else []
            meta["added"] = [x for x in news if _key(x) not in {_key(o) for o in olds}]
            meta["removed"] = [x for x in olds if _key(x) not in {_key(n) for n in news}]
        if in_create:
            meta["in_create"] = True
        self.record(
            actor,
            f"Shotgun_{type_name}_Change",
            meta,
            entity=link,
            project=project,
            attribute_name=f.name,
            description=f'{actor.who} changed "{f.display}" from "{_text(old)}" to'
            f' "{_text(new)}" on {type_name} {link["name"]}',
        )

    def hide_entity(self, type_name: str, entity_id: int) -> None:
        """Null the ``entity`` of every event about a retired entity (filters still match)."""
        self.store.conn.execute(
            f"UPDATE {q(EVENT_TABLE)} SET entity__json = NULL"
            " WHERE entity__type = ? AND entity__id = ?",
            (type_name, entity_id),
        )

    def show_entity(self, link: Link) -> None:
        """Point every event about a revived (or renamed) entity at its current link."""
        self.store.conn.execute(
            f"UPDATE {q(EVENT_TABLE)} SET entity__json = ?"
            " WHERE entity__type = ? AND entity__id = ?",
            (_link_cols(link)[2], link["type"], link["id"]),
        )

    # -- controls ----------------------------------------------------------------

    def reserve(self, n: int) -> list[int]:
        """Allocate ``n`` ids now, visible only once committed (like an open transaction)."""
        if n < 1:
            raise ApiError("reserve_event_ids needs n >= 1")
        with self.store.transaction() as conn:
            first = self.store.allocate_event_ids(n)
            now = utc_now()
            ids = list(range(first, first + n))
            conn.executemany(
                "INSERT INTO reserved (id, created_at) VALUES (?, ?)", [(i, now) for i in ids]
            )
        return ids

    def commit_reserved(
        self,
        ids: Sequence[int],
        *,
        event_type: str = "Shotgun_Shot_Change",
        attribute_name: str | None = "sg_status_list",
        meta: dict[str, Any] | None = None,
        entity: Link | None = None,
        user: Link | None = None,
        project: Link | None = None,
        session_uuid: str | None = None,
        description: str = "",
    ) -> None:
        """Make reserved ids visible as events dated when they were reserved."""
        with self.store.transaction() as conn:
            rows = []
            for i in ids:
                found = conn.execute(
                    "SELECT created_at FROM reserved WHERE id = ?", (i,)
                ).fetchone()
                if found is None:
                    raise ApiError(f"event id {i} is not reserved")
                event_meta = (
                    meta if meta is not None else synthetic_meta(event_type, attribute_name, entity)
                )
                rows.append(
                    (
                        i,
                        event_type,
                        attribute_name,
                        dumps(event_meta),
                        *_link_cols(entity),
                        *_link_cols(user),
                        *_link_cols(project),
                        session_uuid,
                        found[0],
                        description,
                    )
                )
            conn.executemany(_INSERT, rows)
            conn.executemany("DELETE FROM reserved WHERE id = ?", [(i,) for i in ids])
            self.store.tx_events.extend(range(i, i + 1) for i in ids)

    def discard_reserved(self, ids: Sequence[int]) -> None:
        """Forget reserved ids: they stay a permanent gap in the log."""
        with self.store.transaction() as conn:
            conn.executemany("DELETE FROM reserved WHERE id = ?", [(i,) for i in ids])

    def append(
        self,
        n: int,
        *,
        event_type: str = "Shotgun_Shot_Change",
        attribute_name: str | None = "sg_status_list",
        entity: Link | None = None,
        user: Link | None = None,
        project: Link | None = None,
        created_at: str | None = None,
    ) -> tuple[int, int]:
        """Append ``n`` synthetic events in one transaction; returns (first id, last id)."""
        if n < 1:
            raise ApiError("append_events needs n >= 1")
        meta = dumps(synthetic_meta(event_type, attribute_name, entity))
        tail = (
            *_link_cols(entity),
            *_link_cols(user),
            *_link_cols(project),
            None,
            created_at or utc_now(),
            "synthetic event",
        )

        def rows(first: int) -> Iterator[tuple[Any, ...]]:
            for i in range(first, first + n):
                yield (i, event_type, attribute_name, meta, *tail)

        with self.store.transaction() as conn:
            first = self.store.allocate_event_ids(n)
            conn.executemany(_INSERT, rows(first))
            self.store.tx_events.append(range(first, first + n))
        if n >= 10_000:
            # fold a big append into the main file now: reads through a huge WAL are slow
            self.store.checkpoint()
        return first, first + n - 1

    def drop_before(self, event_id: int) -> int:
        """Delete the events below ``event_id`` (a hosted site's retention); return how many."""
        with self.store.transaction() as conn:
            cursor = conn.execute(f"DELETE FROM {q(EVENT_TABLE)} WHERE id < ?", (event_id,))
        return int(cursor.rowcount)

    def newest_id(self) -> int:
        """The highest visible event id (0 for an empty log)."""
        with self.store.lock:
            row = self.store.conn.execute(
                f"SELECT COALESCE(MAX(id), 0) FROM {q(EVENT_TABLE)}"
            ).fetchone()
        return int(row[0])

    def count(self) -> int:
        """How many events are visible."""
        with self.store.lock:
            row = self.store.conn.execute(f"SELECT COUNT(*) FROM {q(EVENT_TABLE)}").fetchone()
        return int(row[0])


def synthetic_meta(
    event_type: str, attribute_name: str | None, entity: Link | None
) -> dict[str, Any]:
    """A believable meta for a control-made event (entity type taken from the event type)."""
    parts = event_type.split("_")
    entity_type = entity["type"] if entity else (parts[1] if len(parts) >= 3 else None)
    kind = {
        "New": "new_entity",
        "Retirement": "entity_retirement",
        "Revival": "entity_revival",
    }.get(parts[-1], "attribute_change")
    meta: dict[str, Any] = {
        "type": kind,
        "entity_type": entity_type,
        "entity_id": entity["id"] if entity else None,
    }
    if kind == "attribute_change":
        meta.update(
            attribute_name=attribute_name,
            field_data_type="status_list",
            old_value="ip",
            new_value="rev",
        )
    return meta
