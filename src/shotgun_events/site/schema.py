"""The entity types and fields the local site serves, and their schema_* reply shapes."""

from __future__ import annotations

from typing import Any

from .specs import AUTO_FIELDS, SCALAR_TYPES, EntitySpec, FieldSpec
from .standard import extra_fields, extra_types

__all__ = ["AUTO_FIELDS", "SCALAR_TYPES", "EntitySpec", "FieldSpec", "Schema", "field_reply"]

#: Data types stored in one SQL column.
ENTITY_TYPES: tuple[str, ...] = (
    "Project",
    "HumanUser",
    "ApiUser",
    "Step",
    "Sequence",
    "Shot",
    "Asset",
    "Task",
    "Version",
    "Note",
    "PublishedFile",
    "Playlist",
    "LocalStorage",
    "EventLogEntry",
)
USER_TYPES = ("HumanUser", "ApiUser")
PRODUCTION_STATUSES = ("wtg", "rdy", "ip", "rev", "fin", "omt", "hld")
VERSION_STATUSES = ("wtg", "rev", "apr", "vwd", "rej", "na")
LINKABLE = tuple(t for t in ENTITY_TYPES if t != "EventLogEntry")


def _f(name: str, data_type: str, display: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name=name, data_type=data_type, display=display, **kw)


def _common(project: bool) -> list[FieldSpec]:
    specs = [
        _f("id", "number", "Id", editable=False),
        _f("created_at", "date_time", "Date Created", editable=False),
        _f("updated_at", "date_time", "Date Updated", editable=False),
        _f("created_by", "entity", "Created by", editable=False, valid_types=USER_TYPES),
        _f("updated_by", "entity", "Updated by", editable=False, valid_types=USER_TYPES),
        _f("description", "text", "Description"),
    ]
    if project:
        specs.append(_f("project", "entity", "Project", valid_types=("Project",)))
    return specs


def _status(values: tuple[str, ...], default: str) -> FieldSpec:
    return _f("sg_status_list", "status_list", "Status", valid_values=values, default=default)


def _derived(name: str, display: str, src_type: str, src_field: str) -> FieldSpec:
    return _f(
        name,
        "multi_entity",
        display,
        editable=False,
        valid_types=(src_type,),
        link_kind="derived",
        source=(src_type, src_field),
    )


def _own_fields() -> dict[str, tuple[str, str, list[FieldSpec]]]:
    """Per type: display name, name field, and the fields beyond the common ones."""
    return {
        "Project": (
            "Project",
            "name",
            [
                _f("name", "text", "Project Name"),
                _f(
                    "sg_status",
                    "list",
                    "Status",
                    valid_values=("Active", "Bidding", "Archived"),
                    default="Active",
                ),
            ],
        ),
        "HumanUser": (
            "Person",
            "name",
            [
                _f("name", "text", "Name"),
                _f("login", "text", "Login"),
                _f("firstname", "text", "First Name"),
                _f("lastname", "text", "Last Name"),
                _f("email", "text", "Email"),
                _f(
                    "sg_status_list",
                    "status_list",
                    "Status",
                    valid_values=("act", "dis"),
                    default="act",
                ),
            ],
        ),
        "ApiUser": (
            "Script",
            "firstname",
            [
                _f("firstname", "text", "Script Name"),
                _f("lastname", "text", "Version"),
                _f("email", "text", "Email"),
                _f(
                    "generate_event_log_entries",
                    "checkbox",
                    "Generate Event Log Entries",
                    default=False,
                ),
            ],
        ),
        "Step": (
            "Pipeline Step",
            "code",
            [
                _f("code", "text", "Step Name"),
                _f("short_name", "text", "Short Name"),
                _f("entity_type", "text", "Entity Type"),
            ],
        ),
        "Sequence": (
            "Sequence",
            "code",
            [
                _f("code", "text", "Sequence Name"),
                _status(("wtg", "ip", "fin", "hld"), "wtg"),
                _derived("shots", "Shots", "Shot", "sg_sequence"),
            ],
        ),
        "Shot": (
            "Shot",
            "code",
            [
                _f("code", "text", "Shot Code"),
                _status(PRODUCTION_STATUSES, "wtg"),
                _f("sg_sequence", "entity", "Sequence", valid_types=("Sequence",)),
                _f("sg_cut_in", "number", "Cut In"),
                _f("sg_cut_out", "number", "Cut Out"),
                _f("assets", "multi_entity", "Assets", valid_types=("Asset",), link_kind="links"),
                _derived("tasks", "Tasks", "Task", "entity"),
            ],
        ),
        "Asset": (
            "Asset",
            "code",
            [
                _f("code", "text", "Asset Name"),
                _f(
                    "sg_asset_type",
                    "list",
                    "Type",
                    valid_values=("Character", "Environment", "Prop", "Vehicle", "FX"),
                ),
                _status(PRODUCTION_STATUSES, "wtg"),
                _f(
                    "shots",
                    "multi_entity",
                    "Shots",
                    valid_types=("Shot",),
                    link_kind="reverse",
                    source=("Shot", "assets"),
                ),
                _derived("tasks", "Tasks", "Task", "entity"),
            ],
        ),
        "Task": (
            "Task",
            "content",
            [
                _f("content", "text", "Task Name"),
                _f("entity", "entity", "Link", valid_types=("Shot", "Asset", "Sequence")),
                _f("step", "entity", "Pipeline Step", valid_types=("Step",)),
                _status(PRODUCTION_STATUSES, "wtg"),
                _f(
                    "task_assignees",
                    "multi_entity",
                    "Assigned To",
                    valid_types=("HumanUser",),
                    link_kind="links",
                ),
                _f("start_date", "date", "Start Date"),
                _f("due_date", "date", "Due Date"),
            ],
        ),
        "Version": (
            "Version",
            "code",
            [
                _f("code", "text", "Version Name"),
                _f("entity", "entity", "Link", valid_types=("Shot", "Asset", "Sequence")),
                _f("sg_task", "entity", "Task", valid_types=("Task",)),
                _f(
                    "sg_status_list",
                    "status_list",
                    "Status",
                    valid_values=VERSION_STATUSES,
                    default="rev",
                ),
                _f("user", "entity", "Artist", valid_types=USER_TYPES),
                _f("sg_path_to_movie", "text", "Path to Movie"),
                _f("frame_count", "number", "Frame Count"),
            ],
        ),
        "Note": (
            "Note",
            "subject",
            [
                _f("subject", "text", "Subject"),
                _f("content", "text", "Body"),
                _f(
                    "note_links",
                    "multi_entity",
                    "Links",
                    valid_types=("Project", "Sequence", "Shot", "Asset", "Task", "Version"),
                    link_kind="links",
                ),
                _f(
                    "addressings_to",
                    "multi_entity",
                    "To",
                    valid_types=USER_TYPES,
                    link_kind="links",
                ),
                _f("user", "entity", "Author", valid_types=USER_TYPES),
            ],
        ),
        "PublishedFile": (
            "Published File",
            "code",
            [
                _f("code", "text", "Published File Name"),
                _f("entity", "entity", "Link", valid_types=("Shot", "Asset", "Sequence")),
                _f("task", "entity", "Task", valid_types=("Task",)),
                _f("version", "entity", "Version", valid_types=("Version",)),
                _f("version_number", "number", "Version Number"),
                _f("path", "text", "Path"),
            ],
        ),
    }


def _event_log_fields() -> list[FieldSpec]:
    return [
        _f("id", "number", "Id", editable=False),
        _f("event_type", "text", "Event Type"),
        _f("attribute_name", "text", "Attribute Name"),
        _f("meta", "serializable", "Meta"),
        _f("entity", "entity", "Link", valid_types=LINKABLE, prebuilt=True),
        _f("user", "entity", "Created By", valid_types=USER_TYPES, prebuilt=True),
        _f("project", "entity", "Project", valid_types=("Project",), prebuilt=True),
        _f("session_uuid", "uuid", "Session Id"),
        _f("created_at", "date_time", "Date Created", editable=False),
        _f("description", "text", "Description"),
    ]


class Schema:
    """All entity types with cached lookups and prebuilt schema_* replies."""

    def __init__(self) -> None:
        """Build the types from the tables above."""
        self.entities: dict[str, EntitySpec] = {}
        for type_name, (display, name_field, own) in _own_fields().items():
            spec = EntitySpec(type_name, display, name_field)
            no_project = type_name in ("Project", "HumanUser", "ApiUser")
            for f in _common(project=not no_project) + own:
                spec.fields[f.name] = f
            self.entities[type_name] = spec
        for type_name, extra in extra_fields().items():
            for kw in extra:
                self.entities[type_name].fields[kw["name"]] = FieldSpec(**kw)
        for type_name, (display, name_field, has_project, own_kw) in extra_types().items():
            spec = EntitySpec(type_name, display, name_field)
            for f in _common(project=has_project) + [FieldSpec(**kw) for kw in own_kw]:
                spec.fields[f.name] = f
            self.entities[type_name] = spec
        log = EntitySpec("EventLogEntry", "Event Log Entry", "description")
        log.fields = {f.name: f for f in _event_log_fields()}
        self.entities["EventLogEntry"] = log
        self._field_replies: dict[str, dict[str, Any]] = {
            t: {n: field_reply(t, f) for n, f in spec.fields.items()}
            for t, spec in self.entities.items()
        }

    def add_field(self, type_name: str, f: FieldSpec) -> None:
        """Add a field (schema_field_create) and its schema_field_read reply."""
        self.entities[type_name].fields[f.name] = f
        self._field_replies[type_name][f.name] = field_reply(type_name, f)

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
        return {
            t: {
                "name": {"value": s.display, "editable": False},
                "visible": {"value": True, "editable": False},
            }
            for t, s in self.entities.items()
        }


def field_reply(type_name: str, f: FieldSpec) -> dict[str, Any]:
    """The schema_field_read shape of one field, as a real site returns it."""
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
