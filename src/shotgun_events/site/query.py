"""SQL expressions that render entities as JSON text inside SQLite, and sort keys.

Rows are serialized by SQLite itself (string concatenation and ``json_quote``), so a
read of 500 events does no per-row Python work beyond joining the strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from .rules import stored_as_json
from .schema import FieldSpec, Schema
from .store import q
from .urlfields import THUMBNAIL_PREFIX, TRANSIENT_THUMBNAIL

_DEEP = re.compile(r"^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\.(.+)$")


def lit(text: str) -> str:
    """An SQL string literal (for names from the schema and JSON keys)."""
    return "'" + text.replace("'", "''") + "'"


class Aliases:
    """Unique table aliases for one statement, so nested subqueries never collide."""

    def __init__(self) -> None:
        """Start at a0, which callers use for the outer table."""
        self.n = 0

    def next(self) -> str:
        """A fresh alias."""
        self.n += 1
        return f"a{self.n}"


def split_deep(path: str) -> tuple[str, str, str] | None:
    """``entity.Shot.code`` -> (field, linked type, rest); None for a plain field."""
    m = _DEEP.match(path)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def _link_json(type_sql: str, id_sql: str) -> str:
    return (
        "COALESCE((SELECT json_object('type', n.type, 'id', n.id, 'name', n.name)"
        f" FROM names n WHERE n.type = {type_sql} AND n.id = {id_sql} AND n.retired = 0),"
        " 'null')"
    )


def pairs_sql(type_name: str, f: FieldSpec, alias: str) -> str:
    """A subquery of (lt, li, pos): the entities a multi-entity field of ``alias`` holds."""
    if f.link_kind == "links":
        return (
            "SELECT l.dst_type AS lt, l.dst_id AS li, l.pos AS pos FROM links l"
            f" WHERE l.src_type = {lit(type_name)} AND l.field = {lit(f.name)}"
            f" AND l.src_id = {alias}.id"
        )
    src_type, src_field = f.source
    if f.link_kind == "reverse":
        return (
            "SELECT l.src_type AS lt, l.src_id AS li, l.src_id AS pos FROM links l"
            f" WHERE l.dst_type = {lit(type_name)} AND l.dst_id = {alias}.id"
            f" AND l.field = {lit(src_field)} AND l.src_type = {lit(src_type)}"
        )
    return (
        f"SELECT {lit(src_type)} AS lt, x.id AS li, x.id AS pos FROM {q(src_type)} x"
        f" WHERE x.retired = 0 AND x.{q(src_field + '__type')} = {lit(type_name)}"
        f" AND x.{q(src_field + '__id')} = {alias}.id"
    )


def field_json(schema: Schema, type_name: str, path: str, alias: str, aliases: Aliases) -> str:
    """SQL producing the JSON text of one return field; ``'null'`` for unknown fields."""
    deep = split_deep(path)
    if deep is not None:
        link_name, linked_type, rest = deep
        f = schema.field(type_name, link_name)
        if f is None or not f.is_entity or schema.entity(linked_type) is None:
            return "'null'"
        inner = aliases.next()
        value = field_json(schema, linked_type, rest, inner, aliases)
        return (
            f"COALESCE((SELECT {value} FROM {q(linked_type)} {inner}"
            f" WHERE {alias}.{q(link_name + '__type')} = {lit(linked_type)}"
            f" AND {inner}.id = {alias}.{q(link_name + '__id')} AND {inner}.retired = 0),"
            " 'null')"
        )
    f = schema.field(type_name, path)
    if f is None:
        return "'null'"
    col = f"{alias}.{q(f.name)}"
    if f.name == "id":
        return f"{alias}.id"
    if f.is_entity:
        if f.prebuilt:
            return f"COALESCE({alias}.{q(f.name + '__json')}, 'null')"
        return _link_json(f"{alias}.{q(f.name + '__type')}", f"{alias}.{q(f.name + '__id')}")
    if f.is_multi:
        return (
            "(SELECT json_group_array(json(j)) FROM (SELECT json_object('type', n.type,"
            " 'id', n.id, 'name', n.name) AS j"
            f" FROM ({pairs_sql(type_name, f, alias)}) p JOIN names n ON n.type = p.lt"
            " AND n.id = p.li AND n.retired = 0 ORDER BY p.pos, p.li))"
        )
    if f.virtual:
        return f"COALESCE(json_quote({VIRTUAL[f.virtual](alias)}), 'null')"
    if f.data_type == "checkbox":
        return f"CASE WHEN {col} IS NULL THEN 'null' WHEN {col} THEN 'true' ELSE 'false' END"
    if f.data_type == "image":
        return _image_json(col)
    if f.data_type == "url":
        # an upload's url is kept relative: it starts with wherever the site is reached now
        return (
            f"CASE WHEN json_extract({col}, '$.link_type') = 'upload' THEN json_set({col},"
            f" '$.url', sg_site_url() || json_extract({col}, '$.url'))"
            f" ELSE COALESCE({col}, 'null') END"
        )
    if stored_as_json(f.data_type):
        return f"COALESCE({col}, 'null')"
    if f.data_type == "password":
        return "'null'"  # write-only, as on a real site
    return f"json_quote({col})"


def _image_json(col: str) -> str:
    """A thumbnail's URL: the transient placeholder while it is made, then its own."""
    return (
        "COALESCE((SELECT json_quote(sg_site_url() || CASE WHEN f.ready_at >"
        f" strftime('%Y-%m-%dT%H:%M:%fZ', 'now') THEN {lit(TRANSIENT_THUMBNAIL)}"
        f" ELSE {lit(THUMBNAIL_PREFIX)} || f.id || '/' || f.token END)"
        f" FROM files f WHERE f.id = {col}), 'null')"
    )


#: Fields computed at read time: the SQL of their value for the row ``alias``.
VIRTUAL: dict[str, Callable[[str], str]] = {
    # the time the calling user (sg_caller(), see api.py) last opened the project
    "project_last_accessed": lambda alias: (
        "(SELECT a.at FROM project_access a"
        f" WHERE a.project_id = {alias}.id AND a.user_key = sg_caller())"
    ),
}


def row_json(schema: Schema, type_name: str, fields: list[str], alias: str = "a0") -> str:
    """SQL producing one entity as JSON text: ``type``, ``id`` and the requested fields."""
    aliases = Aliases()
    head = json.dumps({"type": type_name})[:-1] + ', "id": '
    parts = [lit(head), f"{alias}.id"]
    for name in fields:
        if name in ("type", "id"):
            continue
        parts.append(lit(", " + json.dumps(name) + ": "))
        parts.append(field_json(schema, type_name, name, alias, aliases))
    parts.append("'}'")
    return " || ".join(parts)


def sort_value(
    schema: Schema, type_name: str, path: str, alias: str, aliases: Aliases
) -> str | None:
    """An SQL sort key for a field path, or None (unknown or multi-entity: ignored)."""
    deep = split_deep(path)
    if deep is not None:
        link_name, linked_type, rest = deep
        f = schema.field(type_name, link_name)
        if f is None or not f.is_entity or schema.entity(linked_type) is None:
            return None
        inner = aliases.next()
        value = sort_value(schema, linked_type, rest, inner, aliases)
        if value is None:
            return None
        return (
            f"(SELECT {value} FROM {q(linked_type)} {inner}"
            f" WHERE {alias}.{q(link_name + '__type')} = {lit(linked_type)}"
            f" AND {inner}.id = {alias}.{q(link_name + '__id')})"
        )
    f = schema.field(type_name, path)
    if (
        f is None
        or f.is_multi
        or f.data_type in ("password", "image")
        or stored_as_json(f.data_type)
    ):
        return None
    if f.name == "id":
        return f"{alias}.id"
    if f.virtual:
        return VIRTUAL[f.virtual](alias)
    if f.is_entity:
        return (
            f"(SELECT n.name FROM names n WHERE n.type = {alias}.{q(f.name + '__type')}"
            f" AND n.id = {alias}.{q(f.name + '__id')})"
        )
    return f"{alias}.{q(f.name)}"
