"""Schema changes: schema_field_create, and custom entity types switched on.

A real site records a new field as a DisplayColumn entity, and the event log gets
a ``Shotgun_DisplayColumn_New`` row for it (meta ``new_entity``, entity type
``DisplayColumn``): that is the row written here, in the same transaction.
Custom entity types (CustomEntity01, CustomNonProjectEntity01, ...) are switched on by
a site admin, not through the API: ``LocalSite.enable_entity`` (``/_local/enable_entity``)
does it here. Both are kept in the database and come back when it is opened again.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .core import PRODUCTION_STATUSES, common_fields
from .errors import ApiError
from .eventlog import Actor, EventLog
from .schema import EntitySpec, FieldSpec, Schema
from .store import Store, columns_for, q

#: Data types a field can be created with here; a real site refuses unknown ones too.
CREATABLE = frozenset(
    {
        "text",
        "number",
        "float",
        "checkbox",
        "date",
        "date_time",
        "list",
        "entity",
        "multi_entity",
        "color",
        "duration",
        "tag_list",
        "percent",
        "currency",
        "timecode",
        "footage",
        "url",
        "status_list",
    }
)
#: Custom entity types a site admin can switch on (a real site has these many of each).
CUSTOM_TYPES = re.compile(
    r"^(CustomEntity(0[1-9]|[1-4]\d|50)|CustomNonProjectEntity(0[1-9]|[12]\d|30)"
    r"|CustomThreadedEntity(0[1-9]|1[0-5]))$"
)


class SchemaEditor:
    """Creates fields and reloads the created ones when the database is opened again."""

    def __init__(self, store: Store, schema: Schema, events: EventLog) -> None:
        """Load the fields created earlier into ``schema``."""
        self.store = store
        self.schema = schema
        self.events = events
        with store.lock:
            store.conn.execute(
                "CREATE TABLE IF NOT EXISTS custom_fields (id INTEGER PRIMARY KEY,"
                " type TEXT, spec TEXT)"
            )
            store.conn.execute(
                "CREATE TABLE IF NOT EXISTS custom_types (type TEXT PRIMARY KEY, display TEXT)"
            )
            for type_name, display in store.conn.execute(
                "SELECT type, display FROM custom_types ORDER BY rowid"
            ).fetchall():
                if type_name not in schema.entities:
                    self._add_type(type_name, display)
            for type_name, spec in store.conn.execute(
                "SELECT type, spec FROM custom_fields ORDER BY id"
            ).fetchall():
                if type_name in schema.entities:
                    self._install(type_name, _spec(json.loads(spec)))

    def _install(self, type_name: str, f: FieldSpec) -> None:
        existing = {r[1] for r in self.store.conn.execute(f"PRAGMA table_info({q(type_name)})")}
        for name, sql_type in columns_for(f):
            if name not in existing:
                self.store.conn.execute(
                    f"ALTER TABLE {q(type_name)} ADD COLUMN {q(name)} {sql_type}"
                )
        self.schema.add_field(type_name, f)

    def _add_type(self, type_name: str, display: str) -> None:
        spec = EntitySpec(type_name, display, "code")
        project = not type_name.startswith("CustomNonProject")
        for f in common_fields(project=project) + custom_entity_fields():
            spec.fields[f.name] = f
        self.schema.add_entity(spec)
        self.store.ensure_table(spec)

    def enable_entity(self, type_name: str, display: str) -> None:
        """Switch a custom entity type on, as a site admin does (kept in the database)."""
        if not CUSTOM_TYPES.match(type_name):
            raise ValueError(
                f"{type_name!r} is not a custom entity type (CustomEntity01-50,"
                " CustomNonProjectEntity01-30, CustomThreadedEntity01-15)"
            )
        if not display.strip():
            raise ValueError("a custom entity type needs a display name")
        if type_name in self.schema.entities:
            return
        with self.store.transaction() as conn:
            self._add_type(type_name, display.strip())
            conn.execute("INSERT INTO custom_types VALUES (?, ?)", (type_name, display.strip()))

    def create(self, actor: Actor, params: Any) -> str:
        """Add the field; returns its system name (``sg_`` + the display name)."""
        if not isinstance(params, dict):
            raise ApiError("API schema_field_create() expects type, data_type and properties")
        type_name = params.get("type")
        spec = self.schema.entity(type_name) if isinstance(type_name, str) else None
        if spec is None or type_name == "EventLogEntry":
            raise ApiError(f"API schema_field_create() entity type '{type_name}' does not exist")
        data_type = params.get("data_type")
        if data_type not in CREATABLE:
            raise ApiError(
                f"API schema_field_create() data_type {data_type!r} is not supported;"
                f" valid: {sorted(CREATABLE)}"
            )
        props = _properties(params.get("properties"))
        display = props.get("name")
        if not isinstance(display, str) or not display.strip():
            raise ApiError("API schema_field_create() needs a display name")
        base = "sg_" + (re.sub(r"[^a-z0-9]+", "_", display.lower()).strip("_") or "field")
        name, n = base, 0
        while name in spec.fields:
            n += 1
            name = f"{base}_{n}"
        valid_types = tuple(props.get("valid_types") or ())
        if data_type in ("entity", "multi_entity"):
            unknown = [t for t in valid_types if self.schema.entity(t) is None]
            if not valid_types or unknown:
                raise ApiError(
                    f"API schema_field_create() a {data_type} field needs valid_types of"
                    f" existing entity types, got {list(valid_types)!r}"
                )
        kw: dict[str, Any] = {
            "name": name,
            "data_type": data_type,
            "display": display.strip(),
            "valid_values": tuple(props.get("valid_values") or ()),
            "valid_types": valid_types,
            "default": props.get("default_value"),
            "link_kind": "links" if data_type == "multi_entity" else "",
        }
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO custom_fields (type, spec) VALUES (?, ?)",
                (spec.name, json.dumps(kw)),
            )
            column_id = 10_000 + int(cur.lastrowid or 0)
            self._install(spec.name, _spec(kw))
            if actor.log_events:
                self.events.record(
                    actor,
                    "Shotgun_DisplayColumn_New",
                    {"type": "new_entity", "entity_type": "DisplayColumn", "entity_id": column_id},
                    entity=None,
                    project=None,
                    description=f'{actor.who} created new field "{kw["display"]}" ({name})'
                    f" on {spec.name}",
                )
        return name


def _spec(kw: dict[str, Any]) -> FieldSpec:
    return FieldSpec(
        **{**kw, "valid_values": tuple(kw["valid_values"]), "valid_types": tuple(kw["valid_types"])}
    )


def _properties(items: Any) -> dict[str, Any]:
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("property_name"), str) for i in items
    ):
        raise ApiError("API schema_field_create() properties must be {property_name, value} items")
    return {i["property_name"]: i.get("value") for i in items}


def custom_entity_fields() -> list[FieldSpec]:
    """The fields a custom entity type starts with on a real site."""
    return [
        FieldSpec("code", "text", "Name"),
        FieldSpec(
            "sg_status_list",
            "status_list",
            "Status",
            valid_values=PRODUCTION_STATUSES,
            default="wtg",
        ),
        FieldSpec("tag_list", "tag_list", "Tags"),
    ]
