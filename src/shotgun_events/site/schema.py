"""The entity types and fields the local site serves, and their schema_* reply shapes."""

from __future__ import annotations

import copy
from typing import Any

from .core import PRODUCTION_STATUSES, USER_TYPES
from .specs import AUTO_FIELDS, EntitySpec, FieldSpec
from .standard import link_anything, standard_entities

__all__ = [
    "AUTO_FIELDS",
    "PRODUCTION_STATUSES",
    "USER_TYPES",
    "EntitySpec",
    "FieldSpec",
    "Schema",
    "field_reply",
]


class Schema:
    """All entity types with cached lookups and prebuilt schema_* replies."""

    def __init__(self, entities: dict[str, EntitySpec] | None = None) -> None:
        """Serve ``entities`` (default: the site's own standard schema, standard.py)."""
        self.entities: dict[str, EntitySpec] = standard_entities() if entities is None else entities
        self._field_replies: dict[str, dict[str, Any]] = {
            t: {n: field_reply(t, f) for n, f in spec.fields.items()}
            for t, spec in self.entities.items()
        }

    def add_field(self, type_name: str, f: FieldSpec) -> None:
        """Add a field (schema_field_create) and its schema_field_read reply."""
        self.entities[type_name].fields[f.name] = f
        self._field_replies[type_name][f.name] = field_reply(type_name, f)

    def add_entity(self, spec: EntitySpec) -> None:
        """Add a type (a custom entity switched on) and its fields' replies."""
        log = self.entities.pop("EventLogEntry", None)
        self.entities[spec.name] = spec
        if log is not None:
            self.entities["EventLogEntry"] = log
        link_anything(self.entities)
        self._field_replies = {
            t: {n: field_reply(t, f) for n, f in s.fields.items()} for t, s in self.entities.items()
        }

    def entity(self, type_name: str) -> EntitySpec | None:
        """The type, or None when the site has no such type."""
        return self.entities.get(type_name)

    def field(self, type_name: str, field_name: str) -> FieldSpec | None:
        """The field, or None when the type or field does not exist."""
        spec = self.entities.get(type_name)
        return spec.fields.get(field_name) if spec else None

    def schema_read(self) -> dict[str, dict[str, Any]]:
        """The schema_read reply: every field of every type."""
        return self._field_replies

    def schema_field_read(self, type_name: str) -> dict[str, Any]:
        """The schema_field_read reply for all fields of one (existing) type."""
        return self._field_replies[type_name]

    def schema_entity_read(self) -> dict[str, Any]:
        """The schema_entity_read reply: display names and visibility."""
        return {t: entity_reply(s) for t, s in self.entities.items()}


def entity_reply(spec: EntitySpec) -> dict[str, Any]:
    """The schema_entity_read shape of one type (a studio's own reply when it gave one)."""
    if spec.reply is not None:
        return copy.deepcopy(spec.reply)
    return {
        "name": {"value": spec.display, "editable": False},
        "visible": {"value": True, "editable": False},
    }


def field_reply(type_name: str, f: FieldSpec) -> dict[str, Any]:
    """The schema_field_read shape of one field, as a real site returns it."""
    if f.reply is not None:
        return copy.deepcopy(f.reply)
    properties: dict[str, Any] = {
        "default_value": {"value": f.default, "editable": False},
        "summary_default": {"value": "none", "editable": True},
    }
    if f.valid_values:
        properties["valid_values"] = {"value": list(f.valid_values), "editable": True}
        properties["display_values"] = {"value": {v: v for v in f.valid_values}, "editable": False}
    if f.valid_types:
        properties["valid_types"] = {"value": list(f.valid_types), "editable": True}
    return {
        "data_type": {"value": f.data_type, "editable": False},
        "editable": {"value": f.editable, "editable": False},
        "entity_type": {"value": type_name, "editable": False},
        "mandatory": {"value": False, "editable": False},
        "name": {"value": f.display, "editable": True},
        "description": {"value": "", "editable": True},
        "unique": {"value": False, "editable": False},
        "visible": {"value": True, "editable": False},
        "properties": properties,
    }
