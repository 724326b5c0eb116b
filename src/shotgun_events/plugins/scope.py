"""Which events a plugin's callbacks may see: its projects, and not its own script's writes.

Two rules, each set in ``[plugin:NAME]`` (``projects``, ``ignore_own_events``)
or asked for in code (``reg.setProjects``, ``reg.setIgnoreOwnEvents``); the
config wins. An event outside the scope is not delivered and counts as
handled, so the cursor moves past it; ``Scope.skipped`` counts them for
``status``.

- ``projects``: ids or names; names are resolved to ids once (the first time
  the plugin needs them). An event without a project is outside any scope.
- ``ignore_own_events``: an event whose ``user`` is the ApiUser of the
  callback's script name is skipped (the ApiUser is looked up once per
  script). This only sees writes the site logs, i.e. when the ApiUser has
  ``generate_event_log_entries`` on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from shotgun_events.config.plugin_sections import PluginSettings
from shotgun_events.events import Event
from shotgun_events.plugins.registrar import Callback

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.scope")

OUT_OF_SCOPE = "other_projects"
OWN_EVENTS = "own_events"


class Lookup(Protocol):
    """The site questions the scope asks, once per name."""

    def project_id(self, name: str) -> int | None:
        """The id of the project with this name, None if there is none."""
        ...

    def api_user_id(self, script_name: str) -> int | None:
        """The id of the ApiUser a script acts as, None if there is none."""
        ...


class SiteLookup:
    """``Lookup`` through one ``shotgun_api3`` connection, made on first use."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._sg: Any = None

    def _find_one(self, entity: str, filters: list[list[Any]]) -> dict[str, Any] | None:
        if self._sg is None:
            self._sg = self._connect()
        found: dict[str, Any] | None = self._sg.find_one(entity, filters, ["id"])
        return found

    def project_id(self, name: str) -> int | None:
        row = self._find_one("Project", [["name", "is", name]])
        return None if row is None else int(row["id"])

    def api_user_id(self, script_name: str) -> int | None:
        # A script's ApiUser carries the script name as its firstname on a site.
        row = self._find_one("ApiUser", [["firstname", "is", script_name]])
        return None if row is None else int(row["id"])

    def close(self) -> None:
        if self._sg is not None:
            self._sg.close()
            self._sg = None


@dataclass
class _Counts:
    by_reason: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)


class Scope:
    """Decide per (plugin, callback, event) whether the event is delivered; count the rest."""

    def __init__(
        self,
        *,
        settings: Mapping[str, PluginSettings],
        lookup: Lookup,
        config_path: object = "the config",
    ) -> None:
        self._settings = settings
        self._lookup = lookup
        self._config_path = config_path
        self._lock = threading.Lock()  # parallel workers ask from their own threads
        self._projects: dict[tuple[int | str, ...], frozenset[int]] = {}
        self._users: dict[str, int | None] = {}
        self._counts: dict[str, _Counts] = {}

    def admits(self, plugin: Plugin, callback: Callback, event: Event) -> bool:
        """True if ``callback`` of ``plugin`` may get ``event``; a refusal is counted."""
        try:
            return self._admits(plugin, callback, event)
        except Exception as exc:
            # A wrong delivery can be undone by the plugin; a skipped event is gone.
            log.error(
                "plugin %s: cannot check its scope on the site (%s); delivering event %s "
                "and asking again at the next event",
                plugin.name,
                exc,
                event.get("id"),
            )
            return True

    def _admits(self, plugin: Plugin, callback: Callback, event: Event) -> bool:
        # Per callback and event, on the hot path: one look-up of the plugin's section.
        section = self._settings.get(plugin.name)
        given = plugin.projects
        own = plugin.ignore_own_events
        if section is not None:
            given = given if section.projects is None else section.projects
            own = own if section.ignore_own_events is None else section.ignore_own_events
        if given and _project_id(event) not in self._project_ids(plugin.name, given):
            self._count(plugin.name, OUT_OF_SCOPE, event)
            return False
        if own and self._is_own(callback.script_name, event):
            self._count(plugin.name, OWN_EVENTS, event)
            return False
        return True

    def skipped(self) -> dict[str, dict[str, int]]:
        """Events not delivered, per plugin name and reason (for ``status``)."""
        with self._lock:
            return {name: dict(c.by_reason) for name, c in self._counts.items()}

    def _project_ids(self, plugin: str, given: tuple[int | str, ...]) -> frozenset[int]:
        with self._lock:
            ids = self._projects.get(given)
            if ids is None:
                ids = self._resolve(plugin, given)
                self._projects[given] = ids
        return ids

    def _resolve(self, plugin: str, given: tuple[int | str, ...]) -> frozenset[int]:
        ids: set[int] = set()
        for item in given:
            if isinstance(item, int):
                ids.add(item)
                continue
            found = self._lookup.project_id(item)
            if found is None:
                log.error(
                    "plugin %s: no project named %r on the site; its events cannot match "
                    "(fix 'projects' in [plugin:%s] of %s, or the plugin's setProjects)",
                    plugin,
                    item,
                    plugin,
                    self._config_path,
                )
            else:
                ids.add(found)
        log.info("plugin %s gets events of project(s) %s only", plugin, sorted(ids))
        return frozenset(ids)

    def _is_own(self, script_name: str, event: Event) -> bool:
        user = event.get("user")
        if not isinstance(user, dict) or user.get("type") != "ApiUser":
            return False
        with self._lock:
            if script_name not in self._users:
                user_id = self._lookup.api_user_id(script_name)
                if user_id is None:
                    log.warning(
                        "no ApiUser for script %r on the site: ignore_own_events cannot "
                        "recognise its events",
                        script_name,
                    )
                self._users[script_name] = user_id
            own = self._users[script_name]
        return own is not None and user.get("id") == own

    def _count(self, plugin: str, reason: str, event: Event) -> None:
        event_id = int(event.get("id") or 0)
        with self._lock:
            counts = self._counts.setdefault(plugin, _Counts())
            # Several callbacks of one plugin may refuse the same event: count it once.
            if counts.last.get(reason) == event_id:
                return
            counts.last[reason] = event_id
            counts.by_reason[reason] = counts.by_reason.get(reason, 0) + 1


def _project_id(event: Event) -> int | None:
    project = event.get("project")
    if isinstance(project, dict) and project.get("id") is not None:
        return int(project["id"])
    return None
