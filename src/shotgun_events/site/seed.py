"""A small believable production, created through the API write path so it is in the log."""

from __future__ import annotations

from typing import Any

from .api import Api
from .eventlog import Actor
from .rules import accepts
from .specs import FieldSpec

PROJECT_NAME = "Demo"
#: Every seeded person logs in with their login and this password.
PASSWORD = "demo"
USERS = (
    ("Mara", "Okafor", "mokafor"),
    ("Tomas", "Lindqvist", "tlindqvist"),
    ("Ines", "Duarte", "iduarte"),
    ("Kenji", "Morita", "kmorita"),
)
STEPS = (("Layout", "LAY"), ("Anim", "ANM"), ("Light", "LGT"), ("Comp", "CMP"))
ASSETS = (
    ("hero", "Character"),
    ("robot", "Character"),
    ("street", "Environment"),
    ("lamp", "Prop"),
)
SHOT_COUNT = 6


def _fits(f: FieldSpec, value: Any) -> bool:
    """Whether a seed value suits the field of the schema served (a studio's may differ)."""
    if not f.editable or value is None:
        return False
    if f.data_type in ("list", "status_list") and f.valid_values:
        return value in f.valid_values
    if f.is_entity:
        return bool(value["type"] in f.valid_types)
    if f.is_multi:
        return all(v is not None and v["type"] in f.valid_types for v in value)
    return accepts(f.data_type, value)


def _make(api: Api, actor: Actor, type_name: str, **fields: Any) -> dict[str, Any] | None:
    """Create one entity with the seed values its type takes; None when there is no type."""
    spec = api.schema.entity(type_name)
    if spec is None:
        return None
    items = [
        {"field_name": k, "value": v}
        for k, v in fields.items()
        if k in spec.fields and _fits(spec.fields[k], v)
    ]
    created = api.writer.create(actor, type_name, items, ["id"])
    return {"type": type_name, "id": created["id"]}


def seed_production(api: Api, actor: Actor) -> bool:
    """Create project Demo with people, steps, shots, assets, tasks, versions and notes.

    On a studio's schema each entity gets the values its fields take (a type the schema
    lacks is left out). Returns False (and changes nothing) when Demo already exists.
    """
    exists = api.store.conn.execute(
        'SELECT 1 FROM "Project" WHERE name = ? AND retired = 0', (PROJECT_NAME,)
    ).fetchone()
    if exists:
        return False
    with api.store.transaction():
        project = _make(api, actor, "Project", name=PROJECT_NAME)
        users = [
            _make(
                api,
                actor,
                "HumanUser",
                name=f"{first} {last}",
                firstname=first,
                lastname=last,
                login=login,
                email=f"{login}@example.com",
                password_proxy=PASSWORD,
            )
            for first, last, login in USERS
        ]
        steps = [
            _make(api, actor, "Step", code=code, short_name=short, entity_type="Shot", list_order=n)
            for n, (code, short) in enumerate(STEPS, start=1)
        ]
        sequence = _make(api, actor, "Sequence", code="SQ010", project=project, sg_status_list="ip")
        assets = [
            _make(api, actor, "Asset", code=code, sg_asset_type=kind, project=project)
            for code, kind in ASSETS
        ]
        statuses = ("fin", "rev", "ip", "ip", "rdy", "wtg")
        for n in range(SHOT_COUNT):
            code = f"SQ010_{(n + 1) * 10:04d}"
            shot = _make(
                api,
                actor,
                "Shot",
                code=code,
                project=project,
                sg_sequence=sequence,
                sg_cut_in=1001,
                sg_cut_out=1001 + 24 * (n + 2),
                assets=[assets[n % 2], assets[2 + n % 2]],
                sg_status_list=statuses[n],
            )
            for s, (step_code, _short) in enumerate(STEPS):
                task_status = "fin" if s < (SHOT_COUNT - n) // 2 else "wtg"
                task = _make(
                    api,
                    actor,
                    "Task",
                    content=step_code,
                    entity=shot,
                    step=steps[s],
                    project=project,
                    sg_status_list=task_status,
                    task_assignees=[users[(n + s) % len(users)]],
                    start_date=f"2025-03-{3 + s * 5:02d}",
                    due_date=f"2025-03-{7 + s * 5:02d}",
                )
                if task_status == "fin":
                    version = _make(
                        api,
                        actor,
                        "Version",
                        code=f"{code}_{step_code.lower()}_v001",
                        entity=shot,
                        sg_task=task,
                        project=project,
                        user=users[(n + s) % len(users)],
                        sg_status_list="apr",
                        description=f"{step_code} pass for {code}",
                    )
                    if s == 0:
                        _make(
                            api,
                            actor,
                            "Note",
                            subject=f"{code} layout notes",
                            content="Camera feels a touch late on the turn; pull it by 4 frames.",
                            note_links=[shot, version],
                            project=project,
                            user=users[0],
                            addressings_to=[users[(n + s) % len(users)]],
                        )
    return True
