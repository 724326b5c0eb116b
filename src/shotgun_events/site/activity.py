"""A background thread making believable production changes, for demos and soak runs."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .api import Api
from .errors import ApiError
from .eventlog import Actor
from .schema import PRODUCTION_STATUSES

LOG = logging.getLogger("shotgun_events.site.activity")
_NOTES = (
    "Looks great, approved from my side.",
    "Edges are chattering on frames 1040-1052; please check the roto.",
    "Can we push the key light a bit warmer?",
    "Timing on the jump is better; arms still feel floaty.",
)


class Activity:
    """Task and shot status changes, new Versions and Notes, acting as HumanUsers."""

    def __init__(self, api: Api, rate_per_second: float, seed: int | None = None) -> None:
        """Aim at ``rate_per_second`` events per second (each change writes a few)."""
        self.api = api
        self.rate = rate_per_second
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-site-activity", daemon=True)
        self._sessions: dict[int, str] = {}
        self.changes = 0

    def start(self) -> None:
        """Start the generator thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (a change in progress completes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        ops: list[Callable[[Actor], None]] = [
            self._task_status,
            self._task_status,
            self._new_version,
            self._note,
            self._shot_status,
        ]
        next_at = time.monotonic()
        while not self._stop.is_set():
            store = self.api.store
            with store.lock:
                before = store.event_high
                try:
                    with store.transaction():
                        self.rng.choice(ops)(self._actor())
                    self.changes += 1
                except ApiError as e:  # e.g. everything retired by a test: try again later
                    LOG.debug("activity change skipped: %s", e.message)
                written = max(1, store.event_high - before)
            next_at = max(next_at + written / self.rate, time.monotonic() - 1.0)
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _ids(self, type_name: str, where: str = "1") -> list[int]:
        rows = self.api.store.conn.execute(
            f'SELECT id FROM "{type_name}" WHERE retired = 0 AND {where}'
        ).fetchall()
        if not rows:
            raise ApiError(f"no {type_name} to change")
        return [int(r[0]) for r in rows]

    def _actor(self) -> Actor:
        user_id = self.rng.choice(self._ids("HumanUser"))
        user = self.api.store.link_of("HumanUser", user_id)
        session = self._sessions.setdefault(user_id, str(uuid.UUID(int=self.rng.getrandbits(128))))
        return Actor(user, session_uuid=session, log_events=True)

    def _get(self, type_name: str, entity_id: int, fields: list[str]) -> dict[str, Any]:
        return self.api.reader.fetch(type_name, entity_id, fields) or {}

    def _set(self, actor: Actor, type_name: str, entity_id: int, **fields: Any) -> None:
        items = [{"field_name": k, "value": v} for k, v in fields.items()]
        self.api.writer.update(actor, type_name, entity_id, items)

    def _task_status(self, actor: Actor) -> None:
        task_id = self.rng.choice(self._ids("Task"))
        current = self._get("Task", task_id, ["sg_status_list"]).get("sg_status_list")
        choices = [s for s in ("rdy", "ip", "rev", "fin") if s != current]
        self._set(actor, "Task", task_id, sg_status_list=self.rng.choice(choices))

    def _shot_status(self, actor: Actor) -> None:
        shot_id = self.rng.choice(self._ids("Shot"))
        current = self._get("Shot", shot_id, ["sg_status_list"]).get("sg_status_list")
        choices = [s for s in PRODUCTION_STATUSES if s not in (current, "omt")]
        self._set(actor, "Shot", shot_id, sg_status_list=self.rng.choice(choices))

    def _new_version(self, actor: Actor) -> None:
        task_id = self.rng.choice(self._ids("Task", "entity__type = 'Shot'"))
        task = self._get("Task", task_id, ["content", "entity", "project"])
        shot = task.get("entity")
        if not shot:
            raise ApiError("task has no shot")
        count = self.api.store.conn.execute(
            'SELECT COUNT(*) FROM "Version" WHERE sg_task__id = ?', (task_id,)
        ).fetchone()[0]
        code = f"{shot['name']}_{str(task.get('content')).lower()}_v{count + 1:03d}"
        fields = {
            "code": code,
            "entity": shot,
            "sg_task": {"type": "Task", "id": task_id},
            "project": task.get("project"),
            "user": actor.user,
            "sg_status_list": "rev",
            "description": "New pass, ready for review.",
        }
        items = [{"field_name": k, "value": v} for k, v in fields.items()]
        self.api.writer.create(actor, "Version", items, ["id"])

    def _note(self, actor: Actor) -> None:
        version_id = self.rng.choice(self._ids("Version"))
        version = self._get("Version", version_id, ["code", "entity", "project", "user"])
        links = [{"type": "Version", "id": version_id}]
        if version.get("entity"):
            links.append(version["entity"])
        fields = {
            "subject": f"Notes on {version.get('code')}",
            "content": self.rng.choice(_NOTES),
            "note_links": links,
            "project": version.get("project"),
            "user": actor.user,
            "addressings_to": [version["user"]] if version.get("user") else [],
        }
        items = [{"field_name": k, "value": v} for k, v in fields.items()]
        self.api.writer.create(actor, "Note", items, ["id"])
