"""Standard fields and types of a real site beyond the core table of schema.py.

Plugins use these every day (the official client's own tests do too): Task
colour, duration and tags; Version aspect ratios; HumanUser projects, lock and
note emails; Note type; Shot head in and cut duration; Project archived; and
the Playlist and LocalStorage types. ``password`` fields (HumanUser.password_proxy)
are accepted on write, never stored, never returned and never logged.
"""

from __future__ import annotations

from typing import Any

NOTE_TYPES = ("Client", "Internal", "Creative", "Technical")


#: A field as the keyword arguments of schema.FieldSpec (this module imports nothing
#: of the site, so schema.py can build its types from it).
Field = dict[str, Any]


def _f(name: str, data_type: str, display: str, **kw: Any) -> Field:
    return {"name": name, "data_type": data_type, "display": display, **kw}


def extra_fields() -> dict[str, list[Field]]:
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
            _f("tag_list", "tag_list", "Tags"),
        ],
        "HumanUser": [
            _f("projects", "multi_entity", "Projects", valid_types=("Project",), link_kind="links"),
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
        "Project": [_f("archived", "checkbox", "Archived", default=False)],
    }


def extra_types() -> dict[str, tuple[str, str, bool, list[Field]]]:
    """New types: display name, name field, whether it has a project, own fields."""
    return {
        "Playlist": (
            "Playlist",
            "code",
            True,
            [
                _f("code", "text", "Playlist Name"),
                _f("locked", "checkbox", "Locked", default=False),
                _f(
                    "versions",
                    "multi_entity",
                    "Versions",
                    valid_types=("Version",),
                    link_kind="links",
                ),
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
            ],
        ),
    }
