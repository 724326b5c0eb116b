"""The configuration reference page: one description per key the daemon reads, none for others.

The documentation site's ``configuration.md`` is rendered at build time by
``shotgun_events.config.reference.render()`` from the defaults table; these
tests fail when a key is added without a description, when a description
names a key the daemon does not read, and when the page would show another
default than the one the daemon uses.
"""

from __future__ import annotations

import re

import pytest

from shotgun_events.config import reference
from shotgun_events.config.descriptions import (
    DESCRIPTIONS,
    ORIGINAL_KEYS,
    PLUGIN_SECTION,
    KeyDoc,
)
from shotgun_events.config.model import DEFAULTS, REQUIRED
from shotgun_events.config.plugin_sections import PLUGIN_KEYS
from shotgun_events.config.reference import (
    ConfigReferenceError,
    documented_keys,
    render,
    undocumented,
    unknown,
)
from shotgun_events.config.table import DefaultsTable

HEADING = re.compile(r"^## \[(?P<section>[^\]]+)\] \{ #[a-z-]+ \}$")
ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<default>.+?) \| (?P<meaning>.+) \|$")


def rows(page: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Parse the page's tables into (section, key) -> (default, meaning)."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    section = ""
    for line in page.splitlines():
        if heading := HEADING.match(line):
            section = heading["section"]
        elif row := ROW.match(line):
            assert (section, row["key"]) not in found, f"[{section}] {row['key']} listed twice"
            found[(section, row["key"])] = (row["default"], row["meaning"])
    return found


def test_every_key_the_daemon_reads_has_a_description() -> None:
    # Given the defaults table, the required keys and the [plugin:NAME] keys
    # Then each has a description (add it to DESCRIPTIONS in config/descriptions.py)
    assert undocumented() == []
    assert {(PLUGIN_SECTION, key) for key in PLUGIN_KEYS} <= set(DESCRIPTIONS)


def test_every_description_names_a_key_the_daemon_reads() -> None:
    # Given the descriptions
    # Then none is of a key the daemon does not read (a removed or misspelt key)
    assert unknown() == []
    assert set(DESCRIPTIONS) == documented_keys()


def test_the_page_lists_every_key_once_with_the_default_the_daemon_uses() -> None:
    # Given the rendered page
    page = rows(render())
    # Then every key is a row of its section's table, and nothing else is
    assert set(page) == documented_keys()
    for (section, key), (default, meaning) in page.items():
        # with the required mark or the table's own value wherever the table has one
        if (section, key) in REQUIRED:
            assert default == "required", (section, key)
        elif DEFAULTS.get((section, key)):
            assert default == f"`{DEFAULTS[(section, key)]}`", (section, key)
        else:
            assert default == (DESCRIPTIONS[(section, key)].shown_default or "empty")
        # and the keys the original daemon does not read are marked new
        assert meaning.startswith("**new**.") == ((section, key) not in ORIGINAL_KEYS), key


def test_a_shown_default_only_explains_an_empty_one() -> None:
    # Given the keys whose default the page shows in words
    explained = [key for key, doc in DESCRIPTIONS.items() if doc.shown_default]
    # Then none has a value in the table (the page shows the table's value there) or is required
    assert explained
    for key in explained:
        assert DEFAULTS.get(key, "") == "" and key not in REQUIRED, key


def test_the_original_keys_are_keys_the_daemon_reads() -> None:
    # Given the keys the original daemon reads (compatibility.md's table)
    # Then each is a key the daemon reads here too, and the new ones are not among them
    assert documented_keys() >= ORIGINAL_KEYS
    assert len(ORIGINAL_KEYS) == 26
    assert ("daemon", "dispatch") not in ORIGINAL_KEYS


def test_a_key_added_without_a_description_stops_the_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a new key in the defaults table and no description for it
    table = DefaultsTable({**DEFAULTS, ("daemon", "brand_new_knob"): "7"})
    monkeypatch.setattr(reference, "DEFAULTS", table)
    # When the page is rendered (as the documentation build does)
    with pytest.raises(ConfigReferenceError) as raised:
        render()
    # Then it refuses, naming the key and the fix
    assert "[daemon] brand_new_knob: no description" in str(raised.value)
    assert "DESCRIPTIONS" in str(raised.value)


def test_a_description_of_a_key_that_does_not_exist_stops_the_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a description of a key the daemon does not read, and one key left without any
    descriptions = dict(DESCRIPTIONS)
    descriptions[("daemon", "fetch_intervall")] = KeyDoc("A typo.")
    del descriptions[("celery", "done_ttl")]
    monkeypatch.setattr(reference, "DESCRIPTIONS", descriptions)
    # When rendered
    with pytest.raises(ConfigReferenceError) as raised:
        render()
    # Then both are named
    message = str(raised.value)
    assert "[daemon] fetch_intervall: described but not a key the daemon reads" in message
    assert "[celery] done_ttl: no description" in message
