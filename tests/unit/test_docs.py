"""The config snippets of the README and the documentation pages work when a user copies them.

Given each ``ini`` block of README.md and docs/*.md that holds daemon
settings, laid over the shipped example config the way a user edits it, the
daemon's loader reads it without an error and without an unknown-key warning
(a comment after a value, a misspelt key or a value out of range in the docs
fails here, not on a user's machine).
"""

from __future__ import annotations

import configparser
import re
import textwrap
from pathlib import Path

import pytest

from shotgun_events.config.load import load_config_with_warnings
from shotgun_events.config.reference import SECTIONS

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "conf" / "shotgunEventDaemon.conf"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^([ \t]*)```ini\n(.*?)^\1```", re.M | re.S)
VARIABLE = re.compile(r"%\((\w+)\)s")
#: Daemon sections: a block with none of them is another tool's (pytest.ini, say).
DAEMON_SECTIONS = tuple(name.removesuffix("NAME") for name, _ in SECTIONS)


def snippets() -> list[tuple[str, str]]:
    """Every ini block of the README and the docs that sets daemon keys: (where, text)."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for number, match in enumerate(BLOCK.finditer(text), 1):
            block = textwrap.dedent(match[2])
            sections = re.findall(r"^\[([^\]]+)\]", block, re.M)
            if any(s.startswith(DAEMON_SECTIONS) for s in sections):
                found.append((f"{document.relative_to(ROOT)} #{number}", block))
    return found


SNIPPETS = snippets()


def test_the_docs_hold_config_snippets() -> None:
    # Given the pages, then there are snippets to check (the pattern still finds them)
    assert len(SNIPPETS) >= 6


@pytest.mark.parametrize(("where", "block"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_config_snippet_loads_over_the_shipped_config(
    where: str, block: str, tmp_path: Path
) -> None:
    # Given the shipped example with the snippet's keys written into it
    merged = configparser.ConfigParser(interpolation=None, strict=True)
    merged.optionxform = str  # type: ignore[assignment,method-assign]
    merged.read_string(SHIPPED.read_text(encoding="utf-8"), source=str(SHIPPED))
    merged.read_string(block, source=where)
    path = tmp_path / "shotgunEventDaemon.conf"
    with path.open("w", encoding="utf-8") as out:
        merged.write(out)
    # and every variable it names set (long enough for a token)
    environ = {name: "0123456789abcdef" for name in VARIABLE.findall(path.read_text())}
    environ["SG_ED_SITE_URL"] = "https://studio.example.com"
    # When the daemon's loader reads it
    config, warnings = load_config_with_warnings(path, environ)
    # Then it loads, and no key of the snippet is unknown
    assert not [w for w in warnings if "unknown" in w], warnings
    assert config.path == path
