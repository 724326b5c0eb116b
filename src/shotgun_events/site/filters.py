"""Translate api3 filter groups into an SQL WHERE clause with bound parameters."""

from __future__ import annotations

from typing import Any

from .errors import ApiError, utc_shift
from .eventlog import dumps
from .query import VIRTUAL, Aliases, lit, pairs_sql, split_deep
from .rules import check_value, stored_as_json
from .schema import FieldSpec, Schema
from .store import q

_UNITS = {"HOUR": 3600, "DAY": 86400, "WEEK": 7 * 86400, "MONTH": 30 * 86400, "YEAR": 365 * 86400}
_UNFILTERABLE = frozenset({"serializable", "password", "url"})
_TEXT_TYPES = frozenset({"text", "status_list", "list", "uuid", "entity_type", "color"})
_ORDERED_TYPES = frozenset(
    {
        "number",
        "float",
        "date",
        "date_time",
        "text",
        "uuid",
        "duration",
        "percent",
        "timecode",
        "currency",
    }
)
_SCALAR_RELATIONS = frozenset(
    {
        "is",
        "is_not",
        "less_than",
        "greater_than",
        "in",
        "not_in",
        "between",
        "not_between",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "in_last",
        "in_next",
        "not_in_last",
        "not_in_next",
    }
)
_LINK_RELATIONS = frozenset(
    {
        "is",
        "is_not",
        "in",
        "not_in",
        "type_is",
        "type_is_not",
        "name_contains",
        "name_not_contains",
        "name_is",
        "name_starts_with",
        "name_ends_with",
    }
)


def _like(text: str, where: str) -> str:
    esc = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {"contains": f"%{esc}%", "starts_with": f"{esc}%", "ends_with": f"%{esc}"}[where]


class FilterCompiler:
    """Compiles one filter tree against one entity type; collects the bound parameters."""

    def __init__(self, schema: Schema, aliases: Aliases) -> None:
        """Use ``aliases`` for every subquery so they never collide with the outer query."""
        self.schema = schema
        self.aliases = aliases
        self.params: list[Any] = []

    def group(self, type_name: str, group: Any, alias: str) -> str:
        """SQL for a ``{logical_operator, conditions}`` group (or a legacy filter dict)."""
        if not isinstance(group, dict):
            raise ApiError(f"filters must be an object, got {group!r}")
        if "filter_operator" in group:  # a dict passed straight through find()
            op = {"all": "and", "any": "or"}.get(group["filter_operator"], group["filter_operator"])
            conditions: Any = [
                c
                if isinstance(c, dict)
                else {
                    "path": c[0],
                    "relation": c[1],
                    "values": c[2] if len(c) == 3 and isinstance(c[2], list) else c[2:],
                }
                for c in group.get("filters", [])
            ]
        else:
            op = group.get("logical_operator", "and")
            conditions = group.get("conditions", [])
        if op not in ("and", "or") or not isinstance(conditions, list):
            raise ApiError(f"invalid filter group {group!r}")
        parts = []
        for cond in conditions:
            if isinstance(cond, dict) and ("conditions" in cond or "filters" in cond):
                parts.append(self.group(type_name, cond, alias))
            else:
                parts.append(self.condition(type_name, cond, alias))
        if not parts:
            return "1"
        return "(" + f" {op.upper()} ".join(parts) + ")"

    def condition(self, type_name: str, cond: Any, alias: str) -> str:
        """SQL for one ``{path, relation, values}`` condition, following deep paths."""
        if not isinstance(cond, dict) or not isinstance(cond.get("path"), str):
            raise ApiError(f"invalid filter condition {cond!r}")
        path, relation = cond["path"], cond.get("relation")
        values = cond.get("values", [])
        if not isinstance(values, list):
            values = [values]
        deep = split_deep(path)
        if deep is not None:
            return self._deep(type_name, deep, {**cond, "values": values}, alias)
        f = self.schema.field(type_name, path)
        if f is None:
            raise ApiError(f"{type_name} has no field '{path}' to filter on")
        if f.data_type in _UNFILTERABLE:
            raise ApiError(f"{type_name}.{path} is a {f.data_type} field and cannot be filtered")
        if f.data_type == "tag_list":
            return self._tags(type_name, f, relation, values, alias)
        if f.is_entity:
            return self._entity(type_name, f, relation, values, alias)
        if f.is_multi:
            return self._multi(type_name, f, relation, values, alias)
        col = f"{alias}.id" if f.name == "id" else f"{alias}.{q(f.name)}"
        if f.virtual:
            col = VIRTUAL[f.virtual](alias)
        if f.data_type == "image" or stored_as_json(f.data_type):
            return self._present_or_equal(type_name, f, col, relation, values)
        if f.data_type == "text":
            col += " COLLATE NOCASE"  # a real site compares text without regard to case
        return self._scalar(type_name, f, col, relation, values)

    def _present_or_equal(
        self, type_name: str, f: FieldSpec, col: str, relation: Any, values: list[Any]
    ) -> str:
        """Thumbnails: has one or not (is / is_not None); JSON-kept values: equal or in."""
        if f.data_type == "image":
            if relation not in ("is", "is_not") or values != [None]:
                raise ApiError(
                    f"{type_name}.{f.name} is an image field: only 'is' / 'is_not' None filter it"
                )
            return f"{col} {'IS' if relation == 'is' else 'IS NOT'} NULL"
        if relation not in ("is", "is_not", "in", "not_in"):
            raise ApiError(f"relation '{relation}' is not valid for {type_name}.{f.name}")
        if relation in ("is", "is_not") and len(values) != 1:
            raise ApiError(f"'{relation}' takes one value, got {values!r}")
        texts = [dumps(check_value(type_name, f, v)) for v in values if v is not None]
        parts = [f"{col} IN ({self._bind(*texts)})"] if texts else []
        if len(texts) < len(values):
            parts.append(f"{col} IS NULL")
        test = "(" + " OR ".join(parts) + ")" if parts else "0"
        return test if relation in ("is", "in") else f"NOT COALESCE({test}, 0)"

    def _deep(
        self, type_name: str, deep: tuple[str, str, str], cond: dict[str, Any], alias: str
    ) -> str:
        link_name, linked_type, rest = deep
        f = self.schema.field(type_name, link_name)
        if f is None or not (f.is_entity or f.is_multi):
            raise ApiError(f"{type_name}.{link_name} is not a link field; cannot follow it")
        if self.schema.entity(linked_type) is None or linked_type not in f.valid_types:
            raise ApiError(f"{type_name}.{link_name} cannot link to '{linked_type}'")
        inner = self.aliases.next()
        sub = self.condition(linked_type, {**cond, "path": rest}, inner)
        ids = f"SELECT {inner}.id FROM {q(linked_type)} {inner} WHERE {inner}.retired = 0 AND {sub}"
        if f.is_entity:
            return (
                f"({alias}.{q(link_name + '__type')} = {lit(linked_type)}"
                f" AND {alias}.{q(link_name + '__id')} IN ({ids}))"
            )
        return (
            f"EXISTS (SELECT 1 FROM ({pairs_sql(type_name, f, alias)}) p"
            f" WHERE p.lt = {lit(linked_type)} AND p.li IN ({ids}))"
        )

    def _tags(
        self, type_name: str, f: FieldSpec, relation: Any, values: list[Any], alias: str
    ) -> str:
        """``is`` / ``is_not`` / ``in`` / ``not_in`` a tag: the list holds (one of) the tags."""
        if relation not in ("is", "is_not", "in", "not_in") or not all(
            isinstance(v, str) for v in values
        ):
            raise ApiError(f"relation '{relation}' is not valid for {type_name}.{f.name}")
        if not values:
            return "0" if relation in ("is", "in") else "1"
        test = (
            f"EXISTS (SELECT 1 FROM json_each(COALESCE({alias}.{q(f.name)}, '[]')) t"
            f" WHERE t.value IN ({self._bind(*values)}))"
        )
        return test if relation in ("is", "in") else f"NOT {test}"

    def _bind(self, *values: Any) -> str:
        self.params.extend(values)
        return ", ".join("?" for _ in values)

    def _scalar(
        self, type_name: str, f: FieldSpec, col: str, relation: Any, values: list[Any]
    ) -> str:
        if relation not in _SCALAR_RELATIONS:
            raise ApiError(f"relation '{relation}' is not valid for {type_name}.{f.name}")
        if relation in ("in_last", "in_next", "not_in_last", "not_in_next"):
            return self._relative(type_name, f, col, relation, values)
        if relation in ("in", "not_in"):
            vals = [check_value(type_name, f, v) for v in values]
            present = [v for v in vals if v is not None]
            parts = [f"{col} IN ({self._bind(*present)})"] if present else []
            if len(present) < len(vals):
                parts.append(f"{col} IS NULL")
            test = "(" + " OR ".join(parts) + ")" if parts else "0"
            return test if relation == "in" else f"NOT COALESCE({test}, 0)"
        if relation in ("between", "not_between"):
            if len(values) != 2:
                raise ApiError(f"'{relation}' needs two values, got {values!r}")
            lo, hi = (check_value(type_name, f, v) for v in values)
            test = f"{col} BETWEEN {self._bind(lo)} AND {self._bind(hi)}"
            return test if relation == "between" else f"NOT COALESCE({test}, 0)"
        if len(values) != 1:
            raise ApiError(f"'{relation}' takes one value, got {values!r}")
        value = check_value(type_name, f, values[0])
        if relation == "is":
            return f"{col} IS {self._bind(value)}"
        if relation == "is_not":
            return f"{col} IS NOT {self._bind(value)}"
        if relation in ("less_than", "greater_than"):
            if f.data_type not in _ORDERED_TYPES or value is None:
                raise ApiError(f"'{relation}' is not valid for {type_name}.{f.name}")
            return f"{col} {'<' if relation == 'less_than' else '>'} {self._bind(value)}"
        if f.data_type not in _TEXT_TYPES or not isinstance(value, str):
            raise ApiError(f"'{relation}' is not valid for {type_name}.{f.name}")
        if relation == "not_contains":
            return (
                f"({col} IS NULL OR {col} NOT LIKE {self._bind(_like(value, 'contains'))}"
                " ESCAPE '\\')"
            )
        return f"{col} LIKE {self._bind(_like(value, relation))} ESCAPE '\\'"

    def _relative(
        self, type_name: str, f: FieldSpec, col: str, relation: str, values: list[Any]
    ) -> str:
        if f.data_type not in ("date", "date_time"):
            raise ApiError(f"'{relation}' is not valid for {type_name}.{f.name}")
        ok = len(values) == 2 and isinstance(values[0], int) and values[1] in _UNITS
        if not ok:
            raise ApiError(f"'{relation}' needs [count, unit], got {values!r}")
        span = values[0] * _UNITS[values[1]]
        lo, hi = (
            (utc_shift(-span), utc_shift(0))
            if "last" in relation
            else (utc_shift(0), utc_shift(span))
        )
        if f.data_type == "date":
            lo, hi = lo[:10], hi[:10]
        test = f"{col} BETWEEN {self._bind(lo)} AND {self._bind(hi)}"
        return test if not relation.startswith("not_") else f"NOT COALESCE({test}, 0)"

    def _entity_value(self, type_name: str, f: FieldSpec, value: Any) -> tuple[str, int] | None:
        if value is None:
            return None
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("type"), str)
            or not isinstance(value.get("id"), int)
        ):
            raise ApiError(
                f"{type_name}.{f.name} is a {f.data_type} field; {value!r} is"
                " not an entity ({'type': ..., 'id': ...})"
            )
        return value["type"], value["id"]

    def _entity(
        self, type_name: str, f: FieldSpec, relation: Any, values: list[Any], alias: str
    ) -> str:
        t, i = f"{alias}.{q(f.name + '__type')}", f"{alias}.{q(f.name + '__id')}"
        return self._link_test(type_name, f, relation, values, t, i, exists=None)

    def _multi(
        self, type_name: str, f: FieldSpec, relation: Any, values: list[Any], alias: str
    ) -> str:
        return self._link_test(
            type_name, f, relation, values, "p.lt", "p.li", exists=pairs_sql(type_name, f, alias)
        )

    def _link_test(
        self,
        type_name: str,
        f: FieldSpec,
        relation: Any,
        values: list[Any],
        t: str,
        i: str,
        exists: str | None,
    ) -> str:
        """Entity tests on (t, i); for multi-entity fields, wrapped in EXISTS over the pairs."""
        if relation not in _LINK_RELATIONS:
            raise ApiError(f"relation '{relation}' is not valid for {type_name}.{f.name}")
        negate = relation in ("is_not", "not_in", "type_is_not", "name_not_contains")
        if relation in ("is", "is_not", "in", "not_in"):
            if relation in ("is", "is_not") and len(values) != 1:
                raise ApiError(f"'{relation}' takes one value, got {values!r}")
            ents = [self._entity_value(type_name, f, v) for v in values]
            parts = []
            for ent in ents:
                if ent is None:
                    parts.append("0" if exists else f"{i} IS NULL")
                else:
                    parts.append(f"({t} = {self._bind(ent[0])} AND {i} = {self._bind(ent[1])})")
            test = "(" + " OR ".join(parts) + ")" if parts else "0"
            if exists is not None and None in ents and len(ents) == 1:
                # "is None" on a multi-entity field means "holds nothing"
                return f"{'' if negate else 'NOT '}EXISTS ({exists})"
        elif relation in ("type_is", "type_is_not"):
            if len(values) != 1 or not isinstance(values[0], str | None):
                raise ApiError(f"'{relation}' takes one entity type name, got {values!r}")
            test = f"{t} IS {self._bind(values[0])}"
        else:
            if len(values) != 1 or not isinstance(values[0], str):
                raise ApiError(f"'{relation}' takes one string, got {values!r}")
            kind = {
                "name_is": "",
                "name_contains": "contains",
                "name_not_contains": "contains",
                "name_starts_with": "starts_with",
                "name_ends_with": "ends_with",
            }[relation]
            pattern = values[0] if not kind else _like(values[0], kind)
            op = "=" if not kind else "LIKE"
            esc = "" if not kind else " ESCAPE '\\'"
            test = (
                f"EXISTS (SELECT 1 FROM names n WHERE n.type = {t} AND n.id = {i}"
                f" AND n.name {op} {self._bind(pattern)}{esc})"
            )
        if exists is not None:
            test = f"EXISTS (SELECT 1 FROM ({exists}) p WHERE {test})"
        return f"NOT COALESCE({test}, 0)" if negate else test
