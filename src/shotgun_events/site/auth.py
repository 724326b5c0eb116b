"""Who is calling: scripts and their keys, people's logins and passwords, sessions, sudo.

- a script (``script_name``/``script_key``) acts as its ApiUser; with ``open_scripts``
  an unknown name is registered with the key it first came with;
- a person (``user_login``/``user_password``) must be an active HumanUser
  (``sg_status_list`` ``act``), not locked (``locked_until`` in the future), and give
  the password set through ``password_proxy``; a person without one cannot log in;
- a session token (``get_session_token``, also the ``_session_id`` cookie of file
  downloads) stands for whoever asked for it; tokens are kept in the database;
- ``sudo_as_login`` is for scripts only: a person asking for it is refused ("The user
  does not have permission to 'sudo'"), as on a real site.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from .errors import AUTH_ERROR, ApiError, utc_now
from .eventlog import Actor, Link
from .passwords import Checker, create_table
from .schema import Schema
from .store import Store, q


class Auth:
    """Authenticates the auth block of each call; callers hold the store lock."""

    def __init__(
        self,
        store: Store,
        schema: Schema,
        scripts: Mapping[str, str],
        create_script: Callable[[str], None],
        *,
        open_scripts: bool = False,
    ) -> None:
        """Accept ``scripts`` (name -> key); ``create_script`` makes a script's ApiUser."""
        self.store = store
        self.schema = schema
        self.scripts = dict(scripts)
        self.open_scripts = open_scripts
        self._create_script = create_script
        self._passwords = Checker()
        with store.lock:
            create_table(store.conn)
            store.conn.execute(
                "CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, user_type TEXT,"
                " user_id INTEGER, created_at TEXT) WITHOUT ROWID"
            )

    def user(self, type_name: str, where: str, value: Any) -> dict[str, Any] | None:
        """The active user whose ``where`` field is ``value``, as a link."""
        spec = self.schema.entities[type_name]
        row = self.store.conn.execute(
            f"SELECT id, {q(spec.name_field)} FROM {q(type_name)} WHERE {q(where)} = ?"
            " AND retired = 0 ORDER BY id LIMIT 1",
            (value,),
        ).fetchone()
        return None if row is None else {"type": type_name, "id": row[0], "name": row[1]}

    def add_script(self, name: str, key: Any) -> None:
        """Accept ``name``/``key`` from now on, creating the script's ApiUser if needed."""
        if not isinstance(key, str) or not name:
            raise ApiError(f"Can't authenticate script '{name}'", AUTH_ERROR)
        self.scripts[name] = key
        if self.user("ApiUser", "firstname", name) is None:
            self._create_script(name)

    def authenticate(self, auth: dict[str, Any]) -> Actor:
        """The Actor an auth block stands for, or an AuthenticationFault (code 102)."""
        session_uuid = auth.get("session_uuid")
        log = True
        if "script_name" in auth:
            user, log = self._script(auth.get("script_name"), auth.get("script_key"))
        elif "user_login" in auth:
            user = self._person(auth.get("user_login"), auth.get("user_password"))
        elif "session_token" in auth:
            found = self.session_user(auth.get("session_token"))
            if found is None:
                raise ApiError("Session token is invalid or expired", AUTH_ERROR)
            user = found
        else:
            raise ApiError("API requires authentication parameters", AUTH_ERROR)
        sudo = auth.get("sudo_as_login")
        if not sudo:
            return Actor(user, session_uuid, log)
        if user["type"] != "ApiUser":
            raise ApiError(f"The user does not have permission to 'sudo': {sudo}", AUTH_ERROR)
        human = self.user("HumanUser", "login", sudo)
        if human is None:
            raise ApiError(f"sudo_as_login: no active HumanUser with login '{sudo}'", AUTH_ERROR)
        return Actor(human, session_uuid, log, sudo_actual_user=user)

    def _script(self, name: Any, key: Any) -> tuple[Link, bool]:
        if self.open_scripts and isinstance(name, str) and name not in self.scripts:
            self.add_script(name, key)
        user = self.user("ApiUser", "firstname", name) if isinstance(name, str) else None
        if user is None or self.scripts.get(name) != key:
            raise ApiError(f"Can't authenticate script '{name}'", AUTH_ERROR)
        flag = self.store.conn.execute(
            'SELECT generate_event_log_entries FROM "ApiUser" WHERE id = ?', (user["id"],)
        ).fetchone()
        return user, bool(flag and flag[0])

    def _person(self, login: Any, password: Any) -> Link:
        refused = ApiError(f"Can't authenticate user '{login}'", AUTH_ERROR)
        user = self.user("HumanUser", "login", login) if isinstance(login, str) else None
        if user is None or not isinstance(password, str):
            raise refused
        fields = self.schema.entities["HumanUser"].fields
        cols = [c for c in ("sg_status_list", "locked_until") if c in fields]
        row = self.store.conn.execute(
            f'SELECT {", ".join(["id", *map(q, cols)])} FROM "HumanUser" WHERE id = ?',
            (user["id"],),
        ).fetchone()
        state = dict(zip(["id", *cols], row, strict=True))
        if state.get("sg_status_list", "act") != "act":
            raise refused
        locked = state.get("locked_until")
        if locked and locked > utc_now():
            raise ApiError(f"User '{login}' is locked until {locked}", AUTH_ERROR)
        if not self._passwords.check(self.store.conn, "HumanUser", user["id"], password):
            raise refused
        return user

    def new_session(self, user: Link) -> str:
        """A session token standing for ``user`` (get_session_token)."""
        token = secrets.token_hex(16)
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?)",
                (token, user["type"], user["id"], utc_now()),
            )
        return token

    def session_user(self, token: Any) -> Link | None:
        """The active user a session token stands for, or None."""
        row = self.store.conn.execute(
            "SELECT user_type, user_id FROM sessions WHERE token = ?", (str(token),)
        ).fetchone()
        if row is None or self.store.state_of(row[0], row[1]) != 0:
            return None
        return self.store.link_of(row[0], row[1])
