"""PluginLoader with a watcher: reported paths, settling paths, helper modules, renames."""

from __future__ import annotations

import logging
import os
import py_compile
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shotgun_events.plugins.loader import Plugin, PluginLoader
from shotgun_events.plugins.watcher import PluginWatcher
from shotgun_events.testing import make_event

# A plugin whose callback args carry what it saw at load time.
USES = """
{imports}
def registerCallbacks(reg):
    reg.registerCallback("s", "k", cb, None, {value})
def cb(sg, logger, event, args):
    return args
"""


def write(path: Path, text: str, *, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def plugin_using(path: Path, imports: str, value: str) -> Path:
    return write(path, USES.format(imports=imports, value=value))


def same_stat_rewrite(path: Path, text: str) -> None:
    """Replace the content keeping size and mtime_ns: what stat-only detection cannot see."""
    st = path.stat()
    assert len(text.encode()) == st.st_size
    write(path, text, mtime_ns=st.st_mtime_ns)


def args(plugin: Plugin) -> object:
    [cb] = plugin.callbacks
    return cb.args


def names(plugins: list[Plugin]) -> list[str]:
    return [p.name for p in plugins]


@pytest.fixture(autouse=True)
def clean_imports(tmp_path: Path) -> Iterator[None]:
    """Helper modules share sys.modules across tests: drop this test's ones afterwards."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "plugins").mkdir()
    return tmp_path / "plugins"


@pytest.fixture
def loader(folder: Path) -> PluginLoader:
    return PluginLoader(paths=[folder])


# --- reported and settling paths -------------------------------------------------------------


def test_reported_same_size_same_mtime_edit_is_reloaded(folder: Path, loader: PluginLoader) -> None:
    # Given a loaded plugin
    path = plugin_using(folder / "p.py", "", "'v1'")
    loader.scan()
    [plugin] = loader.plugins
    # When its content changes keeping size and mtime_ns
    same_stat_rewrite(path, USES.format(imports="", value="'v2'"))
    # Then a stat-only scan cannot see it (the documented hole)...
    assert not loader.scan()
    # ...but once the watcher reports the path, the content hash does
    result = loader.scan(changed=[path])
    assert result.reloaded == [plugin] and args(plugin) == "v2"


def test_reported_path_with_unchanged_content_is_not_reloaded(
    folder: Path, loader: PluginLoader
) -> None:
    # Given a loaded plugin switched off by a callback error
    path = plugin_using(folder / "p.py", "", "'v1'")
    loader.scan()
    [plugin] = loader.plugins
    plugin.deactivate("cb raised on event 3")
    generation = plugin.generation
    # When the watcher reports it but neither stat nor content changed (chmod, same bytes)
    path.chmod(0o600)
    result = loader.scan(changed=[path])
    # Then nothing is reloaded: it stays off
    assert not result and plugin.generation == generation and not plugin.active


def test_touch_still_revives_a_plugin_even_when_reported(
    folder: Path, loader: PluginLoader
) -> None:
    path = plugin_using(folder / "p.py", "", "'v1'")
    loader.scan()
    [plugin] = loader.plugins
    plugin.deactivate("cb raised on event 3")
    # When the operator touches it (same content, new mtime), reported or not
    os.utime(path, ns=(path.stat().st_mtime_ns + 1_000_000_000,) * 2)
    # Then the stat rule reloads it
    assert loader.scan(changed=[path]).reloaded == [plugin] and plugin.active


def test_settling_paths_are_left_alone_until_they_settle(
    folder: Path, loader: PluginLoader
) -> None:
    # Given two loaded plugins
    a = plugin_using(folder / "a.py", "", "'v1'")
    b = plugin_using(folder / "b.py", "", "'v1'")
    loader.scan()
    plugin_a, plugin_b = loader.plugins
    # When a is half written, b is mid-rename (gone for now) and c is being created
    write(a, "def registerCallbacks(reg):\n    reg.registerCal")
    b.unlink()
    c = plugin_using(folder / "c.py", "", "'v1'")
    result = loader.scan(settling=[a, b, c])
    # Then nothing changes while they settle
    assert not result and loader.plugins == [plugin_a, plugin_b]
    assert plugin_a.active and args(plugin_a) == "v1"
    # When they have settled / Then the scan takes them as they are
    plugin_using(a, "", "'v2'")
    result = loader.scan(changed=[a, b, c])
    assert result.reloaded == [plugin_a] and args(plugin_a) == "v2"
    assert result.removed == [plugin_b] and names(result.added) == ["c"]


def test_rename_is_a_new_plugin_and_the_log_says_so(
    folder: Path, loader: PluginLoader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="engine.loader")
    old = plugin_using(folder / "old.py", "", "'v1'")
    loader.scan()
    [before] = loader.plugins
    # When the file is renamed
    new = old.rename(folder / "new.py")
    result = loader.scan(changed=[old, new])
    # Then the old name is removed and the new one added, as a new plugin
    assert result.removed == [before] and names(result.added) == ["new"]
    assert result.added[0] is not before
    assert "plugin new looks like plugin old renamed" in caplog.text


# --- helper modules ----------------------------------------------------------------------------


@pytest.fixture
def common(folder: Path) -> Path:
    """A helper package: ``_common/__init__.py`` re-exports ``_common/util.py``."""
    write(folder / "_common" / "__init__.py", "from . import util\nNAME = 'common'\n")
    return write(folder / "_common" / "util.py", "VALUE = 'v1'\n")


def test_helper_change_reloads_exactly_its_importers_with_the_new_version(
    folder: Path, loader: PluginLoader, common: Path
) -> None:
    # Given three plugins: two import the helper (one through the package), one does not
    plugin_using(folder / "a.py", "from _common.util import VALUE", "VALUE")
    plugin_using(folder / "b.py", "import _common", "_common.util.VALUE")
    plugin_using(folder / "c.py", "", "'own'")
    loader.scan()
    a, b, _ = loader.plugins
    assert [args(p) for p in loader.plugins] == ["v1", "v1", "own"]
    old_util = sys.modules["_common.util"]
    # When the helper changes with the same size and mtime, and the watcher reports it
    same_stat_rewrite(common, "VALUE = 'v2'\n")
    result = loader.scan(changed=[common])
    # Then its importers are reloaded, in plugin order, with the new version; c is not
    assert result.reloaded == [a, b] and not result.added and not result.removed
    assert [args(p) for p in loader.plugins] == ["v2", "v2", "own"]
    # And sys.modules holds no stale entry: package and submodule are the new ones
    util = sys.modules["_common.util"]
    assert util is not old_util and util.VALUE == "v2"
    assert sys.modules["_common"].util is util


@pytest.mark.parametrize("init", [None, ""], ids=["namespace-package", "empty-init"])
def test_from_package_import_module_gets_the_new_module_after_a_change(
    folder: Path, loader: PluginLoader, init: str | None
) -> None:
    # Given a helper package that does not import its submodule itself (a namespace
    # package or an empty __init__), and a plugin using ``from package import module``
    package = "_ns_helpers" if init is None else "_pkg_helpers"  # namespace packages outlive tests
    if init is not None:
        write(folder / package / "__init__.py", init)
    util = write(folder / package / "util.py", "VALUE = 'v1'\n")
    plugin_using(folder / "a.py", f"from {package} import util", "util.VALUE")
    loader.scan()
    [a] = loader.plugins
    assert args(a) == "v1"
    # When the submodule changes
    write(util, "VALUE = 'version 2'\n")
    # Then the importer is reloaded with the new module, not the package's stale attribute
    assert loader.scan(changed=[util]).reloaded == [a] and args(a) == "version 2"
    assert sys.modules[package].util is sys.modules[f"{package}.util"]


def test_stale_bytecode_of_a_helper_is_never_used(
    folder: Path, loader: PluginLoader, common: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a __pycache__ entry for the helper, as an earlier run writing bytecode left it
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    py_compile.compile(str(common), doraise=True)
    plugin_using(folder / "a.py", "from _common.util import VALUE", "VALUE")
    loader.scan()
    [a] = loader.plugins
    # When the helper changes within the same mtime and size (the .pyc still looks valid)
    same_stat_rewrite(common, "VALUE = 'v2'\n")
    # Then the new source runs, not the cached bytecode
    assert loader.scan(changed=[common]).reloaded == [a] and args(a) == "v2"


def test_helper_stat_change_is_found_without_a_watcher(
    folder: Path, loader: PluginLoader, common: Path
) -> None:
    plugin_using(folder / "a.py", "import _common", "_common.util.VALUE")
    plugin_using(folder / "b.py", "", "'own'")
    loader.scan()
    a, _ = loader.plugins
    # When only the package's submodule changes (new size)
    write(common, "VALUE = 'version 2'\n")
    # Then the next plain scan reloads the importer through the package
    assert loader.scan().reloaded == [a] and args(a) == "version 2"
    assert not loader.scan()


def test_helper_change_while_the_importer_settles_reloads_it_afterwards(
    folder: Path, loader: PluginLoader, common: Path
) -> None:
    path = plugin_using(folder / "a.py", "from _common.util import VALUE", "VALUE")
    loader.scan()
    [a] = loader.plugins
    # When the helper changes while the plugin file is being written (same bytes in the end)
    write(common, "VALUE = 'version 2'\n")
    assert not loader.scan(changed=[common], settling=[path])
    # Then once it settled, unchanged, it is still reloaded for its helper
    assert loader.scan(changed=[path]).reloaded == [a] and args(a) == "version 2"
    assert not loader.scan()


def test_package_init_change_reloads_importers(
    folder: Path, loader: PluginLoader, common: Path
) -> None:
    plugin_using(folder / "a.py", "import _common", "_common.NAME + _common.util.VALUE")
    loader.scan()
    [a] = loader.plugins
    write(folder / "_common" / "__init__.py", "from . import util\nNAME = 'pkg-'\n")
    assert loader.scan().reloaded == [a] and args(a) == "pkg-v1"


def test_helper_path_module_change_reloads_its_importer(tmp_path: Path, folder: Path) -> None:
    # Given a helper path outside the plugin folders, put on sys.path by the loader
    shared = tmp_path / "shared"
    lib = write(shared / "studio_lib_x.py", "LEVEL = 1\n")
    plugin_using(folder / "a.py", "import studio_lib_x", "studio_lib_x.LEVEL")
    plugin_using(folder / "b.py", "", "0")
    loader = PluginLoader(paths=[folder], helper_paths=[shared])
    loader.scan()
    a, _ = loader.plugins
    assert a.active and args(a) == 1
    # When the helper changes
    same_stat_rewrite(lib, "LEVEL = 2\n")
    # Then only its importer is reloaded
    assert loader.scan(changed=[lib]).reloaded == [a] and args(a) == 2


def test_broken_helper_switches_importers_off_until_it_is_fixed(
    folder: Path, loader: PluginLoader, common: Path
) -> None:
    plugin_using(folder / "a.py", "from _common.util import VALUE", "VALUE")
    loader.scan()
    [a] = loader.plugins
    # When the helper gets a syntax error / Then the importer is off, saying why
    write(common, "VALUE = (\n")
    assert loader.scan().reloaded == [a] and not a.active
    assert "SyntaxError" in (a.reason or "")
    # When the helper is fixed / Then the importer comes back without touching it
    write(common, "VALUE = 'fixed'\n")
    assert loader.scan().reloaded == [a] and a.active and args(a) == "fixed"


def test_lazily_imported_helper_is_evicted_but_its_plugin_not_reloaded(
    folder: Path, loader: PluginLoader
) -> None:
    # Given a plugin importing a helper only inside its callback (not tracked at load time)
    lazy = write(folder / "_lazy_helper_x.py", "VALUE = 'v1'\n")
    write(
        folder / "p.py",
        """
        def registerCallbacks(reg):
            reg.registerCallback("s", "k", cb, None)
        def cb(sg, logger, event, args):
            import _lazy_helper_x
            return _lazy_helper_x.VALUE
        """,
    )
    loader.scan()
    [plugin] = loader.plugins
    [cb] = plugin.callbacks
    assert cb.func(None, cb.logger, make_event(), None) == "v1"
    # When the helper changes and the watcher reports it
    same_stat_rewrite(lazy, "VALUE = 'v2'\n")
    result = loader.scan(changed=[lazy])
    # Then the plugin is not reloaded, but its next import gets the new code
    assert not result
    assert cb.func(None, cb.logger, make_event(), None) == "v2"


def test_helpers_imported_before_the_first_scan_are_reimported(folder: Path, common: Path) -> None:
    # Given a helper already imported (by a previous loader before a config reload)
    sys.path.insert(0, str(folder))
    import _common  # type: ignore[import-not-found]  # noqa: F401

    first = sys.modules["_common.util"]
    # When a new loader scans / Then its plugins get fresh, tracked helper modules
    plugin_using(folder / "a.py", "import _common", "_common.util.VALUE")
    loader = PluginLoader(paths=[folder])
    loader.scan()
    assert sys.modules["_common.util"] is not first
    assert loader.plugins[0].helper_files == {common, folder / "_common" / "__init__.py"}


def test_watcher_and_loader_together_reload_on_a_helper_edit(
    folder: Path, loader: PluginLoader, common: Path
) -> None:
    # Given a running watcher and a loaded plugin using the helper package
    plugin_using(folder / "a.py", "from _common import util", "util.VALUE")
    loader.scan()
    [a] = loader.plugins
    with PluginWatcher([folder], debounce=0.05) as watcher:
        # When the helper is edited in place
        same_stat_rewrite(common, "VALUE = 'v2'\n")
        # Then the watcher wakes the loop and the scan of the due paths reloads the plugin
        due: set[Path] = set()
        deadline = time.monotonic() + 10
        while common not in due and time.monotonic() < deadline:
            if watcher.changed.wait(0.05):
                due |= watcher.take_due()
        assert common in due
        assert loader.scan(changed=due, settling=watcher.pending()).reloaded == [a]
        assert args(a) == "v2"
