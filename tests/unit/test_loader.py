"""PluginLoader: finding plugin files, importing, reloading on change, switching broken ones off."""

from __future__ import annotations

import logging
import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shotgun_events.errors import PluginError
from shotgun_events.events import EVENT_FIELDS
from shotgun_events.plugins.loader import Plugin, PluginLoader
from shotgun_events.testing import deliver, load_plugin, make_event

GOOD = """
def registerCallbacks(reg):
    reg.registerCallback("s", "k", {name}, None, None)

def {name}(sg, logger, event, args):
    pass
"""


def write(path: Path, text: str, *, mtime_ns: int | None = None) -> Path:
    path.write_text(textwrap.dedent(text))
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def good(path: Path, callback: str = "handler") -> Path:
    return write(path, GOOD.format(name=callback))


def names(plugins: list[Plugin]) -> list[str]:
    return [p.name for p in plugins]


def mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "plugins").mkdir()
    return tmp_path / "plugins"


@pytest.fixture
def loader(folder: Path) -> PluginLoader:
    return PluginLoader(paths=[folder])


@pytest.fixture
def loader_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="engine.loader")
    yield caplog


def test_plugins_are_ordered_by_folder_then_file_name_ignoring_private_files(
    tmp_path: Path,
) -> None:
    # Given two folders, with private, hidden, non-Python files and a subfolder
    first, second = tmp_path / "b_first", tmp_path / "a_second"
    first.mkdir(), second.mkdir()
    for name in ("zeta.py", "alpha.py", "_helper.py", ".hidden.py", "notes.txt"):
        good(first / name)
    (first / "pkg.py").mkdir()
    good(second / "beta.py")
    good(second / "alpha.py")
    # When scanning with the folders in configuration order
    loader = PluginLoader(paths=[first, second, first])
    result = loader.scan()
    # Then plugins come folder by folder, by file name, keyed by (folder, name)
    assert names(loader.plugins) == ["alpha", "zeta", "alpha", "beta"]
    assert [p.key for p in loader.plugins][:2] == [(str(first), "alpha"), (str(first), "zeta")]
    assert result.added == loader.plugins and not result.reloaded and not result.removed
    assert all(p.active and p.reason is None for p in loader.plugins)
    assert loader.get((str(second), "beta")) is loader.plugins[3]
    assert loader.plugins[0].logger is logging.getLogger("plugin.alpha")


def test_loaded_plugin_exposes_callbacks_emails_and_fingerprint(
    folder: Path, loader: PluginLoader
) -> None:
    write(
        folder / "p.py",
        """
        def registerCallbacks(reg):
            reg.setEmails("ops@studio")
            reg.registerCallback("s", "k", cb, {"Shotgun_Task_New": None}, "shared")
        def cb(sg, logger, event, args):
            pass
        """,
    )
    loader.scan()
    [plugin] = loader.plugins
    assert [cb.name for cb in plugin.callbacks] == ["cb"]
    assert plugin.callbacks[0].args == "shared"
    assert plugin.emails == ("ops@studio",)
    st = (folder / "p.py").stat()
    assert plugin.fingerprint[:2] == (st.st_mtime_ns, st.st_size)
    assert len(plugin.fingerprint[2]) == 40


def test_unchanged_files_are_not_reimported(folder: Path, loader: PluginLoader) -> None:
    good(folder / "p.py")
    loader.scan()
    generation = loader.plugins[0].generation
    # When nothing changed / Then a scan reports nothing and imports nothing
    result = loader.scan()
    assert not result
    assert loader.plugins[0].generation == generation


BROKEN = {
    "import_error": ("import no_such_module_here\n", "import failed: ModuleNotFoundError"),
    "syntax_error": ("def registerCallbacks(reg)\n    pass\n", "import failed: SyntaxError"),
    "missing": ("X = 1\n", "defines no registerCallbacks(reg) function"),
    "raising": (
        "def registerCallbacks(reg):\n    raise RuntimeError('schema check failed')\n",
        "registerCallbacks failed: RuntimeError: schema check failed",
    ),
    "exiting": (
        "import sys\ndef registerCallbacks(reg):\n    sys.exit(3)\n",
        "registerCallbacks failed: SystemExit: 3",
    ),
    "exit_on_import": ("raise SystemExit('bye')\n", "import failed: SystemExit: bye"),
    "bad_match": (
        "def registerCallbacks(reg):\n"
        "    reg.registerCallback('s', 'k', lambda a, b, c, d: None, ['Shotgun_Task_New'])\n",
        "matchEvents must be a dict",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_plugin_is_inactive_with_reason_and_others_load(
    case: str, folder: Path, loader: PluginLoader, loader_log: pytest.LogCaptureFixture
) -> None:
    # Given a broken plugin between two good ones
    source, reason = BROKEN[case]
    good(folder / "a_good.py")
    write(folder / f"b_{case}.py", source)
    good(folder / "c_good.py")
    # When scanning
    loader.scan()
    # Then the broken one is known, inactive, without callbacks, and says why
    a, broken, c = loader.plugins
    assert a.active and c.active
    assert not broken.active and broken.callbacks == []
    assert broken.reason is not None and reason in broken.reason
    assert str(folder / f"b_{case}.py") in broken.reason
    # And, as in the original, the traceback goes to the plugin's own logger: CRITICAL when
    # registerCallbacks is missing or fails, ERROR when the file does not import
    level = logging.ERROR if reason.startswith("import failed") else logging.CRITICAL
    [error] = [r for r in loader_log.records if r.levelno >= logging.ERROR]
    assert (error.name, error.levelno) == (f"plugin.b_{case}", level)
    assert error.exc_info is not None and str(folder / f"b_{case}.py") in error.getMessage()
    # And the main log keeps one WARNING line naming the file and pointing at the plugin's log
    [warning] = [r for r in loader_log.records if r.levelno == logging.WARNING]
    assert warning.name == "engine.loader" and str(folder / f"b_{case}.py") in warning.getMessage()
    assert f"traceback in the log of plugin.b_{case}" in warning.getMessage()
    assert any(
        "it will be reloaded when its file changes" in r.getMessage() for r in loader_log.records
    )


def test_broken_plugin_is_retried_when_its_file_changes(folder: Path, loader: PluginLoader) -> None:
    path = write(folder / "p.py", "raise ImportError('not yet')\n")
    loader.scan()
    plugin = loader.plugins[0]
    assert not plugin.active
    good(path)
    result = loader.scan()
    assert result.reloaded == [plugin] and plugin.active and plugin.reason is None


def test_keyboard_interrupt_from_plugin_is_its_error_when_the_engine_owns_sigint(
    folder: Path, loader: PluginLoader
) -> None:
    # Given the engine's own SIGINT handler (so no Ctrl-C can surface as KeyboardInterrupt)
    write(folder / "p.py", "def registerCallbacks(reg):\n    raise KeyboardInterrupt\n")
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        loader.scan()
    finally:
        signal.signal(signal.SIGINT, previous)
    # Then the plugin is switched off, the daemon goes on
    assert not loader.plugins[0].active
    assert "KeyboardInterrupt" in (loader.plugins[0].reason or "")


def test_keyboard_interrupt_with_default_handler_is_the_operators_ctrl_c(
    folder: Path, loader: PluginLoader
) -> None:
    write(folder / "p.py", "def registerCallbacks(reg):\n    raise KeyboardInterrupt\n")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            loader.scan()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_plugin_without_callbacks_is_active_and_warned_about(
    folder: Path, loader: PluginLoader, loader_log: pytest.LogCaptureFixture
) -> None:
    write(folder / "p.py", "def registerCallbacks(reg):\n    pass\n")
    loader.scan()
    assert loader.plugins[0].active and loader.plugins[0].callbacks == []
    assert any(
        r.levelno == logging.WARNING and "registered no callbacks" in r.getMessage()
        for r in loader_log.records
    )


@pytest.mark.parametrize("shift_ns", [+1, -3_600_000_000_000], ids=["newer_1ns", "older_1h"])
def test_same_size_edit_is_reloaded_whichever_way_mtime_moves(
    folder: Path, loader: PluginLoader, shift_ns: int
) -> None:
    # Given a loaded plugin
    path = good(folder / "p.py", "first")
    before = mtime(path)
    loader.scan()
    plugin = loader.plugins[0]
    # When it is replaced by same-size content with an mtime 1 ns newer (same second: a
    # __pycache__ file would still look valid) or an hour older (git checkout, cp -p)
    write(path, GOOD.format(name="other"), mtime_ns=before + shift_ns)
    assert path.stat().st_size == len(GOOD.format(name="first"))
    result = loader.scan()
    # Then the new code runs, in the same Plugin object
    assert result.reloaded == [plugin] and loader.plugins[0] is plugin
    assert [cb.name for cb in plugin.callbacks] == ["other"]


def test_touch_reloads_a_plugin_switched_off_by_a_callback_error(
    folder: Path, loader: PluginLoader, loader_log: pytest.LogCaptureFixture
) -> None:
    # Given a plugin the dispatcher switched off after a callback error
    path = good(folder / "p.py")
    loader.scan()
    plugin = loader.plugins[0]
    plugin.deactivate("handler raised ValueError on event 12")
    assert not plugin.active and plugin.reason == "handler raised ValueError on event 12"
    assert "plugin p deactivated: handler raised ValueError on event 12" in loader_log.text
    # And nothing changed: it stays off
    assert not loader.scan() and not plugin.active
    # When the operator touches the file (same content)
    os.utime(path, ns=(mtime(path) + 1_000_000_000,) * 2)
    # Then it is reloaded and active again, same object
    assert loader.scan().reloaded == [plugin]
    assert plugin.active and plugin.reason is None


def test_reload_is_atomic_and_keeps_the_plugin_object(folder: Path, loader: PluginLoader) -> None:
    path = good(folder / "p.py", "v1")
    loader.scan()
    plugin = loader.plugins[0]
    old_module = plugin.module_name
    assert old_module in sys.modules
    # When an edit registers one callback and then fails
    write(
        path,
        """
        def registerCallbacks(reg):
            reg.registerCallback("s", "k", v2, None)
            raise ValueError("half way")
        def v2(sg, logger, event, args):
            pass
        """,
    )
    loader.scan()
    # Then no half-registered callback is visible: the plugin is off, same object and key
    assert loader.plugins[0] is plugin and plugin.key == (str(folder), "p")
    assert not plugin.active and plugin.callbacks == []
    assert old_module not in sys.modules
    # When fixed / Then it comes back with only the new callbacks, from a fresh module
    write(path, GOOD.format(name="v3"))
    loader.scan()
    assert plugin.active and [cb.name for cb in plugin.callbacks] == ["v3"]
    assert plugin.module_name in sys.modules and plugin.module_name != old_module


def test_reload_gets_a_fresh_module(folder: Path, loader: PluginLoader) -> None:
    # Given a plugin keeping module-level state
    path = write(
        folder / "p.py",
        """
        STATE = []
        def registerCallbacks(reg):
            STATE.append(1)
            reg.registerCallback("s", "k", cb, None, STATE)
        def cb(sg, logger, event, args):
            pass
        """,
    )
    loader.scan()
    first_state = loader.plugins[0].callbacks[0].args
    # When forced to reload (operator command) / Then its module state starts again
    assert loader.reload(loader.plugins[0].key) is loader.plugins[0]
    assert loader.plugins[0].callbacks[0].args == [1]
    assert loader.plugins[0].callbacks[0].args is not first_state
    assert loader.reload((str(path.parent), "nope")) is None


def test_new_files_are_added_and_deleted_files_removed(folder: Path, loader: PluginLoader) -> None:
    good(folder / "b.py")
    loader.scan()
    b = loader.plugins[0]
    module = b.module_name
    # When a file appears before it and b disappears
    good(folder / "a.py")
    (folder / "b.py").unlink()
    result = loader.scan()
    # Then a is added, b removed (inactive, module dropped)
    assert names(result.added) == ["a"] and result.removed == [b]
    assert names(loader.plugins) == ["a"]
    assert loader.get(b.key) is None and not b.active and b.callbacks == []
    assert module not in sys.modules


def test_unreadable_folder_keeps_its_plugins(
    tmp_path: Path, loader_log: pytest.LogCaptureFixture
) -> None:
    # Given a folder whose plugins are loaded
    folder = tmp_path / "mount"
    folder.mkdir()
    good(folder / "p.py")
    loader = PluginLoader(paths=[folder, tmp_path / "missing"])
    loader.scan()
    plugin = loader.plugins[0]
    # When the folder disappears (a network mount hiccup)
    folder.rename(tmp_path / "elsewhere")
    result = loader.scan()
    # Then its plugins are kept and a warning says so
    assert not result and loader.plugins == [plugin] and plugin.active
    assert "cannot be read" in loader_log.text


def test_helper_module_next_to_plugin_is_importable(folder: Path, loader: PluginLoader) -> None:
    # Given a plugin importing a helper at load time and another one lazily in its callback
    write(folder / "_studio_helper_a.py", "VALUE = 'a'\n")
    write(folder / "_studio_helper_b.py", "VALUE = 'b'\n")
    write(
        folder / "p.py",
        """
        import _studio_helper_a
        def registerCallbacks(reg):
            reg.registerCallback("s", "k", cb, None, _studio_helper_a.VALUE)
        def cb(sg, logger, event, args):
            import _studio_helper_b
            return args + _studio_helper_b.VALUE
        """,
    )
    try:
        loader.scan()
        [cb] = loader.plugins[0].callbacks
        assert cb.func(None, cb.logger, make_event(), cb.args) == "ab"
    finally:
        sys.modules.pop("_studio_helper_a", None)
        sys.modules.pop("_studio_helper_b", None)


def test_plugin_file_name_that_is_not_an_identifier_loads(
    folder: Path, loader: PluginLoader
) -> None:
    good(folder / "my-plugin.v2.py")
    loader.scan()
    assert loader.plugins[0].name == "my-plugin.v2" and loader.plugins[0].active


def test_dataclass_in_plugin_works(folder: Path, loader: PluginLoader) -> None:
    # dataclasses look the module up in sys.modules while the class is built
    write(
        folder / "p.py",
        """
        from __future__ import annotations
        import dataclasses
        @dataclasses.dataclass
        class Counter:
            n: int = 0
        def registerCallbacks(reg):
            reg.registerCallback("s", "k", cb, None, Counter())
        def cb(sg, logger, event, args):
            args.n += 1
        """,
    )
    loader.scan()
    assert loader.plugins[0].active


# --- the example plugins, loaded through shotgun_events.testing ---------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "plugins"


class FakeShotgun:
    """In-memory stand-in for shotgun_api3.Shotgun: find, find_one and update on dicts."""

    def __init__(self, records: dict[str, list[dict[str, object]]]) -> None:
        self.records = records
        self.updates: list[tuple[str, int, dict[str, object]]] = []

    def find(self, entity_type: str, filters: list[list[object]], fields: list[str]) -> list[dict]:
        def keep(record: dict[str, object]) -> bool:
            for field, op, value in filters:
                assert op == "is"
                have = record.get(str(field))
                if isinstance(value, dict):
                    if not isinstance(have, dict) or have.get("id") != value["id"]:
                        return False
                elif have != value:
                    return False
            return True

        return [
            {"type": entity_type, "id": r["id"], **{f: r.get(f) for f in fields}}
            for r in self.records.get(entity_type, [])
            if keep(r)
        ]

    def find_one(
        self, entity_type: str, filters: list[list[object]], fields: list[str]
    ) -> dict | None:
        found = self.find(entity_type, filters, fields)
        return found[0] if found else None

    def update(self, entity_type: str, entity_id: int, data: dict[str, object]) -> dict:
        self.updates.append((entity_type, entity_id, data))
        [record] = [r for r in self.records[entity_type] if r["id"] == entity_id]
        record.update(data)
        return {"type": entity_type, "id": entity_id, **data}


def shot_site(shot_status: str, *task_statuses: str) -> FakeShotgun:
    shot = {"type": "Shot", "id": 7}
    return FakeShotgun(
        {
            "Shot": [{"id": 7, "code": "sh010", "sg_status_list": shot_status}],
            "Task": [
                {"id": 100 + i, "entity": shot, "sg_status_list": status}
                for i, status in enumerate(task_statuses)
            ],
        }
    )


def task_change(task_id: int = 100) -> dict[str, object]:
    return make_event("Shotgun_Task_Change", "sg_status_list", id=55, entity_id=task_id)


def test_example_plugins_all_register(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the example folder as the daemon would see it
    loader = PluginLoader(paths=[EXAMPLES])
    loader.scan()
    # Then every example loads with callbacks and the local site's default credentials
    assert names(loader.plugins) == ["eventCounter", "logArgs", "shotStatusRollup"]
    for plugin in loader.plugins:
        assert plugin.active and plugin.callbacks, plugin.reason
        assert {(cb.script_name, cb.script_key) for cb in plugin.callbacks} == {
            ("shotgun_events", "local")
        }


def test_example_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGDAEMON_LOGARGS_NAME", "logger_script")
    monkeypatch.setenv("SGDAEMON_LOGARGS_KEY", "s3cret")
    [cb] = load_plugin(EXAMPLES / "logArgs.py")
    assert (cb.script_name, cb.script_key, cb.stop_on_error) == ("logger_script", "s3cret", False)


def test_log_args_logs_one_line_per_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plugin.logArgs")
    callbacks = load_plugin(EXAMPLES / "logArgs.py")
    assert deliver(callbacks, make_event("Shotgun_Task_New", id=9)) == callbacks
    [record] = caplog.records
    assert record.name == "plugin.logArgs.logArgs"
    assert record.getMessage() == (
        "event 9 Shotgun_Task_New attribute=None entity=Task #1 (Task 1) "
        "user=HumanUser #1 (Test User)"
    )


def test_event_counter_callbacks_share_state_and_summarise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plugin.eventCounter")
    by_user, by_type = load_plugin(EXAMPLES / "eventCounter.py")
    # Given two callbacks registered with one shared dict
    assert by_user.args is by_type.args
    # When 50 events are delivered
    for i in range(50):
        deliver([by_user, by_type], make_event("Shotgun_Task_New" if i % 2 else "Shotgun_Shot_New"))
    # Then both counted into the same dict and one summary was logged
    state = by_user.args
    assert isinstance(state, dict)
    assert state["total"] == 50 and state["byUser"]["Test User"] == 50
    assert state["byType"] == {"Shotgun_Task_New": 25, "Shotgun_Shot_New": 25}
    [summary] = [r.getMessage() for r in caplog.records]
    assert summary.startswith("50 events so far; top users: Test User=50")


def test_shot_status_rollup_matches_only_task_status_changes() -> None:
    [cb] = load_plugin(EXAMPLES / "shotStatusRollup.py")
    assert cb.matches(task_change())
    assert not cb.matches(make_event("Shotgun_Task_Change", "content"))
    assert not cb.matches(make_event("Shotgun_Shot_Change", "sg_status_list"))
    assert not cb.matches(make_event("Shotgun_Task_New"))


@pytest.mark.parametrize(
    ("shot", "tasks", "expected"),
    [
        ("ip", ("fin", "fin"), "fin"),
        ("wtg", ("ip", "wtg"), "ip"),
        ("rdy", ("ip",), "ip"),
        ("hld", ("ip", "wtg"), None),  # held shots are left alone
        ("ip", ("ip", "fin"), None),  # already right
        ("fin", ("fin",), None),  # idempotent: no update when already final
        ("wtg", ("wtg", "rdy"), None),
    ],
)
def test_shot_status_rollup_sets_the_shot_status(
    shot: str, tasks: tuple[str, ...], expected: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plugin.shotStatusRollup")
    [cb] = load_plugin(EXAMPLES / "shotStatusRollup.py")
    sg = shot_site(shot, *tasks)
    deliver([cb], task_change(), sg=sg)
    if expected is None:
        assert sg.updates == []
    else:
        assert sg.updates == [("Shot", 7, {"sg_status_list": expected})]
        assert f"shot sh010 (#7): {shot} -> {expected}" in caplog.text
    # And replaying the event changes nothing more
    sg.updates.clear()
    deliver([cb], task_change(), sg=sg)
    assert sg.updates == []


def test_shot_status_rollup_skips_events_whose_entity_is_gone() -> None:
    [cb] = load_plugin(EXAMPLES / "shotStatusRollup.py")
    sg = shot_site("ip", "fin")
    deliver([cb], make_event("Shotgun_Task_Change", "sg_status_list", entity=None), sg=sg)
    deliver([cb], task_change(task_id=999), sg=sg)  # retired since the event
    assert sg.updates == []


def test_shot_status_rollup_ignores_tasks_not_on_shots() -> None:
    [cb] = load_plugin(EXAMPLES / "shotStatusRollup.py")
    asset = {"type": "Asset", "id": 3}
    sg = FakeShotgun({"Task": [{"id": 100, "entity": asset, "sg_status_list": "fin"}]})
    deliver([cb], task_change(), sg=sg)
    assert sg.updates == []


def test_load_plugin_raises_for_a_broken_plugin(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.py", "def registerCallbacks(reg):\n    1 / 0\n")
    with pytest.raises(PluginError, match="registerCallbacks failed: ZeroDivisionError") as info:
        load_plugin(path)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_make_event_is_shaped_like_an_event_log_entry() -> None:
    change = make_event("Shotgun_Shot_Change", entity_id=4, old_value="wtg", new_value="ip")
    assert set(EVENT_FIELDS) <= set(change)
    assert change["attribute_name"] == "sg_status_list"
    assert change["entity"] == {"type": "Shot", "id": 4, "name": "Shot 4"}
    assert change["meta"]["type"] == "attribute_change"
    assert (change["meta"]["old_value"], change["meta"]["new_value"]) == ("wtg", "ip")
    assert change["created_at"].tzinfo is not None
    new = make_event("Shotgun_Task_New")
    assert new["attribute_name"] is None and new["meta"]["type"] == "new_entity"
    assert make_event("Shotgun_User_Login")["meta"] == {}
