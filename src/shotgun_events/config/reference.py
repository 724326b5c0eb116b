"""The configuration reference page, rendered from the defaults table and the key descriptions.

The keys and their defaults come from the defaults table (``DEFAULTS`` and
``REQUIRED`` in model.py, which merges the ``[http]``, ``[webhooks]`` and
``[celery]`` sections) and from ``PLUGIN_KEYS`` for ``[plugin:NAME]``
sections; descriptions.py says what each one means. ``render()`` refuses a
key without a description and a description of a key the daemon does not
read, so the page built from it (``docs/configuration.md``, made by the
MkDocs hook at build time) cannot drift from the code.
"""

from __future__ import annotations

from shotgun_events.config.descriptions import (
    DESCRIPTIONS,
    ORIGINAL_KEYS,
    PLUGIN_SECTION,
    SECTIONS,
    KeyDoc,
)
from shotgun_events.config.model import DEFAULTS, REQUIRED
from shotgun_events.config.plugin_sections import PLUGIN_KEYS
from shotgun_events.config.table import Key

__all__ = ["ConfigReferenceError", "documented_keys", "render", "undocumented", "unknown"]


class ConfigReferenceError(Exception):
    """The descriptions do not match the keys the daemon reads."""


def documented_keys() -> frozenset[Key]:
    """Every key the daemon reads: the defaults table, the required keys, ``[plugin:NAME]``."""
    return frozenset([*DEFAULTS, *REQUIRED, *((PLUGIN_SECTION, key) for key in PLUGIN_KEYS)])


def undocumented() -> list[Key]:
    """Keys the daemon reads that have no description."""
    return sorted(documented_keys() - set(DESCRIPTIONS))


def unknown() -> list[Key]:
    """Described keys that the daemon does not read (a removed or misspelt key)."""
    return sorted(set(DESCRIPTIONS) - documented_keys())


def render() -> str:
    """Return the reference page as Markdown: one table per section (key, default, meaning)."""
    problems = [f"[{s}] {k}: no description" for s, k in undocumented()]
    problems += [f"[{s}] {k}: described but not a key the daemon reads" for s, k in unknown()]
    problems += [f"[{s}]: not a section of the page" for s in _unplaced_sections()]
    if problems:
        raise ConfigReferenceError(
            "config/descriptions.py does not match the config's keys: "
            + "; ".join(problems)
            + "; add or remove the entry in its DESCRIPTIONS"
        )
    lines = [
        "# Configuration reference",
        "",
        "Every key the daemon reads, by section, generated from its defaults table, so this "
        "page lists exactly what the code reads. How values are written (environment "
        "variables, relative paths, booleans) and where the file is found: [The config "
        "file](config-file.md). The annotated example is `conf/shotgunEventDaemon.conf`.",
        "",
        "Every key of the original shotgunEvents is accepted with the same meaning; keys "
        "marked **new** exist only here (the original ignores them). An empty value means the "
        "default.",
    ]
    for section, intro in SECTIONS:
        anchor = "plugin-name" if section == PLUGIN_SECTION else section
        lines += ["", f"## [{section}] {{ #{anchor} }}", "", intro, ""]
        lines += ["| key | default | meaning |", "| --- | --- | --- |"]
        for (where, key), doc in DESCRIPTIONS.items():
            if where == section:
                default, meaning = _default(where, key, doc), _meaning(where, key, doc)
                lines.append(f"| `{key}` | {default} | {meaning} |")
    return "\n".join(lines) + "\n"


def _default(section: str, key: str, doc: KeyDoc) -> str:
    """The default as shown: the table's value whenever it has one, so it cannot drift."""
    if (section, key) in REQUIRED:
        return "required"
    value = DEFAULTS.get((section, key), "")
    if value:
        return f"`{value}`"
    return doc.shown_default or "empty"


def _meaning(section: str, key: str, doc: KeyDoc) -> str:
    new = "" if (section, key) in ORIGINAL_KEYS else "**new**. "
    return new + doc.text.replace("|", "\\|")


def _unplaced_sections() -> list[str]:
    placed = {section for section, _ in SECTIONS}
    return sorted({section for section, _ in DESCRIPTIONS} - placed)
