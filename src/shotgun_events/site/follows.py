"""follow / unfollow / followers / following: which users follow which entities."""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .eventlog import Link
from .schema import USER_TYPES, Schema
from .store import Store


class Follows:
    """The follow table; callers hold the store lock (writes inside a transaction)."""

    def __init__(self, store: Store, schema: Schema) -> None:
        """Create the table when the database is new."""
        self.store = store
        self.schema = schema
        store.conn.execute(
            "CREATE TABLE IF NOT EXISTS follows (user_type TEXT, user_id INTEGER,"
            " entity_type TEXT, entity_id INTEGER,"
            " PRIMARY KEY (user_type, user_id, entity_type, entity_id)) WITHOUT ROWID"
        )

    def _link(self, method: str, what: str, value: Any, types: tuple[str, ...] = ()) -> Link:
        ok = (
            isinstance(value, dict)
            and isinstance(value.get("type"), str)
            and isinstance(value.get("id"), int)
            and (not types or value["type"] in types)
            and self.schema.entity(value["type"]) is not None
        )
        if not ok:
            raise ApiError(
                f"API {method}() {what} must be an entity {{'type', 'id'}}, got {value!r}"
            )
        if self.store.state_of(value["type"], value["id"]) != 0:
            raise ApiError(f"API {method}() {value['type']} with id {value['id']} does not exist")
        link = self.store.link_of(value["type"], value["id"])
        assert link is not None
        return link

    def follow(self, params: Any, on: bool) -> dict[str, Any]:
        """Add (or remove) one follow; the reply a real site gives."""
        method = "follow" if on else "unfollow"
        if not isinstance(params, dict):
            raise ApiError(f"API {method}() expects user and entity")
        user = self._link(method, "user", params.get("user"), USER_TYPES)
        entity = self._link(method, "entity", params.get("entity"))
        key = (user["type"], user["id"], entity["type"], entity["id"])
        with self.store.transaction() as conn:
            if on:
                conn.execute("INSERT OR IGNORE INTO follows VALUES (?, ?, ?, ?)", key)
            else:
                conn.execute(
                    "DELETE FROM follows WHERE user_type = ? AND user_id = ?"
                    " AND entity_type = ? AND entity_id = ?",
                    key,
                )
        return {"followed" if on else "unfollowed": True, "user": user, "entity": entity}

    def followers(self, params: Any) -> list[Link]:
        """The active users following an entity."""
        entity = self._link("followers", "entity", (params or {}).get("entity"))
        rows = self.store.conn.execute(
            "SELECT n.type, n.id, n.name FROM follows f JOIN names n ON n.type = f.user_type"
            " AND n.id = f.user_id AND n.retired = 0"
            " WHERE f.entity_type = ? AND f.entity_id = ? ORDER BY n.type, n.id",
            (entity["type"], entity["id"]),
        )
        return [{"type": t, "id": i, "name": n} for t, i, n in rows]

    def following(self, params: Any) -> list[Link]:
        """The active entities a user follows, optionally of one project and/or type."""
        p = params if isinstance(params, dict) else {}
        user = self._link("following", "user", p.get("user"), USER_TYPES)
        entity_type = p.get("entity_type")
        if entity_type is not None and self.schema.entity(entity_type) is None:
            raise ApiError(f"API following() entity type '{entity_type}' does not exist")
        project = p.get("project")
        if project is not None:
            project = self._link("following", "project", project, ("Project",))
        rows = self.store.conn.execute(
            "SELECT n.type, n.id, n.name FROM follows f JOIN names n ON n.type = f.entity_type"
            " AND n.id = f.entity_id AND n.retired = 0"
            " WHERE f.user_type = ? AND f.user_id = ? AND (? IS NULL OR f.entity_type = ?)"
            " ORDER BY n.type, n.id",
            (user["type"], user["id"], entity_type, entity_type),
        )
        found = [{"type": t, "id": i, "name": n} for t, i, n in rows]
        if project is None:
            return found
        return [e for e in found if self._in_project(e, project["id"])]

    def _in_project(self, link: Link, project_id: int) -> bool:
        if link["type"] == "Project":
            return bool(link["id"] == project_id)
        if self.schema.field(link["type"], "project") is None:
            return False
        row = self.store.conn.execute(
            f'SELECT "project__id" FROM "{link["type"]}" WHERE id = ?', (link["id"],)
        ).fetchone()
        return row is not None and row[0] == project_id
