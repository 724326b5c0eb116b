"""The api3 methods: authentication, then dispatch by ``method_name``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .auth import Auth
from .errors import AUTH_ERROR, PROTOCOL_ERROR, ApiError
from .eventlog import Actor, EventLog
from .files import Files
from .follows import Follows
from .pages import Pages
from .prefs import preferences_read
from .reads import MAX_PAGE, Reader
from .schema import Schema
from .schemaedit import SchemaEditor
from .search import TextSearch
from .store import Store
from .stream import ActivityStream
from .workdays import WorkSchedule
from .writes import Writer

INFO: dict[str, Any] = {
    "version": [8, 0, 0],
    "full_version": [8, 0, 0, 0],
    "user_authentication_method": "default",
    "api_max_entities_per_page": MAX_PAGE,
    "s3_uploads_enabled": False,
    "s3_direct_uploads_enabled": False,
    "totango_site_id": None,
    "totango_site_name": None,
    "local_site": True,  # lets a curious client tell it is talking to the local stand-in
}

Handler = Callable[[Actor, Any], Any]


class Api:
    """Turns one decoded request (method name + params) into a result or a ApiError."""

    def __init__(
        self,
        store: Store,
        schema: Schema,
        scripts: Mapping[str, str],
        *,
        files_dir: Path,
        open_scripts: bool = False,
        generate_events: bool = True,
    ) -> None:
        """Serve ``store``; ``scripts`` maps script names to keys; uploads go to ``files_dir``.

        With ``open_scripts`` an unknown script name is registered (with the key it
        came with, and an ApiUser) at its first call: plugin tests use whatever
        credentials the plugin registers with. A known name with another key is refused.
        """
        self.store = store
        self.schema = schema
        self.generate_events = generate_events
        self.reader = Reader(store, schema)
        self.events = EventLog(store)
        self.writer = Writer(store, schema, self.reader, self.events)
        self.follows = Follows(store, schema)
        self.schema_editor = SchemaEditor(store, schema, self.events)
        self.auth = Auth(store, schema, scripts, self._create_script, open_scripts=open_scripts)
        self.files = Files(store, schema, self.writer, files_dir)
        self.pages = Pages(store, self.writer)
        self.workdays = WorkSchedule(store, self.writer)
        self.search = TextSearch(schema, self.reader)
        self.stream = ActivityStream(store, schema, self.reader)
        self._methods: dict[str, Handler] = {
            "read": lambda actor, p: self.reader.read(self._dict(p, "read")),
            "summarize": lambda actor, p: self.reader.summarize(self._dict(p, "summarize")),
            "create": self._create,
            "update": self._update,
            "delete": lambda actor, p: self._retire(actor, p, False),
            "revive": lambda actor, p: self._retire(actor, p, True),
            "batch": self._batch,
            "schema_read": lambda actor, p: self.schema.schema_read(),
            "schema_entity_read": lambda actor, p: self.schema.schema_entity_read(),
            "schema_field_read": self._schema_field_read,
            "schema_field_create": self.schema_editor.create,
            "get_session_token": self._session_token,
            "follow": lambda actor, p: self.follows.follow(p, True),
            "unfollow": lambda actor, p: self.follows.follow(p, False),
            "followers": lambda actor, p: self.follows.followers(p),
            "following": lambda actor, p: self.follows.following(p),
            "query_display_name_cache": lambda actor, p: self.search.search(p),
            "activity_stream": lambda actor, p: self.stream.read(p),
            "preferences_read": lambda actor, p: preferences_read(p),
            "work_schedule_read": lambda actor, p: self.workdays.read(p),
            "work_schedule_update": self.workdays.update,
            "export_page": lambda actor, p: self.pages.export_page(p),
            "update_project_last_accessed_by_current_user": self.pages.project_accessed,
        }

    @property
    def scripts(self) -> dict[str, str]:
        """The script names and keys accepted."""
        return self.auth.scripts

    def call(self, method: Any, params: Any) -> Any:
        """Run one API call; raises ApiError for anything a real site would refuse."""
        if method == "info":
            return INFO
        handler = self._methods.get(method) if isinstance(method, str) else None
        if handler is None:
            raise ApiError(f"Unknown method: {method!r}", PROTOCOL_ERROR)
        if not isinstance(params, list) or not params or not isinstance(params[0], dict):
            raise ApiError("API requires authentication parameters", AUTH_ERROR)
        with self.store.lock:
            actor = self.auth.authenticate(params[0])
            self.store.caller = actor.caller  # per-user fields are read for this user
            return handler(actor, params[1] if len(params) > 1 else None)

    def authenticate(self, auth: dict[str, Any]) -> Actor:
        """The Actor an auth block stands for, or an AuthenticationFault (code 102)."""
        return self.auth.authenticate(auth)

    def add_script(self, name: str, key: Any) -> None:
        """Accept ``name``/``key`` from now on, creating the script's ApiUser if needed."""
        with self.store.transaction():
            self.auth.add_script(name, key)

    def _create_script(self, name: str) -> None:
        items = [
            {"field_name": "firstname", "value": name},
            {"field_name": "generate_event_log_entries", "value": self.generate_events},
        ]
        with self.store.transaction():
            self.writer.create(Actor(None, log_events=False), "ApiUser", items, ["id"])

    def _session_token(self, actor: Actor, params: Any) -> dict[str, Any]:
        assert actor.user is not None
        return {"session_id": self.auth.new_session(actor.user)}

    # -- methods -----------------------------------------------------------------

    @staticmethod
    def _dict(params: Any, method: str) -> dict[str, Any]:
        if not isinstance(params, dict):
            raise ApiError(f"API {method}() expects an object of parameters, got {params!r}")
        return params

    def _create(self, actor: Actor, params: Any) -> dict[str, Any]:
        p = self._dict(params, "create")
        with self.store.transaction():
            return self.writer.create(actor, p.get("type"), p.get("fields"), self._return_fields(p))

    def _update(self, actor: Actor, params: Any) -> dict[str, Any]:
        p = self._dict(params, "update")
        with self.store.transaction():
            return self.writer.update(actor, p.get("type"), p.get("id"), p.get("fields"))

    def _retire(self, actor: Actor, params: Any, revive: bool) -> bool:
        p = self._dict(params, "revive" if revive else "delete")
        with self.store.transaction():
            return self.writer.retire(actor, p.get("type"), p.get("id"), revive)

    @staticmethod
    def _return_fields(p: dict[str, Any]) -> list[str]:
        fields = p.get("return_fields") or ["id"]
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ApiError("return_fields must be a list of field names")
        return fields

    def _batch(self, actor: Actor, params: Any) -> list[Any]:
        if not isinstance(params, list):
            raise ApiError("API batch() expects a list of requests")
        results: list[Any] = []
        # one transaction: a failing request rolls back every request before it
        with self.store.transaction():
            for n, req in enumerate(params):
                r = self._dict(req, "batch")
                kind = r.get("request_type")
                try:
                    if kind == "create":
                        results.append(
                            self.writer.create(
                                actor, r.get("type"), r.get("fields"), self._return_fields(r)
                            )
                        )
                    elif kind == "update":
                        results.append(
                            self.writer.update(actor, r.get("type"), r.get("id"), r.get("fields"))
                        )
                    elif kind == "delete":
                        results.append(self.writer.retire(actor, r.get("type"), r.get("id"), False))
                    else:
                        raise ApiError(f"invalid request_type {kind!r}")
                except ApiError as e:
                    raise ApiError(
                        f"API batch() request {n} failed, nothing was applied: {e.message}", e.code
                    ) from e
        return results

    def _schema_field_read(self, actor: Actor, params: Any) -> dict[str, Any]:
        p = self._dict(params, "schema_field_read")
        spec = self.reader.entity_spec(p.get("type"), "schema_field_read")
        fields = self.schema.schema_field_read(spec.name)
        name = p.get("field_name")
        if name is None:
            return fields
        if name not in fields:
            raise ApiError(f"API schema_field_read() {spec.name} has no field {name!r}")
        return {name: fields[name]}
