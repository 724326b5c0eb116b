"""Pages and last access: the site's built-in Pages, export_page, and each person's projects.

A new real site has pages (Home, Inbox, My Tasks, Media, ...), each with the time it
was last opened (``last_accessed``); ``ensure_builtin`` gives the local site the same.
``export_page`` answers as a real site does for a page nobody marked "API
exportable" (the local site has no web UI to mark one). ``update_project_last_accessed``
records when a person last worked on a project; ``Project.last_accessed_by_current_user``
reads it for whoever calls (the sudo user for a script with ``sudo_as_login``).
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError, utc_now
from .eventlog import Actor
from .store import Store
from .writes import Writer

BUILTIN_PAGES = (
    ("Home", "home"),
    ("Inbox", "inbox"),
    ("My Tasks", "my_tasks"),
    ("Media", "media"),
)


class Pages:
    """Built-in pages, page export and project access times; callers hold the store lock."""

    def __init__(self, store: Store, writer: Writer) -> None:
        """Create the access table when the database is new."""
        self.store = store
        self.writer = writer
        store.conn.execute(
            "CREATE TABLE IF NOT EXISTS project_access (user_key TEXT, project_id INTEGER,"
            " at TEXT, PRIMARY KEY (user_key, project_id)) WITHOUT ROWID"
        )

    def ensure_builtin(self) -> None:
        """Create the built-in pages once (a site with any Page already has them)."""
        if self.store.schema.entity("Page") is None:
            return
        if self.store.conn.execute('SELECT 1 FROM "Page" LIMIT 1').fetchone():
            return
        system = Actor(None, log_events=False)  # the site's own, like a new real site's
        with self.store.transaction():
            for name, kind in BUILTIN_PAGES:
                items = [
                    {"field_name": "name", "value": name},
                    {"field_name": "page_type", "value": kind},
                ]
                self.writer.create(system, "Page", items, ["id"], server=True)

    def export_page(self, params: Any) -> str:
        """The CSV of a page; refused like a real site refuses a page not marked exportable."""
        p = params if isinstance(params, dict) else {}
        if p.get("page_id") is None:
            raise ApiError("'page_id' missing")
        if p.get("format") is None:
            raise ApiError("'format' missing")
        if p["format"] != "csv":
            raise ApiError(f"Format '{p['format']}' is not supported; the only format is csv")
        raise ApiError(f"Export for Page id={p['page_id']} not available")

    def project_accessed(self, actor: Actor, params: Any) -> dict[str, Any]:
        """update_project_last_accessed: now is when this person last opened the project."""
        p = params if isinstance(params, dict) else {}
        project_id = p.get("project_id")
        if not isinstance(project_id, int) or self.store.state_of("Project", project_id) != 0:
            raise ApiError(f"update_project_last_accessed: no Project with id {project_id!r}")
        user_id = p.get("user_id")
        if user_id is not None:
            if not isinstance(user_id, int) or self.store.state_of("HumanUser", user_id) != 0:
                raise ApiError(f"update_project_last_accessed: no HumanUser with id {user_id!r}")
            user_key = f"HumanUser:{user_id}"
        elif actor.user is not None and actor.user["type"] == "HumanUser":
            user_key = actor.caller
        else:
            raise ApiError(
                "update_project_last_accessed: a script must name the user (or use sudo_as_login)"
            )
        now = utc_now()
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO project_access VALUES (?, ?, ?)",
                (user_key, project_id, now),
            )
        return {"type": "Project", "id": project_id, "last_accessed_by_current_user": now}
