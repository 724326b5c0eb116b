"""``additional_filter_presets`` of read, as a real site documents them.

A preset narrows what the filters found (the two are ANDed):

- Version / PublishedFile ``LATEST`` by ``ENTITIES_CREATED_AT``: of the matches linked
  to the same entity, the one created last;
- Version / PublishedFile ``LATEST`` by ``BY_PIPELINE_STEP_NUMBER_AND_ENTITIES_CREATED_AT``:
  of the matches linked to the same entity, those whose task's step has the highest
  ``list_order``, and of those the one created last (no task or step counts lowest);
- Version ``CUT_SHOT_VERSIONS`` with ``cut_id``: the Versions of the Shots the Cut's
  CutItems name;
- Cut ``LATEST`` by ``REVISION_NUMBER``: the matches with the highest revision number.

Anything else is refused with a Fault, never ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ApiError
from .store import q

#: A read's own WHERE (SQL, bound values) for the rows of a given table alias.
Matching = Callable[[str], tuple[str, list[Any]]]
#: Types LATEST groups by entity: their link to the entity, and to a task.
_BY_ENTITY = {"Version": ("entity", "sg_task"), "PublishedFile": ("entity", "task")}
_LATEST_BY = {
    "Version": ("ENTITIES_CREATED_AT", "BY_PIPELINE_STEP_NUMBER_AND_ENTITIES_CREATED_AT"),
    "PublishedFile": ("ENTITIES_CREATED_AT", "BY_PIPELINE_STEP_NUMBER_AND_ENTITIES_CREATED_AT"),
    "Cut": ("REVISION_NUMBER",),
}


def _fail(message: str) -> ApiError:
    return ApiError(f"API read() additional_filter_presets: {message}")


def preset_clause(type_name: str, presets: Any, matching: Matching) -> tuple[str, list[Any]]:
    """SQL (and its bound values) ANDed to a read's WHERE for its presets."""
    if presets in (None, []):
        return "1", []
    if not isinstance(presets, list) or not all(isinstance(p, dict) for p in presets):
        raise _fail("must be a list of objects")
    parts: list[str] = []
    args: list[Any] = []
    for preset in presets:
        sql, more = _one(type_name, preset, matching)
        parts.append(sql)
        args.extend(more)
    return " AND ".join(parts), args


def _one(type_name: str, preset: dict[str, Any], matching: Matching) -> tuple[str, list[Any]]:
    name = preset.get("preset_name")
    if name == "CUT_SHOT_VERSIONS":
        cut_id = preset.get("cut_id")
        if type_name != "Version" or not isinstance(cut_id, int):
            raise _fail("CUT_SHOT_VERSIONS takes a cut_id, on Version")
        return (
            'a0."entity__type" = \'Shot\' AND a0."entity__id" IN (SELECT c."shot__id"'
            ' FROM "CutItem" c WHERE c.retired = 0 AND c."cut__id" = ?)',
            [cut_id],
        )
    if name != "LATEST":
        raise _fail(f"invalid preset_name {name!r}; valid: LATEST, CUT_SHOT_VERSIONS")
    latest_by = preset.get("latest_by")
    valid = _LATEST_BY.get(type_name)
    if valid is None:
        raise _fail(f"LATEST is not supported for {type_name} (only {sorted(_LATEST_BY)})")
    if latest_by not in valid:
        raise _fail(f"LATEST invalid latest_by {latest_by!r} for {type_name}; valid: {valid}")
    same, args = matching("b")
    if type_name == "Cut":
        better = 'b."revision_number" > a0."revision_number"'
    else:
        link, task = _BY_ENTITY[type_name]
        et, ei = q(f"{link}__type"), q(f"{link}__id")
        same += f" AND b.{et} IS a0.{et} AND b.{ei} = a0.{ei}"
        newer = "(b.created_at > a0.created_at OR (b.created_at = a0.created_at AND b.id > a0.id))"
        better = newer
        if latest_by != "ENTITIES_CREATED_AT":
            # the step order of the task each one is linked to (none: lowest)
            order = (
                'COALESCE((SELECT s."list_order" FROM "Task" t JOIN "Step" s'
                f' ON s.id = t."step__id" WHERE t.id = {{x}}.{q(task + "__id")}), -1)'
            )
            higher, level = order.format(x="b"), order.format(x="a0")
            better = f"({higher} > {level} OR ({higher} = {level} AND {newer}))"
    # the best of its group: no other match of the group is better
    prefix = (
        "" if type_name == "Cut" else f"a0.{q(_BY_ENTITY[type_name][0] + '__id')} IS NOT NULL AND "
    )
    return (
        f"{prefix}NOT EXISTS (SELECT 1 FROM {q(type_name)} b WHERE {same} AND {better})",
        args,
    )
