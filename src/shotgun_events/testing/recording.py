"""A ``shotgun_api3.Shotgun`` that records every write a plugin makes, and sends it or not.

Plugin tests (``plugin_under_test``) send the writes to the local site and keep the
list; dry runs (``shotgunEventDaemon try``) keep the list and send nothing: reads
still go to the site, and a write returns a plausible result instead.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from shotgun_api3.shotgun import Shotgun

#: api3 methods that only read. In a dry run any other RPC is refused, even one this
#: module does not know by name, so a new client version cannot slip a write through.
READ_RPCS = frozenset(
    {
        "info",
        "read",
        "summarize",
        "schema_read",
        "schema_entity_read",
        "schema_field_read",
        "followers",
        "following",
        "activity_stream",
        "note_thread_contents",
        "query_display_name_cache",
        "preferences_read",
        "user_subscriptions_read",
        "work_schedule_read",
        "get_session_token",
        "export_page",
        "nav_expand",
        "nav_search",
        "entity_types",
    }
)

Write = dict[str, Any]


class DryRunRefusedError(Exception):
    """A dry run met a call it cannot simulate; nothing was sent."""


class WriteLog:
    """The writes of one plugin, in order, shared by all its connections (thread-safe)."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self.items: list[Write] = []
        self._fake_ids = itertools.count(-1, -1)

    def add(self, write: Write) -> None:
        """Append one write."""
        with self._lock:
            self.items.append(write)

    def fake_id(self) -> int:
        """A negative id for an entity a dry run pretends to create (never a real id)."""
        with self._lock:
            return next(self._fake_ids)


def _write(
    method: str, entity_type: str | None, entity_id: int | None, data: Any, **extra: Any
) -> Write:
    item: Write = {
        "method": method,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "data": data,
    }
    item.update({k: v for k, v in extra.items() if v is not None})
    return item


class RecordingShotgun(Shotgun):
    """Records each write as ``{method, entity_type, entity_id, data}``; ``dry`` keeps it local.

    Only the outermost public call is recorded (``upload_thumbnail`` calls ``upload``
    inside the client). With ``dry`` set, writes return what a site would, with
    negative ids for created entities, and unknown non-read RPCs raise ``DryRunRefusedError``.
    """

    def __init__(self, *args: Any, writes: WriteLog, dry: bool, **kwargs: Any) -> None:
        """Connect like ``Shotgun(...)``; record into ``writes``."""
        self._writes = writes
        self._dry = dry
        self._depth = 0
        super().__init__(*args, **kwargs)

    # -- the bookkeeping -------------------------------------------------------------

    def _record(self, item: Write, send: Callable[[], Any], fake: Callable[[], Any]) -> Any:
        if self._depth:
            return send()
        self._depth += 1
        try:
            if self._dry:
                self._writes.add(item)
                return fake()
            result = send()
            if item["method"] == "create" and isinstance(result, dict):
                item["entity_id"] = result.get("id")
            self._writes.add(item)
            return result
        finally:
            self._depth -= 1

    def _call_rpc(self, method: str, params: Any, *args: Any, **kwargs: Any) -> Any:
        if self._dry and method not in READ_RPCS:
            self._writes.add(_write(method, None, None, params))
            raise DryRunRefusedError(
                f"dry run: the api3 call {method!r} is not simulated; it was recorded, not sent"
            )
        return super()._call_rpc(method, params, *args, **kwargs)

    # -- entity writes -----------------------------------------------------------------

    def create(
        self, entity_type: str, data: dict[str, Any], return_fields: list[str] | None = None
    ) -> dict[str, Any]:
        """Record, then create (or pretend to, with a negative id)."""
        item = _write("create", entity_type, None, dict(data))
        return dict(
            self._record(
                item,
                lambda: super(RecordingShotgun, self).create(entity_type, data, return_fields),
                lambda: {"type": entity_type, "id": self._writes.fake_id(), **data},
            )
        )

    def update(
        self,
        entity_type: str,
        entity_id: int,
        data: dict[str, Any],
        multi_entity_update_modes: dict[str, Any] | None = None,
    ) -> Any:
        """Record, then update (or pretend to)."""
        item = _write(
            "update",
            entity_type,
            entity_id,
            dict(data),
            multi_entity_update_modes=multi_entity_update_modes,
        )
        return self._record(
            item,
            lambda: super(RecordingShotgun, self).update(
                entity_type, entity_id, data, multi_entity_update_modes
            ),
            lambda: {"type": entity_type, "id": entity_id, **data},
        )

    def delete(self, entity_type: str, entity_id: int) -> bool:
        """Record, then retire (or pretend to)."""
        return bool(
            self._record(
                _write("delete", entity_type, entity_id, None),
                lambda: super(RecordingShotgun, self).delete(entity_type, entity_id),
                lambda: True,
            )
        )

    def revive(self, entity_type: str, entity_id: int) -> bool:
        """Record, then revive (or pretend to)."""
        return bool(
            self._record(
                _write("revive", entity_type, entity_id, None),
                lambda: super(RecordingShotgun, self).revive(entity_type, entity_id),
                lambda: True,
            )
        )

    def batch(self, requests: list[dict[str, Any]]) -> list[Any]:
        """Record the whole batch as one write, then send it (or pretend each request)."""

        def fake() -> list[Any]:
            out: list[Any] = []
            for r in requests:
                kind = r.get("request_type")
                if kind == "create":
                    out.append(
                        {
                            "type": r.get("entity_type"),
                            "id": self._writes.fake_id(),
                            **(r.get("data") or {}),
                        }
                    )
                elif kind == "update":
                    out.append(
                        {
                            "type": r.get("entity_type"),
                            "id": r.get("entity_id"),
                            **(r.get("data") or {}),
                        }
                    )
                else:
                    out.append(True)
            return out

        return list(
            self._record(
                _write("batch", None, None, [dict(r) for r in requests]),
                lambda: super(RecordingShotgun, self).batch(requests),
                fake,
            )
        )

    # -- files ---------------------------------------------------------------------

    def upload(
        self,
        entity_type: str,
        entity_id: int,
        path: str,
        field_name: str | None = None,
        display_name: str | None = None,
        tag_list: str | None = None,
        created_at: Any = None,
    ) -> int:
        """Record, then upload (or pretend to)."""
        data = {
            "path": path,
            "field_name": field_name,
            "display_name": display_name,
            "tag_list": tag_list,
        }
        return int(
            self._record(
                _write("upload", entity_type, entity_id, data),
                lambda: super(RecordingShotgun, self).upload(
                    entity_type, entity_id, path, field_name, display_name, tag_list, created_at
                ),
                self._writes.fake_id,
            )
        )

    def upload_thumbnail(self, entity_type: str, entity_id: int, path: str, **kwargs: Any) -> int:
        """Record, then upload the thumbnail (or pretend to)."""
        return int(
            self._record(
                _write("upload_thumbnail", entity_type, entity_id, {"path": path, **kwargs}),
                lambda: super(RecordingShotgun, self).upload_thumbnail(
                    entity_type, entity_id, path, **kwargs
                ),
                self._writes.fake_id,
            )
        )

    def upload_filmstrip_thumbnail(
        self, entity_type: str, entity_id: int, path: str, **kwargs: Any
    ) -> int:
        """Record, then upload the filmstrip (or pretend to)."""
        return int(
            self._record(
                _write(
                    "upload_filmstrip_thumbnail", entity_type, entity_id, {"path": path, **kwargs}
                ),
                lambda: super(RecordingShotgun, self).upload_filmstrip_thumbnail(
                    entity_type, entity_id, path, **kwargs
                ),
                self._writes.fake_id,
            )
        )

    def share_thumbnail(
        self,
        entities: list[dict[str, Any]],
        thumbnail_path: str | None = None,
        source_entity: Any = None,
        filmstrip_thumbnail: bool = False,
        **kwargs: Any,
    ) -> int:
        """Record, then share (or pretend to)."""
        data = {
            "entities": list(entities),
            "thumbnail_path": thumbnail_path,
            "source_entity": source_entity,
            "filmstrip_thumbnail": filmstrip_thumbnail,
        }
        return int(
            self._record(
                _write("share_thumbnail", None, None, data),
                lambda: super(RecordingShotgun, self).share_thumbnail(
                    entities, thumbnail_path, source_entity, filmstrip_thumbnail, **kwargs
                ),
                self._writes.fake_id,
            )
        )

    # -- following, schema, the rest --------------------------------------------------

    def follow(self, user: dict[str, Any], entity: dict[str, Any]) -> dict[str, Any]:
        """Record, then follow (or pretend to)."""
        return dict(
            self._record(
                _write("follow", entity.get("type"), entity.get("id"), {"user": user}),
                lambda: super(RecordingShotgun, self).follow(user, entity),
                lambda: {"followed": True, "user": user, "entity": entity},
            )
        )

    def unfollow(self, user: dict[str, Any], entity: dict[str, Any]) -> dict[str, Any]:
        """Record, then unfollow (or pretend to)."""
        return dict(
            self._record(
                _write("unfollow", entity.get("type"), entity.get("id"), {"user": user}),
                lambda: super(RecordingShotgun, self).unfollow(user, entity),
                lambda: {"unfollowed": True, "user": user, "entity": entity},
            )
        )

    def schema_field_create(
        self,
        entity_type: str,
        data_type: str,
        display_name: str,
        properties: dict[str, Any] | None = None,
    ) -> str:
        """Record, then add the field (or pretend to)."""
        data = {"data_type": data_type, "display_name": display_name, "properties": properties}
        return str(
            self._record(
                _write("schema_field_create", entity_type, None, data),
                lambda: super(RecordingShotgun, self).schema_field_create(
                    entity_type, data_type, display_name, properties
                ),
                lambda: "sg_" + "_".join(display_name.lower().split()),
            )
        )

    def schema_field_update(
        self,
        entity_type: str,
        field_name: str,
        properties: dict[str, Any],
        project_entity: Any = None,
    ) -> bool:
        """Record, then change the field (or pretend to)."""
        return bool(
            self._record(
                _write(
                    "schema_field_update",
                    entity_type,
                    None,
                    {"field_name": field_name, "properties": properties},
                ),
                lambda: super(RecordingShotgun, self).schema_field_update(
                    entity_type, field_name, properties, project_entity
                ),
                lambda: True,
            )
        )

    def schema_field_delete(self, entity_type: str, field_name: str) -> bool:
        """Record, then delete the field (or pretend to)."""
        return bool(
            self._record(
                _write("schema_field_delete", entity_type, None, {"field_name": field_name}),
                lambda: super(RecordingShotgun, self).schema_field_delete(entity_type, field_name),
                lambda: True,
            )
        )

    def update_project_last_accessed(
        self, project: dict[str, Any], user: dict[str, Any] | None = None
    ) -> None:
        """Record, then mark the project accessed (or pretend to)."""
        self._record(
            _write("update_project_last_accessed", "Project", project.get("id"), {"user": user}),
            lambda: super(RecordingShotgun, self).update_project_last_accessed(project, user),
            lambda: None,
        )
