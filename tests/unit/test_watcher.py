"""PluginWatcher: real watchdog observers on real files, debounced reports, clean shutdown."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.events import FileSystemEvent

from shotgun_events.plugins import fsevents
from shotgun_events.plugins import watcher as watcher_module
from shotgun_events.plugins.loader import PluginLoader
from shotgun_events.plugins.watcher import PluginWatcher

BOUND = 10.0  # generous: only a broken watcher takes this long


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def collect(watcher: PluginWatcher, *expected: Path) -> set[Path]:
    """Gather due paths until every expected one was reported; return all gathered."""
    gathered: set[Path] = set()

    def done() -> bool:
        if watcher.changed.wait(0.05):
            gathered.update(watcher.take_due())
        return set(expected) <= gathered

    wait_for(done, f"{sorted(map(str, expected))} to be reported")
    return gathered


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    return folder


@pytest.fixture(params=["native", "polling"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def watch(plugins: Path, mode: str) -> Iterator[PluginWatcher]:
    watcher = PluginWatcher([plugins], polling=mode == "polling", poll_interval=0.05, debounce=0.05)
    watcher.start()
    yield watcher
    watcher.stop()


def test_new_file_is_reported_and_other_files_are_not(plugins: Path, watch: PluginWatcher) -> None:
    # Given a running watcher
    # When non-Python files, bytecode and then a plugin appear
    (plugins / "notes.txt").write_text("hello")
    (plugins / ".p.py.swp").write_text("swap")
    (plugins / "__pycache__").mkdir()
    (plugins / "__pycache__" / "p.cpython-311.pyc").write_bytes(b"\0")
    (plugins / "p.py").write_text("X = 1\n")
    # Then only the plugin is reported, as an absolute path
    assert collect(watch, plugins / "p.py") == {plugins / "p.py"}


def test_modification_is_reported(plugins: Path, mode: str) -> None:
    # Given an existing file before the watcher starts
    path = plugins / "p.py"
    path.write_text("X = 1\n")
    with PluginWatcher(
        [plugins], polling=mode == "polling", poll_interval=0.05, debounce=0.05
    ) as w:
        # When it is modified
        path.write_text("X = 22\n")
        # Then it is reported
        assert collect(w, path) == {path}


def test_deletion_is_reported(plugins: Path, mode: str) -> None:
    path = plugins / "p.py"
    path.write_text("X = 1\n")
    with PluginWatcher(
        [plugins], polling=mode == "polling", poll_interval=0.05, debounce=0.05
    ) as w:
        path.unlink()
        assert collect(w, path) == {path}


def test_rename_reports_both_paths(plugins: Path, mode: str) -> None:
    old, new = plugins / "old_name.py", plugins / "new_name.py"
    old.write_text("X = 1\n")
    with PluginWatcher(
        [plugins], polling=mode == "polling", poll_interval=0.05, debounce=0.05
    ) as w:
        # When the file is renamed (what rsync and most editors do on save)
        old.rename(new)
        # Then both names are reported: one plugin goes, one comes
        assert collect(w, old, new) == {old, new}


def test_mtime_going_backwards_with_new_content_is_reported(plugins: Path, mode: str) -> None:
    # Given a file
    path = plugins / "p.py"
    path.write_text("X = 1\n")
    before = path.stat().st_mtime_ns
    with PluginWatcher(
        [plugins], polling=mode == "polling", poll_interval=0.05, debounce=0.05
    ) as w:
        # When new content gets an mtime an hour older (git checkout, cp -p)
        path.write_text("X = 2\n")
        os.utime(path, ns=(before - 3_600_000_000_000,) * 2)
        # Then it is reported
        assert collect(w, path) == {path}


def test_helper_packages_and_helper_paths_are_watched_recursively(tmp_path: Path) -> None:
    # Given a helper package inside the plugin folder and a separate helper path
    plugins, shared = tmp_path / "plugins", tmp_path / "shared"
    (plugins / "_common" / "deep").mkdir(parents=True)
    (shared / "studio").mkdir(parents=True)
    util, deep, lib = (
        plugins / "_common" / "util.py",
        plugins / "_common" / "deep" / "x.py",
        shared / "studio" / "lib.py",
    )
    for path in (util, deep, lib):
        path.write_text("A = 1\n")
    with PluginWatcher([plugins], helper_paths=[shared], debounce=0.05) as w:
        # When each of them changes
        for path in (util, deep, lib):
            path.write_text("A = 2\n")
        # Then each is reported
        assert collect(w, util, deep, lib) == {util, deep, lib}


def test_folders_created_later_are_watched(tmp_path: Path) -> None:
    # Given a configured plugin folder that does not exist yet
    plugins = tmp_path / "plugins"
    with PluginWatcher([plugins], debounce=0.05) as w:
        # When it is created, then a helper package inside it
        plugins.mkdir()
        path = plugins / "p.py"
        n = 0

        def written_and_reported() -> bool:
            nonlocal n
            w.take_due()  # the loop calls this at every round; it re-checks missing folders
            n += 1
            path.write_text(f"X = {n}\n")
            time.sleep(0.05)
            return path in w.pending() or w.changed.is_set()

        wait_for(written_and_reported, "the new folder to be watched")
        assert path in collect(w, path)
        helper = plugins / "_late" / "util.py"
        helper.parent.mkdir()
        path = helper
        wait_for(written_and_reported, "the new helper package to be watched")
        assert helper in collect(w, helper)


def test_debounce_keeps_a_file_pending_while_it_keeps_changing(plugins: Path) -> None:
    # Given a watcher on a clock that only moves when the test says so
    clock = FakeClock()
    path = plugins / "p.py"
    with PluginWatcher([plugins], debounce=0.3, clock=clock) as w:
        # When a file is written at t=0
        path.write_text("X = 1\n")
        wait_for(lambda: path in w.pending(), "the first write")
        # Then at t=0.2 it is still settling, and nothing wakes the engine
        clock.now = 0.2
        assert w.take_due() == set() and path in w.pending()
        assert not w.changed.is_set()
        # When written again at t=0.2
        with path.open("a") as f:
            f.write("Y = 2\n")
        wait_for(lambda: w.pending().get(path) == 0.2, "the second write")
        # Then at t=0.45 (0.45 after the first write, 0.25 after the last) it is still pending
        clock.now = 0.45
        assert w.take_due() == set() and path in w.pending()

        # When the writes stop and time passes / Then the engine is woken and the path is due
        due: set[Path] = set()

        def later() -> bool:
            clock.now += 1.0  # also outruns events of the last write still on their way
            if w.changed.wait(0.05):
                due.update(w.take_due())
            return path in due

        wait_for(later, "the settled path to wake the engine")
        assert due == {path}
        assert not w.changed.is_set()


def test_native_failure_falls_back_to_polling_with_a_warning(
    plugins: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a system where inotify cannot start (no instances left)
    def no_inotify() -> None:
        raise OSError(24, "inotify instance limit reached")

    monkeypatch.setattr(watcher_module, "Observer", no_inotify)
    caplog.set_level(logging.WARNING, logger="engine.watcher")
    with PluginWatcher([plugins], poll_interval=0.05, debounce=0.05) as w:
        # Then it polls, says so, and still reports changes
        assert w.polling
        assert "native file watching cannot start" in caplog.text
        assert "polling" in caplog.text
        (plugins / "p.py").write_text("X = 1\n")
        assert collect(w, plugins / "p.py") == {plugins / "p.py"}


def test_polling_can_be_asked_for(plugins: Path) -> None:
    with PluginWatcher([plugins], polling=True, poll_interval=0.05) as w:
        assert w.polling


@pytest.mark.parametrize("polling", [False, True], ids=["native", "polling"])
def test_stop_joins_every_thread_and_is_idempotent(plugins: Path, polling: bool) -> None:
    # Given the threads before, and a watcher that saw some events
    before = set(threading.enumerate())
    w = PluginWatcher([plugins], polling=polling, poll_interval=0.05, debounce=0.05)
    w.start()
    w.start()  # a second start does nothing
    (plugins / "p.py").write_text("X = 1\n")
    collect(w, plugins / "p.py")
    assert set(threading.enumerate()) > before
    # When stopped twice
    w.stop()
    w.stop()
    # Then no thread it started is left
    assert set(threading.enumerate()) == before
    # And a watcher never started stops too
    PluginWatcher([plugins]).stop()


def test_a_file_written_moments_ago_is_pending_before_the_observer_reports_it(
    tmp_path: Path,
) -> None:
    # Given a loaded plugin, and a polling watcher too slow to report anything during the test
    plugins = tmp_path / "plugins"
    plugin = plugins / "p.py"
    helper = plugins / "_common" / "util.py"
    helper.parent.mkdir(parents=True)
    helper.write_text("X = 1\n")
    plugin.write_text("def registerCallbacks(reg):\n    pass\n")
    hour_ago = time.time() - 3600
    for path in (plugin, helper):
        os.utime(path, (hour_ago, hour_ago))
    loader = PluginLoader(paths=[plugins])
    loader.scan()
    [loaded] = loader.plugins
    # (a long debounce, so that a loaded machine still checks within it)
    with PluginWatcher([plugins], polling=True, poll_interval=60, debounce=1.0) as w:
        assert w.pending() == {}
        # When the plugin is half written (truncated, first part only) and a helper changes
        plugin.write_text("def registerCallbacks(reg):\n    pass\ndef half(")
        helper.write_text("X = 2\n")
        # Then both are pending although the observer has not reported them
        assert {plugin, helper} <= set(w.pending())
        # And the loop's scan leaves the running plugin alone: no half-written import
        assert not loader.scan(settling=w.pending())
        assert loaded.active and loaded.generation == 1
        # When the writer finishes, and the writes are older than the debounce
        plugin.write_text("def registerCallbacks(reg):\n    pass\n# v2\n")
        assert plugin in w.pending()
        # Then the loop is woken with them due, and they are no longer pending
        due = collect(w, plugin, helper)
        assert {plugin, helper} <= due
        assert plugin not in w.pending()
        assert loader.scan(changed=due, settling=w.pending()).reloaded == [loaded]
        assert loaded.active and loaded.generation == 2


def test_files_written_just_before_start_are_not_pending(plugins: Path) -> None:
    # Given plugin files written just before the daemon starts (a deployment, then a start)
    path = plugins / "p.py"
    path.write_text("X = 1\n")
    with PluginWatcher([plugins], polling=True, poll_interval=60, debounce=5.0) as w:
        # Then the first scan may load them at once: deferring would move their start position
        assert w.pending() == {}
        # When one is written again after the start / Then it is pending like any other write
        path.write_text("X = 20\n")  # another size: the same mtime tick would not tell
        assert path in w.pending()


# -- the daemon's own files never reach the watcher ---------------------------


class CountingWatcher(PluginWatcher):
    """A watcher that keeps every observer event it is handed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: list[str] = []

    def _on_event(self, event: FileSystemEvent) -> None:
        self.seen.append(os.fsdecode(event.src_path))
        super()._on_event(event)


def test_plan_polls_output_folders_and_splits_trees_above_them(tmp_path: Path) -> None:
    # Given a helper tree with logs two levels down, and a config folder holding the state
    helpers, conf = tmp_path / "pipeline", tmp_path / "conf"
    for folder in ("pipeline/lib", "pipeline/var/logs", "pipeline/var/cache", "conf/sub"):
        (tmp_path / folder).mkdir(parents=True)
    logs = helpers / "var" / "logs"
    # When the watch plan is made
    found = fsevents.plan([(helpers, True), (conf, False)], {logs, conf})
    # Then the output folders are polled alone, the folders above them are watched without
    # their sub-folders, and every other sub-tree natively as a whole
    assert found == {
        fsevents.Watch(helpers, False, False),
        fsevents.Watch(helpers / "lib", True, False),
        fsevents.Watch(helpers / "var", False, False),
        fsevents.Watch(logs, False, True),
        fsevents.Watch(helpers / "var" / "cache", True, False),
        fsevents.Watch(conf, False, True),
    }
    # And with no output folders among them, the targets are watched as asked
    assert fsevents.plan([(helpers, True)], {tmp_path / "elsewhere"}) == {
        fsevents.Watch(helpers, True, False)
    }
    assert fsevents.plan([(helpers, True)], set(), poll_all=True) == {
        fsevents.Watch(helpers, True, True)
    }


@pytest.mark.parametrize("polling", [False, True])
def test_the_daemons_own_writes_reach_no_handler_and_code_there_is_still_reported(
    tmp_path: Path, polling: bool
) -> None:
    # Given the config's folder holding a helper, the state, its journal and a log file
    conf = tmp_path / "conf"
    conf.mkdir()
    helper = conf / "studio.py"
    helper.write_text("X = 1\n")
    with CountingWatcher(
        [],
        shallow_paths=[conf],
        output_folders=[conf],
        polling=polling,
        poll_interval=0.05,
        debounce=0.05,
    ) as w:
        # When the daemon appends to its journal and log, replaces its state and pid file
        with (conf / "state.json.journal").open("a") as journal, (conf / "d.log").open("a") as log:
            for n in range(300):
                journal.write(f'{{"n": {n}}}\n')
                journal.flush()
                log.write(f"line {n}\n")
                log.flush()
        (conf / "state.json.tmp").write_text("{}")
        os.replace(conf / "state.json.tmp", conf / "state.json")
        (conf / "daemon.pid").write_text("42\n")
        time.sleep(0.3)
        # Then the watcher is handed nothing for them
        assert w.seen == []
        # And an edit of the helper beside them is still reported
        helper.write_text("X = 2  # edited\n")
        assert helper in collect(w, helper)
    assert all(path.endswith(".py") for path in w.seen)
