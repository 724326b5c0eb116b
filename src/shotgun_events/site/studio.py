"""A studio's own schema, served by the local site.

The studio's ``schema_read()`` (and ``schema_entity_read()``) results become the
site's types and fields, every field of every type as the studio has it, its
schema_* replies served as they were given. The rules that fill the gaps:

- a field the site's own schema also has, with the same data type, keeps the site's
  storage (reverse and derived link fields, computed fields); any other multi-entity
  field keeps its own list of links;
- a type's name field (what its links are named by) is the site's for a type it
  knows, else the first of code, name, title, subject, content that it has;
- every type has id, created_at, updated_at, created_by and updated_by; the types the
  site itself works with (standard.SITE_TYPES: people, scripts, projects, files, pages,
  work days, the event log) are added when the studio's schema lacks them, and keep the
  fields of the site's own schema the studio's lacks;
- EventLogEntry's fields keep the site's own storage (the daemon's reads depend on it),
  with the studio's replies served for them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .core import common_fields
from .schema import Schema
from .schemafile import SchemaFileError, read_schema_files
from .specs import AUTO_FIELDS, EntitySpec, FieldSpec
from .standard import SITE_TYPES, link_anything, standard_entities

NAME_FIELDS = ("code", "name", "title", "subject", "content")


def load_studio_schema(schema_path: Path, entity_path: Path | None = None) -> Schema:
    """The Schema of a studio's files (see schemafile.py), or SchemaFileError."""
    fields, entities = read_schema_files(schema_path, entity_path)
    try:
        return Schema(studio_entities(fields, entities or {}))
    except (TypeError, ValueError, AttributeError) as e:
        raise SchemaFileError(f"{schema_path}: not a schema_read() result ({e})") from e


def _value(reply: Any, key: str, default: Any = None) -> Any:
    item = reply.get(key) if isinstance(reply, dict) else None
    return item.get("value", default) if isinstance(item, dict) else default


def field_from_reply(name: str, reply: dict[str, Any], known: FieldSpec | None) -> FieldSpec:
    """One studio field as the site stores it (see the module docstring)."""
    data_type = _value(reply, "data_type")
    props = reply.get("properties") or {}
    link_kind, source, virtual = ("links" if data_type == "multi_entity" else ""), ("", ""), ""
    if known is not None and known.data_type == data_type:
        link_kind, source, virtual = known.link_kind, known.source, known.virtual
    default = _value(props, "default_value")
    if data_type in ("entity", "multi_entity") or isinstance(default, dict | list):
        default = None  # no link (or list) is set by default
    return FieldSpec(
        name=name,
        data_type=data_type,
        display=str(_value(reply, "name", name)),
        editable=bool(_value(reply, "editable", True)),
        valid_values=tuple(str(v) for v in _value(props, "valid_values") or ()),
        valid_types=tuple(str(t) for t in _value(props, "valid_types") or ()),
        default=default,
        link_kind=link_kind,
        source=source,
        virtual=virtual,
        reply=reply,
    )


def studio_entities(
    fields: dict[str, dict[str, Any]], entity_replies: dict[str, Any]
) -> dict[str, EntitySpec]:
    """The site's types for a studio's schema (the rules are in the module docstring)."""
    standard = standard_entities()
    entities: dict[str, EntitySpec] = {}
    for type_name, replies in fields.items():
        base = standard.get(type_name)
        reply = entity_replies.get(type_name)
        display = _value(reply, "name") or (base.display if base else type_name)
        name_field = (
            base.name_field if base else next((n for n in NAME_FIELDS if n in replies), "code")
        )
        spec = EntitySpec(type_name, str(display), name_field, reply=reply)
        for name, field_reply in replies.items():
            known = base.fields.get(name) if base else None
            spec.fields[name] = field_from_reply(name, field_reply, known)
        needed = {f.name: f for f in common_fields(project=False) if f.name in AUTO_FIELDS}
        needed["id"] = common_fields(project=False)[0]
        if type_name == "EventLogEntry":
            needed = {}  # its fields are the site's own (below)
        if base is not None and type_name in SITE_TYPES:
            needed.update(base.fields)
        for name, f in needed.items():
            spec.fields.setdefault(name, f)
        entities[type_name] = spec
    for type_name in SITE_TYPES:
        entities.setdefault(type_name, standard[type_name])
    log = entities.pop("EventLogEntry")  # last, like a real site lists it
    for name, f in standard["EventLogEntry"].fields.items():
        log.fields[name] = replace(f, reply=log.fields[name].reply)
    entities["EventLogEntry"] = log
    _unlink_missing_sources(entities)
    link_anything(entities)
    return entities


def _unlink_missing_sources(entities: dict[str, EntitySpec]) -> None:
    """A reverse or derived field whose source is not in this schema keeps its own links."""
    for spec in entities.values():
        for name, f in list(spec.fields.items()):
            if f.link_kind in ("reverse", "derived"):
                src_type, src_field = f.source
                src = entities.get(src_type)
                if src is None or src_field not in src.fields:
                    spec.fields[name] = replace(f, link_kind="links", source=("", ""))
