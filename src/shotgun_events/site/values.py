"""Values of writes: checked against their field, and the SQL columns they are stored in."""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .eventlog import Link, dumps
from .rules import check_value, stored_as_json
from .specs import FieldSpec
from .store import Store
from .urlfields import url_value


def _key(link: Link | None) -> tuple[str, int] | None:
    return None if link is None else (link["type"], link["id"])


def target(store: Store, method: str, type_name: str, f: FieldSpec, value: Any) -> Link:
    """The existing entity a link value names, or a fault naming the field."""
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("id"), int)
        or value.get("type") not in f.valid_types
    ):
        raise ApiError(
            f"API {method}() {type_name}.{f.name} takes entities of type"
            f" {list(f.valid_types)}; got {value!r}"
        )
    if store.state_of(value["type"], value["id"]) != 0:
        raise ApiError(
            f"API {method}() {value['type']} with id {value['id']} does not"
            f" exist (linked from {type_name}.{f.name})"
        )
    link = store.link_of(value["type"], value["id"])
    assert link is not None
    return link


def coerce(store: Store, method: str, type_name: str, f: FieldSpec, value: Any) -> Any:
    """The caller's value checked and normalized, or a fault naming the field."""
    if f.is_multi:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ApiError(f"API {method}() {type_name}.{f.name} takes a list of entities")
        out: list[Link] = []
        for v in value:
            link = target(store, method, type_name, f, v)
            if _key(link) not in {_key(o) for o in out}:
                out.append(link)
        return out
    if f.is_entity:
        return None if value is None else target(store, method, type_name, f, value)
    if f.data_type == "url" and value is not None:
        return url_value(store, method, type_name, f, value)
    checked = check_value(type_name, f, value)
    if (
        f.data_type == "entity_type"
        and checked is not None
        and store.schema.entity(checked) is None
    ):
        raise ApiError(f"API {method}() {type_name}.{f.name}: '{checked}' is not an entity type")
    in_list = f.data_type in ("list", "status_list") and f.valid_values
    if in_list and checked is not None and checked not in f.valid_values:
        raise ApiError(
            f"API {method}() {type_name}.{f.name}: '{checked}' is not one of"
            f" the valid values {list(f.valid_values)}"
        )
    return bool(checked) if f.data_type == "checkbox" and checked is not None else checked


def columns(f: FieldSpec, value: Any) -> dict[str, Any]:
    """The SQL columns (name -> value) a checked value of ``f`` is written to."""
    if f.is_entity:
        cols = {
            f"{f.name}__type": value["type"] if value else None,
            f"{f.name}__id": value["id"] if value else None,
        }
        if f.prebuilt:
            cols[f"{f.name}__json"] = dumps(value) if value else None
        return cols
    if f.data_type == "checkbox":
        return {f.name: None if value is None else int(value)}
    if stored_as_json(f.data_type):
        return {f.name: None if value is None else dumps(value)}
    return {f.name: value}
