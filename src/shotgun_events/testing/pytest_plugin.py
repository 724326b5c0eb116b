"""The pytest plugin for plugin authors: ``local_site`` and ``plugin_under_test``.

Installed with the package (entry point ``pytest11``), so a plugin author's project
needs only ``pip install shotgun-events`` and pytest. Disable it with
``-p no:shotgun_events``. See docs/testing-plugins.md.

- ``local_site``: a seeded local site for the test (a copy of a database seeded once
  per session) accepting any script name and key, on a studio's own schema with
  ``--sg-schema PATH [--sg-schema-entity PATH]`` (or ini keys ``sg_schema``,
  ``sg_schema_entity``); ``.url``, ``.sg``,
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


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--sg-schema`` / ``--sg-schema-entity`` (or ini keys): local_site on a studio's schema."""
    group = parser.getgroup("shotgun_events", "shotgun_events local site")
    group.addoption(
        "--sg-schema",
        metavar="PATH",
        default=None,
        help="run local_site on a studio's schema: the schema_read() file mockgun's"
        " generate_schema writes (or a JSON dump); ini key sg_schema",
    )
    group.addoption(
        "--sg-schema-entity",
        metavar="PATH",
        default=None,
        help="the schema_entity_read() file beside it; ini key sg_schema_entity",
    )
    parser.addini("sg_schema", "schema_read() file for local_site (relative to the ini file)")
    parser.addini("sg_schema_entity", "schema_entity_read() file for local_site")


def _schema_files(config: pytest.Config) -> tuple[Path, Path | None] | None:
    """The studio schema files asked for: command line first (from where pytest was
    started), then the ini keys (relative to the ini file)."""
    given = config.getoption("sg_schema")
    if given:
        base = config.invocation_params.dir
        entity = config.getoption("sg_schema_entity")
    else:
        given = config.getini("sg_schema")
        entity = config.getini("sg_schema_entity")
        base = config.inipath.parent if config.inipath else config.rootpath
    if not given:
        return None
    return base / given, (base / entity) if entity else None


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a schema file that cannot be used at once, in one line (nothing of it runs)."""
    files = _schema_files(config)
    if files is not None:
        from shotgun_events.site.schemafile import SchemaFileError
        from shotgun_events.site.studio import load_studio_schema

        try:
            load_studio_schema(*files)
        except SchemaFileError as e:
            raise pytest.UsageError(f"--sg-schema: {e}") from None


@pytest.fixture(scope="session")
def shotgun_events_site_template(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Path:
    """The seeded site database every ``local_site`` starts from (made once per session)."""
    from shotgun_events.testing.sitefixture import make_template

    folder = tmp_path_factory.mktemp("shotgun_events_template")
    return make_template(folder, _schema_files(pytestconfig))


@pytest.fixture
def local_site(
    shotgun_events_site_template: Path, tmp_path: Path, pytestconfig: pytest.Config
) -> Iterator[TestSite]:
    """A seeded local site for this test, on 127.0.0.1 (on ``--sg-schema`` if given)."""
    from shotgun_events.testing.sitefixture import TestSite

    folder = tmp_path / "local_site"
    folder.mkdir()
    site = TestSite(shotgun_events_site_template, folder, _schema_files(pytestconfig))
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
            own_credentials=(SCRIPT_NAME, SCRIPT_KEY),
        )
        made.append(harness)
        return harness

    yield load
    for harness in made:
        harness.close()
