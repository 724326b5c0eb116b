"""work_schedule_read / work_schedule_update: working days and their exceptions.

The studio works Monday to Friday. An exception is a WorkDayRule entity (created and
logged like any entity) for the whole studio, one project, or one person. For each
day, the most specific rule wins: the person's, then the project's, then the
studio's, then the work week. Tasks are not rescheduled (``recalculate_field`` is
checked and otherwise ignored: the local site has no scheduling engine).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .errors import ApiError
from .eventlog import Actor, Link
from .store import Store
from .writes import Writer

_RECALCULATE = (None, "due_date", "duration")


def _day(value: Any, what: str) -> _dt.date:
    try:
        if isinstance(value, str) and len(value) == 10:
            return _dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise ApiError(f"{what} must be a date string YYYY-MM-DD, got {value!r}")


class WorkSchedule:
    """Reads and writes work day rules; callers hold the store lock."""

    def __init__(self, store: Store, writer: Writer) -> None:
        """Keep rules through ``writer`` in ``store``."""
        self.store = store
        self.writer = writer

    def _link(self, value: Any, type_name: str, what: str) -> Link | None:
        if value is None:
            return None
        ok = isinstance(value, dict) and value.get("type") == type_name
        entity_id = value.get("id") if ok else None
        if not isinstance(entity_id, int) or self.store.state_of(type_name, entity_id) != 0:
            raise ApiError(f"{what} must be an existing {type_name}, got {value!r}")
        return self.store.link_of(type_name, entity_id)

    def _rules(self, first: str, last: str) -> list[tuple[str, int | None, int | None, Any, Any]]:
        return self.store.conn.execute(
            'SELECT date, project__id, user__id, working, description FROM "WorkDayRule"'
            " WHERE retired = 0 AND date BETWEEN ? AND ? ORDER BY id",
            (first, last),
        ).fetchall()

    def read(self, params: Any) -> dict[str, dict[str, Any]]:
        """Each day from start_date to end_date: working or not, and why."""
        p = params if isinstance(params, dict) else {}
        start = _day(p.get("start_date"), "start_date")
        end = _day(p.get("end_date"), "end_date")
        if end < start:
            raise ApiError("work_schedule_read: end_date is before start_date")
        project = self._link(p.get("project"), "Project", "project")
        user = self._link(p.get("user"), "HumanUser", "user")
        found: dict[tuple[str, str], tuple[bool, Any]] = {}
        for date, project_id, user_id, working, description in self._rules(
            start.isoformat(), end.isoformat()
        ):
            if user_id is not None:
                scope = "USER" if user and user["id"] == user_id else ""
            elif project_id is not None:
                scope = "PROJECT" if project and project["id"] == project_id else ""
            else:
                scope = "STUDIO"
            if scope:
                found[(date, scope)] = (bool(working), description)
        days: dict[str, dict[str, Any]] = {}
        day = start
        while day <= end:
            key = day.isoformat()
            for scope in ("USER", "PROJECT", "STUDIO"):
                if (key, scope) in found:
                    working, description = found[(key, scope)]
                    days[key] = {
                        "description": description,
                        "reason": f"{scope}_EXCEPTION",
                        "working": working,
                    }
                    break
            else:
                days[key] = {
                    "description": None,
                    "reason": "STUDIO_WORK_WEEK",
                    "working": day.weekday() < 5,
                }
            day += _dt.timedelta(days=1)
        return days

    def update(self, actor: Actor, params: Any) -> dict[str, Any]:
        """Make one day a working day or not, for the studio, a project or a person."""
        p = params if isinstance(params, dict) else {}
        date = _day(p.get("date"), "date").isoformat()
        working = p.get("working")
        if not isinstance(working, bool):
            raise ApiError(f"working must be true or false, got {working!r}")
        description = p.get("description")
        if description is not None and not isinstance(description, str):
            raise ApiError(f"description must be a string, got {description!r}")
        if p.get("recalculate_field") not in _RECALCULATE:
            raise ApiError("recalculate_field must be due_date or duration")
        project = self._link(p.get("project"), "Project", "project")
        user = self._link(p.get("user"), "HumanUser", "user")
        if project and user:
            raise ApiError("work_schedule_update: give a project or a user, not both")
        row = self.store.conn.execute(
            'SELECT id FROM "WorkDayRule" WHERE retired = 0 AND date = ?'
            " AND project__id IS ? AND user__id IS ?",
            (date, project["id"] if project else None, user["id"] if user else None),
        ).fetchone()
        values: dict[str, Any] = {"working": working, "description": description}
        with self.store.transaction():
            if row is None:
                values.update(date=date, project=project, user=user)
                items = [{"field_name": k, "value": v} for k, v in values.items()]
                self.writer.create(actor, "WorkDayRule", items, ["id"])
            else:
                items = [{"field_name": k, "value": v} for k, v in values.items()]
                self.writer.update(actor, "WorkDayRule", row[0], items)
        # the project and user come back as they were given, as a real site echoes them
        return {
            "date": date,
            "description": description,
            "project": p.get("project"),
            "user": p.get("user"),
            "working": working,
        }
