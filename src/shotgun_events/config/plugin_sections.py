"""Per-plugin sections ``[plugin:NAME]``: settings an operator gives one plugin without its code.

A key left out means "not set here": the plugin's own request in code (a
Registrar method) or the daemon's default applies. What the config sets wins
over what the plugin asks for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from shotgun_events.config.ini import IniReader

SECTION_PREFIX = "plugin:"

#: Every key a ``[plugin:NAME]`` section may hold.
PLUGIN_KEYS: tuple[str, ...] = (
    "projects",
    "ignore_own_events",
    "concurrency",
    "order_by",
    "executor",
    "max_calls_per_second",
)
ORDER_BY_NAMED = ("entity", "project", "none")
EXECUTORS = ("local", "celery")
MAX_CONCURRENCY = 256
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class PluginSettings:
    """One ``[plugin:NAME]`` section; None means the key is not set there."""

    name: str
    #: Project ids (int) or names (str) whose events the plugin gets; None: every project.
    projects: tuple[int | str, ...] | None = None
    ignore_own_events: bool | None = None
    concurrency: int | None = None
    #: ``entity``, ``project``, ``none`` or a dotted field of the event (``meta.entity_id``).
    order_by: str | None = None
    executor: str | None = None
    #: The plugin's ceiling on site calls per second (0: none), over ``[daemon]``'s.
    max_calls_per_second: float | None = None


def plugin_section_names(sections: list[str]) -> list[str]:
    """Return the sections of a parsed file that are ``[plugin:NAME]`` sections."""
    return [s for s in sections if s.lower().startswith(SECTION_PREFIX)]


def known_plugin_keys(sections: list[str]) -> frozenset[tuple[str, str]]:
    """Return the (section, key) pairs the reader should accept for the file's plugin sections."""
    return frozenset((s, k) for s in plugin_section_names(sections) for k in PLUGIN_KEYS)


def read_plugin_sections(ini: IniReader) -> Mapping[str, PluginSettings]:
    """Read every ``[plugin:NAME]`` section, keyed by plugin name; bad values raise ConfigError."""
    found: dict[str, PluginSettings] = {}
    for section in plugin_section_names(ini.parser.sections()):
        name = section[len(SECTION_PREFIX) :].strip()
        if not name:
            raise ini.fail(
                section, "", "a plugin name after 'plugin:'", section, "write [plugin:FILENAME]"
            )
        if name in found:
            raise ini.fail(
                section, "", "each plugin once", section, f"merge the [plugin:{name}] sections"
            )
        found[name] = PluginSettings(
            name=name,
            projects=_projects(ini, section),
            ignore_own_events=ini.boolean(section, "ignore_own_events")
            if _given(ini, section, "ignore_own_events")
            else None,
            concurrency=ini.integer(section, "concurrency", 1, MAX_CONCURRENCY)
            if _given(ini, section, "concurrency")
            else None,
            order_by=_order_by(ini, section),
            executor=ini.choice(section, "executor", EXECUTORS)
            if _given(ini, section, "executor")
            else None,
            max_calls_per_second=ini.per_second(section, "max_calls_per_second")
            if _given(ini, section, "max_calls_per_second")
            else None,
        )
    return MappingProxyType(found)


def unknown_plugin_warnings(
    settings: Mapping[str, PluginSettings], loaded: set[str], source: object
) -> list[str]:
    """Return one warning per ``[plugin:NAME]`` section that names no loaded plugin."""
    return [
        f"{source}: [plugin:{name}]: no plugin named {name!r} is loaded; "
        "the section is ignored (the name is the plugin's file name without .py)"
        for name in sorted(settings)
        if name not in loaded
    ]


def _given(ini: IniReader, section: str, key: str) -> bool:
    return ini.has(section, key) and bool(ini.raw(section, key))


def _projects(ini: IniReader, section: str) -> tuple[int | str, ...] | None:
    if not _given(ini, section, "projects"):
        return None
    value = ini.text(section, "projects")
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise ini.fail(
            section,
            "projects",
            "a comma-separated list of project ids or names",
            value,
            "remove the empty item, e.g. 'projects = 122, Big Show'",
        )
    return tuple(int(item) if item.isdigit() else item for item in items)


def _order_by(ini: IniReader, section: str) -> str | None:
    if not _given(ini, section, "order_by"):
        return None
    value = ini.text(section, "order_by")
    if value.lower() in ORDER_BY_NAMED:
        return value.lower()
    if _DOTTED.match(value):
        return value
    raise ini.fail(
        section,
        "order_by",
        "entity, project, none or a dotted field of the event",
        value,
        "write e.g. 'order_by = entity' or 'order_by = meta.entity_id'",
    )
