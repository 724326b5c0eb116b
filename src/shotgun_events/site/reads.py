"""read (find / find_one), single-entity fetches for writes, and summarize."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .errors import ApiError
from .filters import FilterCompiler
from .presets import preset_clause
from .query import Aliases, row_json, sort_value
from .schema import EntitySpec, Schema
from .store import Store, q

MAX_PAGE = 500


class RawJSON(str):
    """A result already serialized as JSON text; the envelope embeds it as is."""

    __slots__ = ()


class Reader:
    """Runs reads against the store; callers hold ``store.lock``."""

    def __init__(self, store: Store, schema: Schema) -> None:
        """Read from ``store`` using ``schema``."""
        self.store = store
        self.schema = schema
        self._projections: dict[tuple[str, tuple[str, ...]], str] = {}

    def entity_spec(self, type_name: Any, method: str) -> EntitySpec:
        """The type, or the fault a real site gives for an unknown entity type."""
        spec = self.schema.entity(type_name) if isinstance(type_name, str) else None
        if spec is None:
            raise ApiError(f"API {method}() entity type '{type_name}' does not exist")
        return spec

    def projection(self, type_name: str, fields: list[str]) -> str:
        """The cached SELECT expression rendering a row as JSON with these fields."""
        key = (type_name, tuple(fields))
        sql = self._projections.get(key)
        if sql is None:
            if len(self._projections) > 512:
                self._projections.clear()
            sql = row_json(self.schema, type_name, fields)
            self._projections[key] = sql
        return sql

    def read(self, params: dict[str, Any]) -> RawJSON:
        """One page of a find, serialized by SQLite."""
        spec = self.entity_spec(params.get("type"), "read")
        fields = params.get("return_fields") or ["id"]
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ApiError("API read() return_fields must be a list of field names")
        return_only = params.get("return_only", "active")
        if return_only not in ("active", "retired"):
            raise ApiError(f"API read() return_only must be active or retired: {return_only!r}")
        paging = params.get("paging") or {}
        per_page = paging.get("entities_per_page", MAX_PAGE)
        page = paging.get("current_page", 1)
        if not (isinstance(per_page, int) and isinstance(page, int) and per_page > 0 and page > 0):
            raise ApiError(f"API read() invalid paging {paging!r}")
        per_page = min(per_page, MAX_PAGE)
        archived = _archived(params, "read")
        retired = return_only == "retired"

        def matching(alias: str) -> tuple[str, list[Any]]:
            return self._where(spec.name, params.get("filters"), retired, alias, archived)

        where, args = matching("a0")
        more_sql, more_args = preset_clause(
            spec.name, params.get("additional_filter_presets"), matching
        )
        where += " AND " + more_sql
        args += more_args
        order = self._order(spec.name, params.get("sorts"))
        sql = (
            f"SELECT {self.projection(spec.name, fields)} FROM {q(spec.name)} a0"
            f" WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?"
        )
        rows = self.store.conn.execute(sql, (*args, per_page + 1, (page - 1) * per_page))
        items = [r[0] for r in rows]
        more = len(items) > per_page
        paging_info = '"has_next_page": ' + ("true" if more else "false")
        if params.get("return_paging_info"):
            total = self.store.conn.execute(
                f"SELECT COUNT(*) FROM {q(spec.name)} a0 WHERE {where}", args
            ).fetchone()[0]
            paging_info += f', "entity_count": {total}, "current_page": {page}'
        body = ",".join(items[:per_page])
        return RawJSON('{"entities": [' + body + '], "paging_info": {' + paging_info + "}}")

    def _where(
        self,
        type_name: str,
        filters: Any,
        retired: bool,
        alias: str = "a0",
        archived: bool = True,
    ) -> tuple[str, list[Any]]:
        """The WHERE of a read of ``type_name`` rows named ``alias``, and its bound values.

        ``archived`` False leaves out archived projects and everything in them.
        """
        compiler = FilterCompiler(self.schema, Aliases())
        clause = "1" if filters in (None, [], {}) else compiler.group(type_name, filters, alias)
        where = f"{alias}.retired = {1 if retired else 0} AND {clause}"
        if not archived and self.schema.field("Project", "archived") is not None:
            if type_name == "Project":
                where += f" AND COALESCE({alias}.archived, 0) = 0"
            elif self.schema.field(type_name, "project") is not None:
                where += (
                    ' AND NOT EXISTS (SELECT 1 FROM "Project" p WHERE p.archived = 1'
                    f' AND p.id = {alias}."project__id")'
                )
        return where, compiler.params

    def _order(self, type_name: str, sorts: Any) -> str:
        keys = []
        aliases = Aliases()
        for s in sorts or []:
            if not isinstance(s, dict):
                raise ApiError(f"API read() invalid sort {s!r}")
            expr = sort_value(self.schema, type_name, str(s.get("field_name")), "a0", aliases)
            if expr is None:
                continue  # a real site silently ignores sorts on unknown fields
            direction = "DESC" if str(s.get("direction", "asc")).lower() == "desc" else "ASC"
            keys.append(f"{expr} {direction}")
        keys.append("a0.id ASC")
        return ", ".join(keys)

    def fetch(self, type_name: str, entity_id: int, fields: list[str]) -> dict[str, Any] | None:
        """One entity (retired or not) as a Python dict, or None."""
        sql = f"SELECT {self.projection(type_name, fields)} FROM {q(type_name)} a0 WHERE id = ?"
        row = self.store.conn.execute(sql, (entity_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def rows(
        self, type_name: str, filters: Any, fields: list[str], archived: bool = True
    ) -> list[dict[str, Any]]:
        """All active matching entities as Python dicts (for summarize and search)."""
        where, args = self._where(type_name, filters, False, archived=archived)
        sql = (
            f"SELECT {self.projection(type_name, fields)} FROM {q(type_name)} a0"
            f" WHERE {where} ORDER BY a0.id"
        )
        return [json.loads(r[0]) for r in self.store.conn.execute(sql, args)]

    def summarize(self, params: dict[str, Any]) -> dict[str, Any]:
        """Totals (count, sum, maximum, ...) over matching entities, optionally grouped."""
        spec = self.entity_spec(params.get("type"), "summarize")
        summaries = params.get("summaries") or []
        grouping = params.get("grouping") or []
        if not isinstance(summaries, list) or not isinstance(grouping, list):
            raise ApiError("API summarize() summaries and grouping must be lists")
        for item in [*summaries, *grouping]:
            if not isinstance(item, dict) or spec.fields.get(item.get("field", "")) is None:
                raise ApiError(f"API summarize() unknown field in {item!r}")
        names = [s["field"] for s in summaries] + [g["field"] for g in grouping]
        rows = self.rows(spec.name, params.get("filters"), names, _archived(params, "summarize"))
        return {
            "summaries": _summaries(rows, summaries),
            "groups": _groups(rows, summaries, grouping),
        }


def _archived(params: dict[str, Any], method: str) -> bool:
    """include_archived_projects (true unless the caller says false)."""
    value = params.get("include_archived_projects", True)
    if not isinstance(value, bool):
        raise ApiError(f"API {method}() include_archived_projects must be true or false")
    return value


def _summaries(rows: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in summaries:
        values = [r.get(s["field"]) for r in rows]
        present = [v for v in values if v not in (None, [], "")]
        fn = _SUMMARY.get(s.get("type", ""))
        if fn is None:
            raise ApiError(f"API summarize() unsupported summary type {s.get('type')!r}")
        out[s["field"]] = fn(values, present)
    return out


def _num(present: list[Any]) -> list[float]:
    return [v for v in present if isinstance(v, int | float) and not isinstance(v, bool)]


_SUMMARY: dict[str, Callable[[list[Any], list[Any]], Any]] = {
    "record_count": lambda values, present: len(values),
    "count": lambda values, present: len(present),
    "sum": lambda values, present: sum(_num(present)),
    "maximum": lambda values, present: max(_num(present), default=None),
    "minimum": lambda values, present: min(_num(present), default=None),
    "average": lambda v, p: (sum(_num(p)) / len(_num(p))) if _num(p) else None,
    "earliest": lambda values, present: min(present, default=None),
    "latest": lambda values, present: max(present, default=None),
    "checked": lambda values, present: sum(1 for v in values if v is True),
    "unchecked": lambda values, present: sum(1 for v in values if v is not True),
}


def _groups(
    rows: list[dict[str, Any]], summaries: list[dict[str, Any]], grouping: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if not grouping:
        return []
    head, rest = grouping[0], grouping[1:]
    buckets: dict[str, tuple[Any, list[dict[str, Any]]]] = {}
    for r in rows:
        value = r.get(head["field"])
        name = value.get("name") if isinstance(value, dict) else value
        key = json.dumps(value, sort_keys=True)
        buckets.setdefault(key, (value, []))[1].append(r)
    out = []
    for value, members in buckets.values():
        name = value.get("name") if isinstance(value, dict) else value
        group: dict[str, Any] = {
            "group_name": "" if name is None else str(name),
            "group_value": value,
            "summaries": _summaries(members, summaries),
        }
        if rest:
            group["groups"] = _groups(members, summaries, rest)
        out.append(group)
    out.sort(key=lambda g: g["group_name"], reverse=head.get("direction") == "desc")
    return out
