"""The core production types of the local site: Project, people, steps, shots, assets, tasks,
versions, notes, published files and the event log, with the fields plugins use.
"""

from __future__ import annotations

from typing import Any

from .specs import EntitySpec, FieldSpec

USER_TYPES = ("HumanUser", "ApiUser")
PRODUCTION_STATUSES = ("wtg", "rdy", "ip", "rev", "fin", "omt", "hld")
VERSION_STATUSES = ("wtg", "rev", "apr", "vwd", "rej", "na")


def _f(name: str, data_type: str, display: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name=name, data_type=data_type, display=display, **kw)


def common_fields(project: bool) -> list[FieldSpec]:
    """The fields every type has (thumbnails included), and ``project`` when it belongs to one."""
    specs = [
        _f("id", "number", "Id", editable=False),
        _f("created_at", "date_time", "Date Created", editable=False),
        _f("updated_at", "date_time", "Date Updated", editable=False),
        _f("created_by", "entity", "Created by", editable=False, valid_types=USER_TYPES),
        _f("updated_by", "entity", "Updated by", editable=False, valid_types=USER_TYPES),
        _f("description", "text", "Description"),
        _f("image", "image", "Thumbnail"),
        _f("filmstrip_image", "image", "Filmstrip Thumbnail"),
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
                _f("entity_type", "entity_type", "Entity Type"),
                _f("list_order", "number", "Order"),
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
        # valid_types: every other type (standard.py fills them in)
        _f("entity", "entity", "Link", prebuilt=True),
        _f("user", "entity", "Created By", valid_types=USER_TYPES, prebuilt=True),
        _f("project", "entity", "Project", valid_types=("Project",), prebuilt=True),
        _f("session_uuid", "uuid", "Session Id"),
        _f("created_at", "date_time", "Date Created", editable=False),
        _f("description", "text", "Description"),
    ]


def core_entities() -> dict[str, EntitySpec]:
    """The core types with their common fields; EventLogEntry links to any of them."""
    entities: dict[str, EntitySpec] = {}
    for type_name, (display, name_field, own) in _own_fields().items():
        spec = EntitySpec(type_name, display, name_field)
        no_project = type_name in ("Project", "HumanUser", "ApiUser")
        for f in common_fields(project=not no_project) + own:
            spec.fields[f.name] = f
        entities[type_name] = spec
    log = EntitySpec("EventLogEntry", "Event Log Entry", "description")
    log.fields = {f.name: f for f in _event_log_fields()}
    entities["EventLogEntry"] = log
    return entities
