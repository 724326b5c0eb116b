"""activity_stream_read: an entity's activity, read from the site's own event log.

An entity's stream holds its creation, its later field changes, its retirement and
revival, and the creation of each entity that linked to it when created (a Note on a
Shot, a Version of it, ...), newest first. Each update names who did it and the
``primary_entity`` it is about (``type``, ``id``, ``name``, ``status`` and the fields
asked for in ``entity_fields``). Changes made without event log entries (a script
whose ApiUser has ``generate_event_log_entries`` off) are not in it, as on a real site.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ApiError
from .reads import Reader
from .schema import Schema
from .store import Store

DEFAULT_LIMIT = 25
_KINDS = {
    "New": "create",
    "Change": "update",
    "Retirement": "delete",
    "Revival": "revive",
}
_COLUMNS = "id, event_type, meta, user__type, user__id, user__json, created_at"


class ActivityStream:
    """Builds activity streams; callers hold the store lock."""

    def __init__(self, store: Store, schema: Schema, reader: Reader) -> None:
        """Read events from ``store``, entities through ``reader``."""
        self.store = store
        self.schema = schema
        self.reader = reader

    def read(self, params: Any) -> dict[str, Any]:
        """The activity stream reply of a real site."""
        p = params if isinstance(params, dict) else {}
        spec = self.reader.entity_spec(p.get("type"), "activity_stream_read")
        entity_id = p.get("id")
        if not isinstance(entity_id, int) or self.store.state_of(spec.name, entity_id) is None:
            raise ApiError(f"activity_stream_read: {spec.name} with id {entity_id} does not exist")
        limit = p.get("limit") or DEFAULT_LIMIT
        fields = p.get("entity_fields") or {}
        if not isinstance(limit, int) or limit < 1 or not isinstance(fields, dict):
            raise ApiError("activity_stream_read: limit must be positive, entity_fields a dict")
        rows = self._own(spec.name, entity_id) + self._links_to(spec.name, entity_id)
        low, high = p.get("min_id"), p.get("max_id")
        rows = [r for r in rows if (low is None or r[0] >= low) and (high is None or r[0] <= high)]
        rows = sorted({r[0]: r for r in rows}.values(), key=lambda r: r[0], reverse=True)[:limit]
        updates = [self._update(r, fields) for r in rows]
        ids = [u["id"] for u in updates]
        return {
            "entity_type": spec.name,
            "entity_id": entity_id,
            "earliest_update_id": min(ids, default=None),
            "latest_update_id": max(ids, default=None),
            "updates": updates,
        }

    def _own(self, type_name: str, entity_id: int) -> list[tuple[Any, ...]]:
        rows = self.store.conn.execute(
            f'SELECT {_COLUMNS} FROM "EventLogEntry" WHERE entity__type = ? AND entity__id = ?'
            " AND event_type IN (?, ?, ?, ?)"
            " AND COALESCE(json_extract(meta, '$.in_create'), 0) = 0",
            (type_name, entity_id, *(f"Shotgun_{type_name}_{k}" for k in _KINDS)),
        )
        return list(rows)

    def _links_to(self, type_name: str, entity_id: int) -> list[tuple[Any, ...]]:
        """The creation events of entities that were created linked to this one."""
        created = self.store.conn.execute(
            'SELECT DISTINCT entity__type, entity__id FROM "EventLogEntry"'
            " WHERE json_extract(meta, '$.in_create') = 1 AND EXISTS (SELECT 1 FROM"
            " json_each(meta, '$.added') a WHERE json_extract(a.value, '$.type') = ?"
            " AND json_extract(a.value, '$.id') = ?)",
            (type_name, entity_id),
        ).fetchall()
        rows: list[tuple[Any, ...]] = []
        for other_type, other_id in created:
            rows.extend(
                self.store.conn.execute(
                    f'SELECT {_COLUMNS} FROM "EventLogEntry" WHERE entity__type = ?'
                    " AND entity__id = ? AND event_type = ?",
                    (other_type, other_id, f"Shotgun_{other_type}_New"),
                )
            )
        return rows

    def _update(self, row: tuple[Any, ...], fields: dict[str, Any]) -> dict[str, Any]:
        event_id, event_type, meta_text, user_type, user_id, user_json, created_at = row
        meta = json.loads(meta_text) if meta_text else {}
        kind = _KINDS.get(event_type.rsplit("_", 1)[-1], "update")
        primary = self._entity(meta.get("entity_type"), meta.get("entity_id"), fields)
        return {
            "id": event_id,
            "update_type": kind,
            "created_at": created_at.replace("T", " ").replace("Z", " UTC"),
            "created_by": self._who(user_type, user_id, user_json),
            "meta": meta,
            "primary_entity": primary,
            "read": False,
        }

    def _entity(self, type_name: Any, entity_id: Any, fields: dict[str, Any]) -> dict[str, Any]:
        spec = self.schema.entity(type_name) if isinstance(type_name, str) else None
        if spec is None or not isinstance(entity_id, int):
            return {"type": type_name, "id": entity_id, "name": None, "status": None}
        extra = [f for f in fields.get(spec.name) or [] if isinstance(f, str)]
        status = ["sg_status_list"] if "sg_status_list" in spec.fields else []
        got = self.reader.fetch(spec.name, entity_id, [spec.name_field, *status, *extra]) or {}
        out = {"type": spec.name, "id": entity_id, "name": got.get(spec.name_field)}
        out["status"] = got.get("sg_status_list")
        out.update({f: got.get(f) for f in extra})
        return out

    def _who(self, user_type: Any, user_id: Any, user_json: Any) -> dict[str, Any] | None:
        if not user_type:
            return None
        link = json.loads(user_json) if user_json else {"type": user_type, "id": user_id}
        spec = self.schema.entity(user_type)
        wanted: list[str] = [f for f in ("sg_status_list", "image") if spec and f in spec.fields]
        got = self.reader.fetch(user_type, user_id, wanted) or {} if wanted else {}
        return {**link, "status": got.get("sg_status_list"), "image": got.get("image")}
