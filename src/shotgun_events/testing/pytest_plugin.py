"""The pytest plugin for plugin authors: ``local_site`` and ``plugin_under_test``.

Installed with the package (entry point ``pytest11``), so a plugin author's project
needs only ``pip install shotgun-events`` and pytest. Disable it with
``-p no:shotgun_events``. See docs/testing-plugins.md.

- ``local_site``: a seeded local site for the test (a copy of a database seeded once
  per session) accepting any script name and key; ``.url``, ``.sg``,
  ``.change(type, id, **fields)`` -> events, ``.create(type, **fields)`` ->
  (entity, events), ``.delete``, ``.revive``, ``.events_after(id)``.
- ``plugin_under_test``: ``plugin = plugin_under_test(path)`` loads the file with the
  daemon's loader, connected to ``local_site``; ``deliver(event)``,
  ``process_new_events()``, ``replay(path)``, ``writes``, ``errors``, ``logs``,
  ``registered``, ``active``, ``reload()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from shotgun_events.testing.harness import PluginHarness
    from shotgun_events.testing.sitefixture import TestSite

PluginFactory = Callable[..., "PluginHarness"]


@pytest.fixture(scope="session")
def shotgun_events_site_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded site database every ``local_site`` starts from (made once per session)."""
    from shotgun_events.testing.sitefixture import make_template

    return make_template(tmp_path_factory.mktemp("shotgun_events_template"))


@pytest.fixture
def local_site(shotgun_events_site_template: Path, tmp_path: Path) -> Iterator[TestSite]:
    """A seeded local site for this test, on 127.0.0.1, stopped afterwards."""
    from shotgun_events.testing.sitefixture import TestSite

    folder = tmp_path / "local_site"
    folder.mkdir()
    site = TestSite(shotgun_events_site_template, folder)
    try:
        yield site
    finally:
        site.close()


@pytest.fixture
def plugin_under_test(local_site: TestSite) -> Iterator[PluginFactory]:
    """Load a plugin file as the daemon does, connected to ``local_site``."""
    from shotgun_events.testing.harness import PluginHarness, RecordingConnections, site_source
    from shotgun_events.testing.recording import WriteLog
    from shotgun_events.testing.sitefixture import SCRIPT_KEY, SCRIPT_NAME

    made: list[PluginHarness] = []

    def load(path: str | Path) -> PluginHarness:
        writes = WriteLog()
        harness = PluginHarness(
            Path(path),
            RecordingConnections(local_site.url, writes, dry=False),
            source=site_source(local_site.url, SCRIPT_NAME, SCRIPT_KEY),
            writes_log=writes,
            cursor=local_site.newest_event_id(),
        )
        made.append(harness)
        return harness

    yield load
    for harness in made:
        harness.close()
