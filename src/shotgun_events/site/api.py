"""The api3 methods: authentication, then dispatch by ``method_name``."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from .errors import AUTH_ERROR, PROTOCOL_ERROR, ApiError
from .eventlog import Actor, EventLog
from .follows import Follows
from .reads import MAX_PAGE, Reader
from .schema import Schema
from .schemaedit import SchemaEditor
from .store import Store
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
        open_scripts: bool = False,
        generate_events: bool = True,
    ) -> None:
        """Serve ``store``; ``scripts`` maps script names to keys.

        With ``open_scripts`` an unknown script name is registered (with the key it
        came with, and an ApiUser) at its first call: plugin tests use whatever
        credentials the plugin registers with. A known name with another key is refused.
        """
        self.store = store
        self.schema = schema
        self.scripts = dict(scripts)
        self.open_scripts = open_scripts
        self.generate_events = generate_events
        self.reader = Reader(store, schema)
        self.events = EventLog(store)
        self.writer = Writer(store, schema, self.reader, self.events)
        self.follows = Follows(store, schema)
        self.schema_editor = SchemaEditor(store, schema, self.events)
        self._sessions: dict[str, tuple[str, int]] = {}
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
            "get_session_token": self._session_token,
            "follow": lambda actor, p: self.follows.follow(p, True),
            "unfollow": lambda actor, p: self.follows.follow(p, False),
            "followers": lambda actor, p: self.follows.followers(p),
            "following": lambda actor, p: self.follows.following(p),
            "schema_field_create": self.schema_editor.create,
        }

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
            actor = self.authenticate(params[0])
            return handler(actor, params[1] if len(params) > 1 else None)

    # -- auth --------------------------------------------------------------------

    def _user(self, type_name: str, where: str, value: Any) -> dict[str, Any] | None:
        name = self.schema.entities[type_name].name_field
        row = self.store.conn.execute(
            f'SELECT id, "{name}" FROM "{type_name}" WHERE "{where}" = ? AND retired = 0'
            " ORDER BY id LIMIT 1",
            (value,),
        ).fetchone()
        return None if row is None else {"type": type_name, "id": row[0], "name": row[1]}

    def authenticate(self, auth: dict[str, Any]) -> Actor:
        """The Actor an auth block stands for, or an AuthenticationFault (code 102)."""
        session_uuid = auth.get("session_uuid")
        log = True
        if "script_name" in auth:
            name, key = auth.get("script_name"), auth.get("script_key")
            if self.open_scripts and isinstance(name, str) and name not in self.scripts:
                self.add_script(name, key)
            if not isinstance(name, str) or self.scripts.get(name) != key:
                raise ApiError(f"Can't authenticate script '{name}'", AUTH_ERROR)
            user = self._user("ApiUser", "firstname", name)
            if user is None:
                raise ApiError(f"Can't authenticate script '{name}'", AUTH_ERROR)
            flag = self.store.conn.execute(
                'SELECT generate_event_log_entries FROM "ApiUser" WHERE id = ?', (user["id"],)
            ).fetchone()
            log = bool(flag and flag[0])
        elif "user_login" in auth:
            # the local site does not keep passwords: any non-empty one is accepted
            user = self._user("HumanUser", "login", auth.get("user_login"))
            if user is None or not auth.get("user_password"):
                raise ApiError(f"Can't authenticate user '{auth.get('user_login')}'", AUTH_ERROR)
        elif "session_token" in auth:
            found = self._sessions.get(str(auth.get("session_token")))
            user = None if found is None else self.store.link_of(*found)
            if user is None:
                raise ApiError("Session token is invalid or expired", AUTH_ERROR)
        else:
            raise ApiError("API requires authentication parameters", AUTH_ERROR)
        sudo = auth.get("sudo_as_login")
        if sudo:
            human = self._user("HumanUser", "login", sudo)
            if human is None:
                raise ApiError(
                    f"sudo_as_login: no active HumanUser with login '{sudo}'", AUTH_ERROR
                )
            return Actor(human, session_uuid, log, sudo_actual_user=user)
        return Actor(user, session_uuid, log)

    def add_script(self, name: str, key: Any) -> None:
        """Accept ``name``/``key`` from now on, creating the script's ApiUser if needed."""
        if not isinstance(key, str) or not name:
            raise ApiError(f"Can't authenticate script '{name}'", AUTH_ERROR)
        self.scripts[name] = key
        with self.store.transaction() as conn:
            row = conn.execute(
                'SELECT id FROM "ApiUser" WHERE firstname = ? AND retired = 0', (name,)
            ).fetchone()
            if row is None:
                self.writer.create(
                    Actor(None, log_events=False),
                    "ApiUser",
                    [
                        {"field_name": "firstname", "value": name},
                        {"field_name": "generate_event_log_entries", "value": self.generate_events},
                    ],
                    ["id"],
                )

    def _session_token(self, actor: Actor, params: Any) -> dict[str, Any]:
        assert actor.user is not None
        token = secrets.token_hex(16)
        self._sessions[token] = (actor.user["type"], actor.user["id"])
        return {"session_id": token}

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
