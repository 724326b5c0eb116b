"""Drop-in gaps (issue 11), unit level: order, helpers beside the config, locals, output."""

from __future__ import annotations

import io
import json
import logging
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.config.load import load_config
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.notify.frames import MAX_VALUE_CHARS, describe_locals
from shotgun_events.notify.output import LineWriter, whole_lines
from shotgun_events.plugins.loader import PluginLoader
from shotgun_events.plugins.watcher import PluginWatcher

from .fakes import FakeCallback, FakeConnections, FakePlugin, make_event

RECORDING = """
import handler_config

SEEN = []

def registerCallbacks(reg):
    reg.registerCallback("s", "k", handle, None, SEEN)

def handle(sg, logger, event, args):
    args.append(handler_config.VALUE)
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def clean_modules() -> Iterator[None]:
    # The loader leaves helper folders at the end of sys.path for lazy imports: undo that.
    saved = list(sys.path)
    yield
    sys.path[:] = saved
    sys.modules.pop("handler_config", None)


# -- order ------------------------------------------------------------------------------


def test_plugins_sort_by_file_name_with_py_as_the_original(tmp_path: Path) -> None:
    # Given order.py and order-2.py ('-' sorts before '.', so order-2.py comes first)
    for name in ("order.py", "order-2.py", "order_b.py"):
        write(tmp_path / name, "def registerCallbacks(reg):\n    pass\n")
    # When scanning
    loader = PluginLoader(paths=[tmp_path])
    loader.scan()
    # Then the order is that of the file names, .py included
    assert [p.name for p in loader.plugins] == ["order-2", "order", "order_b"]


# -- helpers beside the config ---------------------------------------------------------


def test_helper_beside_the_config_loads_and_reloads_its_plugin(
    tmp_path: Path, clean_modules: None
) -> None:
    # Given a config whose folder holds handler_config.py, and a plugin folder below it
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    conf = tmp_path / "shotgunEventDaemon.conf"
    conf.write_text(
        "[daemon]\npidFile = d.pid\neventIdFile = d.id\nlogFile = d.log\n"
        "[shotgun]\nserver = https://x.example.com\nname = n\nkey = k\n"
        f"[plugins]\npaths = {plugins}\n"
    )
    config = load_config(conf)
    assert config.plugin_config_dir_on_path is True
    assert config.plugin_import_paths == (tmp_path,)
    helper = write(tmp_path / "handler_config.py", "VALUE = 'v1'\n")
    write(plugins / "rollup.py", RECORDING)
    loader = PluginLoader(paths=config.plugin_paths, helper_paths=config.plugin_import_paths)
    # When scanning
    loader.scan()
    # Then the plugin loaded, depending on the helper
    [plugin] = loader.plugins
    assert plugin.active and plugin.helper_files == {helper}
    # When the helper changes (size too, so the stat scan sees it)
    write(helper, "VALUE = 'v2-longer'\n")
    result = loader.scan()
    # Then the plugin is reloaded and runs the new helper code
    assert result.reloaded == [plugin]
    seen: list[str] = []
    plugin.callbacks[0].args = seen
    plugin.callbacks[0].func(None, plugin.logger, make_event(1), seen)
    assert seen == ["v2-longer"]


def test_config_dir_off_leaves_the_helper_unfound(tmp_path: Path, clean_modules: None) -> None:
    # Given config_dir_on_path = false
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    conf = tmp_path / "shotgunEventDaemon.conf"
    conf.write_text(
        "[daemon]\npidFile = d.pid\neventIdFile = d.id\nlogFile = d.log\n"
        "[shotgun]\nserver = https://x.example.com\nname = n\nkey = k\n"
        f"[plugins]\npaths = {plugins}\nconfig_dir_on_path = false\n"
    )
    config = load_config(conf)
    write(tmp_path / "handler_config.py", "VALUE = 'v1'\n")
    write(plugins / "rollup.py", RECORDING)
    # When scanning
    loader = PluginLoader(paths=config.plugin_paths, helper_paths=config.plugin_import_paths)
    loader.scan()
    # Then the plugin is off with the ModuleNotFoundError a studio would see
    [plugin] = loader.plugins
    assert config.plugin_import_paths == ()
    assert not plugin.active and plugin.reason is not None
    assert "ModuleNotFoundError: No module named 'handler_config'" in plugin.reason


# -- locals of the failing frames ----------------------------------------------------------


def _failure(tmp_path: Path) -> BaseException:
    helper = write(
        tmp_path / "studio_helper.py",
        """
        def lookup(code):
            table = {"sh020": 1}
            return table[code]
        """,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        namespace: dict[str, Any] = {}
        exec(compile("import studio_helper\n", str(helper), "exec"), namespace)
        plugin_file = tmp_path / "plug.py"
        source = textwrap.dedent(
            """
            def callback(event, sg_password, key_for_cache):
                shot_code = "sh010"
                long_text = "x" * 5000
                token = "tok-123456"
                note = "uses Plugin-Key-77 inside"
                return studio_helper.lookup(shot_code)
            """
        )
        plugin_file.write_text(source)
        exec(compile(source, str(plugin_file), "exec"), namespace)
        try:
            namespace["callback"]({"id": 5}, "hunter22", "abc")
        except KeyError as exc:
            # Drop this test's own frame, as the dispatcher's frame is not plugin code.
            assert exc.__traceback__ is not None
            return exc.with_traceback(exc.__traceback__.tb_next)
        raise AssertionError("the callback should have raised")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("studio_helper", None)


def test_locals_of_outer_and_inner_plugin_frames_are_shown_masked_and_cut(
    tmp_path: Path,
) -> None:
    # Given a callback that fails inside a helper module
    error = _failure(tmp_path)
    # When its locals are described, with the plugin's script key as a secret
    text = describe_locals(error, secrets=["Plugin-Key-77"])
    outer, inner = text.split("\n\n")
    # Then the callback's frame lists its locals, credential-like names masked
    assert outer.startswith("Local variables in the outermost plugin frame (callback, ")
    assert "    shot_code = 'sh010'" in outer and "    event = {'id': 5}" in outer
    assert "    sg_password = ***" in outer and "    token = ***" in outer
    assert "hunter22" not in text and "tok-123456" not in text
    # And the plugin's script key is masked inside other values
    assert "    note = 'uses *** inside'" in outer
    # And a long value is cut
    [long_line] = [line for line in outer.splitlines() if "long_text" in line]
    assert len(long_line) < MAX_VALUE_CHARS + 60
    # And the helper frame where it raised is shown too
    assert inner.startswith("Local variables in the innermost plugin frame, where it raised")
    assert "(lookup, " in inner and "    code = 'sh010'" in inner


def test_no_plugin_frame_means_no_locals() -> None:
    # Given an error raised inside the standard library (json), seen from below this test
    try:
        json.loads("{not json")
    except ValueError as exc:
        assert exc.__traceback__ is not None
        error = exc.with_traceback(exc.__traceback__.tb_next)
    # Then there is no plugin frame to describe
    assert describe_locals(error) == ""


# -- the dispatcher's log records ----------------------------------------------------------


def _crashing_plugin() -> FakePlugin:
    plugin = FakePlugin("crashy")

    def crash(sg: Any, logger: logging.Logger, event: dict[str, Any], args: Any) -> None:
        entity_name = "sh010"
        raise RuntimeError(f"cannot handle {entity_name}")

    logger = logging.getLogger("plugin.crashy.crash")
    plugin.callbacks.append(FakeCallback("crash", crash, logger=logger, stop_on_error=False))
    return plugin


def test_callback_failure_is_critical_with_locals(caplog: pytest.LogCaptureFixture) -> None:
    # Given a plugin whose callback raises, with DEBUG on for it
    plugin = _crashing_plugin()
    caplog.set_level(logging.DEBUG, logger="plugin.crashy")
    # When an event is dispatched
    Dispatcher(connections=FakeConnections(), use_session_uuid=False).run(plugin, make_event(7))
    # Then the plugin logger says which callback gets the event, at DEBUG
    debug, critical = caplog.records
    assert (debug.name, debug.levelno) == ("plugin.crashy", logging.DEBUG)
    assert debug.getMessage() == "Dispatching event 7 to callback crash."
    # And the failure is CRITICAL on the callback's logger, with traceback and locals
    assert (critical.name, critical.levelno) == ("plugin.crashy.crash", logging.CRITICAL)
    assert critical.exc_info is not None and critical.funcName == "run"
    assert "    entity_name = 'sh010'" in critical.getMessage()


def test_dispatch_line_makes_no_record_unless_debug_is_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a plugin logger at INFO, and a record factory that counts what is built
    plugin = FakePlugin("quiet")
    plugin.callbacks.append(FakeCallback("cb", lambda *a: None))
    logging.getLogger("plugin.quiet").setLevel(logging.INFO)
    built: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        built.append(record.name)
        return record

    monkeypatch.setattr(logging, "getLogRecordFactory", lambda: counting)
    logging.setLogRecordFactory(counting)
    try:
        # When 100 events are dispatched
        run = Dispatcher(connections=FakeConnections(), use_session_uuid=False)
        for event_id in range(100):
            run.run(plugin, make_event(event_id + 1))
    finally:
        logging.setLogRecordFactory(factory)
        logging.getLogger("plugin.quiet").setLevel(logging.NOTSET)
    # Then no log record was even built for the plugin
    assert "plugin.quiet" not in built


# -- whole lines on stdout -----------------------------------------------------------------


def test_line_writer_keeps_lines_of_two_threads_whole() -> None:
    # Given a line writer and two threads printing lines of many pieces
    target = io.StringIO()
    writer = LineWriter(target)

    def shout(letter: str) -> None:
        for n in range(300):
            print(*([letter * 20] * 30), n, file=writer)

    threads = [threading.Thread(target=shout, args=(c,)) for c in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every line is one thread's
    lines = target.getvalue().splitlines()
    assert len(lines) == 600
    assert all(set(line.split()[0]) in ({"A"}, {"B"}) for line in lines)
    assert all(len(set(" ".join(line.split()[:-1]).replace(" ", ""))) == 1 for line in lines)


def test_partial_lines_wait_for_their_newline_and_are_written_on_close() -> None:
    # Given a line writer with a small limit
    target = io.StringIO()
    writer = LineWriter(target, max_pending=10)
    # When a thread writes part of a line and flushes
    writer.write("half ")
    writer.flush()
    # Then nothing is written yet
    assert target.getvalue() == ""
    # When it ends the line
    writer.write("done\nnext")
    # Then the whole line is written, the rest held
    assert target.getvalue() == "half done\n"
    # When text without newline passes the limit, it is written anyway
    writer.write(" and more text")
    assert target.getvalue() == "half done\nnext and more text"
    # And a held partial line is written, ended, on close
    writer.write("tail")
    writer.close_out()
    assert target.getvalue().endswith("tail\n")


def test_whole_lines_installs_and_restores_the_streams() -> None:
    # Given the process streams
    before = sys.stdout, sys.stderr
    # When the writers are installed
    with whole_lines() as (out, err):
        # Then print goes through them, and they keep the real stream's attributes
        assert sys.stdout is out and sys.stderr is err
        assert isinstance(out, LineWriter) and out.target is before[0]
        assert out.encoding == before[0].encoding
    # And afterwards the streams are back
    assert (sys.stdout, sys.stderr) == before


# -- the config file's folder is watched, without its sub-folders -----------------------


@pytest.mark.parametrize("polling", [False, True])
def test_config_folder_is_watched_without_its_sub_folders(tmp_path: Path, polling: bool) -> None:
    # Given a watcher of a plugin folder, with the config's folder as a shallow path
    plugins = tmp_path / "plugins"
    logs = tmp_path / "logs"
    plugins.mkdir(), logs.mkdir()
    watcher = PluginWatcher(
        [plugins], shallow_paths=[tmp_path], polling=polling, poll_interval=0.05, debounce=0.05
    )
    with watcher:
        # When a module in a sub-folder and then a helper beside the config are written
        (logs / "not_a_helper.py").write_text("X = 1\n")
        helper = tmp_path / "handler_config.py"
        helper.write_text("VALUE = 1\n")
        # Then the helper is reported, the sub-folder's file is not
        gathered: set[Path] = set()
        deadline = time.monotonic() + 10
        while helper not in gathered:
            assert time.monotonic() < deadline, "the helper was never reported"
            if watcher.changed.wait(0.05):
                gathered.update(watcher.take_due())
        assert logs / "not_a_helper.py" not in gathered
