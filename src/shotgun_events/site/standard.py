"""The local site's own schema: the core types of core.py plus the standard ones plugins meet.

Plugins use these every day (the official client's own tests do too): Task colour,
duration and tags; Version aspect ratios and uploaded movie; HumanUser projects, lock,
note emails and password; Note type; Shot head in and cut duration; Project archived
and last access; LocalStorage's uuid; and the Playlist, LocalStorage, Attachment, Page,
WorkDayRule, Cut and CutItem types. ``password`` fields are accepted on write and kept
only as a salted hash (``passwords.py``): never returned, never logged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .core import common_fields, core_entities
from .specs import EntitySpec, FieldSpec

NOTE_TYPES = ("Client", "Internal", "Creative", "Technical")
#: The types the site itself needs, whatever schema it serves (studio.py keeps them).
SITE_TYPES = (
    "Project",
    "HumanUser",
    "ApiUser",
    "Attachment",
    "Page",
    "WorkDayRule",
    "EventLogEntry",
)


def _f(name: str, data_type: str, display: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name=name, data_type=data_type, display=display, **kw)


def _links(name: str, display: str, *types: str) -> FieldSpec:
    return _f(name, "multi_entity", display, valid_types=types, link_kind="links")


def extra_fields() -> dict[str, list[FieldSpec]]:
    """Fields added to the core types, by type."""
    return {
        "Task": [
            _f("color", "color", "Gantt Bar Color", default="pipeline_step"),
            _f("duration", "duration", "Duration"),
            _f("tag_list", "tag_list", "Tags"),
        ],
        "Version": [
            _f("sg_frames_aspect_ratio", "float", "Frames Aspect Ratio"),
            _f("sg_movie_aspect_ratio", "float", "Movie Aspect Ratio"),
            _f("sg_uploaded_movie", "url", "Uploaded Movie"),
            _f("tag_list", "tag_list", "Tags"),
        ],
        "HumanUser": [
            _links("projects", "Projects", "Project"),
            _f("locked_until", "date_time", "Locked Until"),
            _f("email_notes", "checkbox", "Email Notes", default=True),
            _f("password_proxy", "password", "Password"),
        ],
        "Note": [_f("sg_note_type", "list", "Type", valid_values=NOTE_TYPES)],
        "Shot": [
            _f("head_in", "number", "Head In"),
            _f("sg_cut_duration", "number", "Cut Duration"),
            _f("tag_list", "tag_list", "Tags"),
        ],
        "Project": [
            _f("archived", "checkbox", "Archived", default=False),
            _f(
                "last_accessed_by_current_user",
                "date_time",
                "Last Accessed",
                editable=False,
                virtual="project_last_accessed",
            ),
        ],
    }


def extra_types() -> dict[str, tuple[str, str, bool, list[FieldSpec]]]:
    """New types: display name, name field, whether it has a project, own fields."""
    return {
        "Playlist": (
            "Playlist",
            "code",
            True,
            [
                _f("code", "text", "Playlist Name"),
                _f("locked", "checkbox", "Locked", default=False),
                _links("versions", "Versions", "Version"),
                _f("tag_list", "tag_list", "Tags"),
            ],
        ),
        "LocalStorage": (
            "Local File Storage",
            "code",
            False,
            [
                _f("code", "text", "Storage Name"),
                _f("linux_path", "text", "Linux Path"),
                _f("mac_path", "text", "Mac Path"),
                _f("windows_path", "text", "Windows Path"),
                _f("uuid", "uuid", "Uuid", editable=False),
            ],
        ),
        "Attachment": (
            "File",
            "filename",
            True,
            [
                _f("filename", "text", "File Name"),
                _f("original_fname", "text", "Original File Name"),
                _f("this_file", "url", "File/Link"),
                _f("file_size", "number", "File Size", editable=False),
                _f("file_extension", "text", "File Extension", editable=False),
                # valid_types: every type (filled in below)
                _f("attachment_links", "multi_entity", "Links", link_kind="links"),
                _f("tag_list", "tag_list", "Tags"),
            ],
        ),
        "Page": (
            "Page",
            "name",
            True,
            [
                _f("name", "text", "Page Name"),
                _f("entity_type", "entity_type", "Entity Type"),
                _f("page_type", "text", "Page Type"),
                _f("last_accessed", "date_time", "Last Accessed", editable=False),
            ],
        ),
        "WorkDayRule": (
            "Work Day Rule",
            "date",
            True,
            [
                _f("date", "date", "Date"),
                _f("working", "checkbox", "Working", default=False),
                _f("user", "entity", "Person", valid_types=("HumanUser",)),
            ],
        ),
        "Cut": (
            "Cut",
            "code",
            True,
            [
                _f("code", "text", "Cut Name"),
                _f("revision_number", "number", "Revision Number"),
                _f("entity", "entity", "Link", valid_types=("Sequence", "Shot", "Asset")),
                _f("version", "entity", "Version", valid_types=("Version",)),
            ],
        ),
        "CutItem": (
            "Cut Item",
            "code",
            True,
            [
                _f("code", "text", "Cut Item Name"),
                _f("cut", "entity", "Cut", valid_types=("Cut",)),
                _f("shot", "entity", "Shot", valid_types=("Shot",)),
                _f("version", "entity", "Version", valid_types=("Version",)),
                _f("cut_order", "number", "Cut Order"),
                _f("cut_item_in", "number", "Cut Item In"),
                _f("cut_item_out", "number", "Cut Item Out"),
            ],
        ),
    }


def link_anything(entities: dict[str, EntitySpec]) -> None:
    """Point the fields that can link to any type at every type there is."""
    every = tuple(t for t in entities if t != "EventLogEntry")
    for type_name, field_name in (("EventLogEntry", "entity"), ("Attachment", "attachment_links")):
        spec = entities.get(type_name)
        f = spec.fields.get(field_name) if spec else None
        if spec is not None and f is not None and not f.reply:
            spec.fields[field_name] = replace(f, valid_types=every)


def standard_entities() -> dict[str, EntitySpec]:
    """Every type of the local site's own schema."""
    entities = core_entities()
    for type_name, extra in extra_fields().items():
        for f in extra:
            entities[type_name].fields[f.name] = f
    log = entities.pop("EventLogEntry")  # kept last, like a real site lists it
    for type_name, (display, name_field, has_project, own) in extra_types().items():
        spec = EntitySpec(type_name, display, name_field)
        for f in common_fields(project=has_project) + own:
            spec.fields[f.name] = f
        entities[type_name] = spec
    entities["EventLogEntry"] = log
    link_anything(entities)
    return entities
