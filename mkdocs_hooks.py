"""MkDocs hook: the configuration reference page, generated from the daemon's config at build time.

``docs/configuration.md`` is never a file in the repository: ``on_files`` adds
it from ``shotgun_events.config.reference.render()``, which reads the keys and
defaults from the config's defaults table and refuses a key without a
description. The page is rendered from this checkout's ``src/`` (not from an
installed copy that may be older), so a build always shows the code beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

SRC = Path(__file__).resolve().parent / "src"
PAGE = "configuration.md"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated reference page; a hand-written one in docs/ is an error."""
    if files.get_file_from_path(PAGE) is not None:
        raise PluginError(
            f"docs/{PAGE} is generated from src/shotgun_events/config/descriptions.py; "
            "delete the file and edit the descriptions there"
        )
    # `mkdocs serve` rebuilds in the same process when src/shotgun_events/config changes:
    # import the edited modules, not the ones the previous build left in sys.modules.
    for name in [m for m in sys.modules if m.partition(".")[0] == "shotgun_events"]:
        del sys.modules[name]
    sys.path.insert(0, str(SRC))
    try:
        from shotgun_events.config.reference import ConfigReferenceError, render
    finally:
        sys.path.remove(str(SRC))
    try:
        content = render()
    except ConfigReferenceError as error:
        raise PluginError(str(error)) from error
    files.append(File.generated(config, PAGE, content=content))
    return files
