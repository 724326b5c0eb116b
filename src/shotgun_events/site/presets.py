"""``additional_filter_presets`` of read: LATEST, and the real site's error for the rest."""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .store import q

#: latest_by -> the columns a group of "latest" is made of (besides the linked entity).
_LATEST_BY = {
    "ENTITIES_CREATED_AT": (),
    "BY_PIPELINE_STEP_NUMBER_AND_ENTITIES_CREATED_AT": ("step",),
}
#: Types LATEST works on: their link to the entity they are versions of, and to a task.
_LATEST_TYPES = {"Version": ("entity", "sg_task"), "PublishedFile": ("entity", "task")}


def preset_clause(type_name: str, presets: Any, alias: str = "a0") -> str:
    """SQL ANDed to a read's WHERE for its presets ("1" for none)."""
    if presets in (None, []):
        return "1"
    if not isinstance(presets, list) or not all(isinstance(p, dict) for p in presets):
        raise ApiError("API read() additional_filter_presets must be a list of objects")
    parts = [_one(type_name, p, alias) for p in presets]
    return " AND ".join(parts)


def _one(type_name: str, preset: dict[str, Any], alias: str) -> str:
    name = preset.get("preset_name")
    if name != "LATEST":
        raise ApiError(f"API read() additional_filter_presets: invalid preset_name {name!r}")
    latest_by = preset.get("latest_by")
    if latest_by not in _LATEST_BY:
        raise ApiError(
            f"API read() additional_filter_presets: LATEST invalid latest_by {latest_by!r};"
            f" valid: {sorted(_LATEST_BY)}"
        )
    links = _LATEST_TYPES.get(type_name)
    if links is None:
        raise ApiError(
            f"API read() additional_filter_presets: LATEST is not supported for {type_name}"
            f" (only {sorted(_LATEST_TYPES)})"
        )
    entity, task = (q(f"{n}__{part}") for n in links for part in ("id",))
    etype = q(f"{links[0]}__type")
    same = f"b.{etype} IS {alias}.{etype} AND b.{entity} IS {alias}.{entity}"
    if _LATEST_BY[latest_by]:
        # same pipeline step: the step of the task each one is linked to
        step = f'(SELECT t."step__id" FROM "Task" t WHERE t.id = {{x}}.{task})'
        same += f" AND {step.format(x='b')} IS {step.format(x=alias)}"
    newer = (
        f"(b.created_at > {alias}.created_at OR"
        f" (b.created_at = {alias}.created_at AND b.id > {alias}.id))"
    )
    # the latest one of its group: no active one of the group is newer
    return (
        f"{alias}.{entity} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {q(type_name)} b"
        f" WHERE b.retired = 0 AND {same} AND {newer})"
    )
