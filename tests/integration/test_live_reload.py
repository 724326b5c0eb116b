"""Live plugins (issue 5): the real daemon reloads edited, broken, new, deleted and moved plugins.

Each test plugin records every event as a ``<plugin> <id> <version>`` line, the
plugin name taken from its own file name (so a renamed file records its new
name) and the version written into its source (or taken from a helper
module), so a test can tell which version of the code handled which event.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from .conftest import DaemonRig, wait_for

PLUGIN = '''\
"""Records '<plugin> <id> <version>' lines (live reload test plugin)."""
import os
{imports}
RECORD = os.environ["RECORD_FILE"]
NAME = os.path.basename(__file__)[:-3]
VERSION = {version}


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", record, None, None)


def record(sg, logger, event, args):
    # One write per line with O_APPEND: lines from several plugins never interleave.
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("%s %d %s\\n" % (NAME, event["id"], VERSION)).encode())
    finally:
        os.close(fd)
'''

#: The two watch modes: inotify (watchdog's native observer) and the polling fallback.
WATCH_MODES = ["auto", "polling"]
#: Generous bound for anything the daemon does after a file change (a loaded CI machine).
SLOW = 30.0
#: The [plugins] poll_interval of these tests.
POLL_INTERVAL = 0.5


def plugin_source(version: str, imports: str = "") -> str:
    """Source of a recording plugin; ``version`` is a Python expression."""
    return PLUGIN.format(version=version, imports=imports)


def configure(
    rig: DaemonRig,
    *,
    watch: str = "auto",
    fetch_interval: float = 0.2,
    daemon: str = "",
    plugins: str = "",
    poll_interval: float = POLL_INTERVAL,
) -> None:
    """Write the rig's config with a watch mode, a fetch interval and extra lines."""
    rig.write_config(
        extra=daemon,
        plugins_extra="\n".join(
            line
            for line in (f"watch = {watch}", f"poll_interval = {poll_interval}", plugins)
            if line
        ),
    )
    text = rig.config.read_text()
    rig.config.write_text(
        text.replace("fetch_interval = 0.2", f"fetch_interval = {fetch_interval}")
    )


def write_plugin(rig: DaemonRig, name: str, version: str, imports: str = "") -> Path:
    path = rig.plugins / f"{name}.py"
    path.write_text(plugin_source(version, imports))
    return path


def records(rig: DaemonRig) -> list[tuple[str, int, str]]:
    """Every recorded (plugin, event id, version), in the order they were written."""
    if not rig.record_file.exists():
        return []
    rows = []
    for line in rig.record_file.read_text().splitlines():
        name, event_id, version = line.split()
        rows.append((name, int(event_id), version))
    return rows


def got(rig: DaemonRig, name: str) -> list[tuple[int, str]]:
    """(event id, version) pairs one plugin recorded, in order."""
    return [(i, v) for n, i, v in records(rig) if n == name]


def ids(rig: DaemonRig, name: str) -> list[int]:
    return [i for i, _ in got(rig, name)]


def loads_of(rig: DaemonRig, name: str) -> int:
    """How many times the log says plugin ``name`` was (re)loaded successfully."""
    return len(re.findall(rf"loaded plugin {re.escape(name)} from ", rig.log_text()))


def digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def wait_loaded(rig: DaemonRig, path: Path, what: str = "") -> float:
    """Wait until the log says the current content of ``path`` was loaded; return when."""
    needle = f"from {path} ("
    sha = f"sha1 {digest(path)}"

    def loaded() -> bool:
        return any(needle in line and sha in line for line in rig.log_text().splitlines())

    wait_for(loaded, timeout=SLOW, what=what or f"{path.name} reloaded with its new content")
    return time.monotonic()


def wait_ids(rig: DaemonRig, name: str, last: int) -> None:
    wait_for(lambda: ids(rig, name)[-1:] == [last], timeout=SLOW, what=f"{name} reaching {last}")


def load_errors(rig: DaemonRig) -> list[str]:
    return [
        line
        for line in rig.log_text().splitlines()
        if "SyntaxError" in line or "failed to load" in line
    ]


def start(rig: DaemonRig, *args: str) -> None:
    rig.start(*args)
    rig.wait_ready()


@pytest.mark.parametrize("watch", WATCH_MODES)
def test_edited_plugin_takes_effect_for_the_next_event_without_loss_or_repeat(
    rig: DaemonRig, watch: str
) -> None:
    # Given a plugin v1 and a daemon that polls the site only every 5 s, so that
    # only the watcher can make an edit take effect quickly
    configure(rig, watch=watch, fetch_interval=5)
    path = write_plugin(rig, "rec", "'v1'")
    before_first, before_last = rig.site.append_events(5)
    start(rig, "--from-id", str(before_first))
    wait_ids(rig, "rec", before_last)
    # When the plugin is edited to v2
    saved_at = time.monotonic()
    path.write_text(plugin_source("'v2'"))
    reloaded_at = wait_loaded(rig, path)
    delay = reloaded_at - saved_at
    print(f"watch={watch}: reload logged {delay:.2f} s after the save")
    # And more events arrive after the edit
    after_first, after_last = rig.site.append_events(5)
    wait_ids(rig, "rec", after_last)
    assert rig.stop() == 0
    # Then each event was delivered exactly once: by v1 before the edit, by v2 after
    assert got(rig, "rec") == [(i, "v1") for i in range(before_first, before_last + 1)] + [
        (i, "v2") for i in range(after_first, after_last + 1)
    ]
    # And the reload came within 2 s of the save. Expected: the 0.3 s debounce + the idle
    # loop's 0.1 s step (+ up to the 0.5 s poll interval when polling); measured 0.35-0.45 s
    # (inotify) and 0.75-0.8 s (polling), also with 3 busy processes on 2 cores.
    assert delay < 2.0, f"the edit took {delay:.2f} s to be reloaded"


@pytest.mark.parametrize("watch", WATCH_MODES)
def test_change_with_an_older_mtime_and_the_same_size_is_picked_up(
    rig: DaemonRig, watch: str
) -> None:
    # Given a running plugin v1
    configure(rig, watch=watch)
    path = write_plugin(rig, "rec", "'v1'")
    start(rig)
    first, last = rig.site.append_events(3)
    wait_ids(rig, "rec", last)
    old = path.stat()
    # When its content changes to v2 (same size) and its mtime is set an hour back
    path.write_text(plugin_source("'v2'"))
    assert path.stat().st_size == old.st_size
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns - 3600 * 10**9))
    wait_loaded(rig, path)
    # Then events after it are handled by v2
    after_first, after_last = rig.site.append_events(3)
    wait_ids(rig, "rec", after_last)
    assert rig.stop() == 0
    assert got(rig, "rec") == [(i, "v1") for i in range(first, last + 1)] + [
        (i, "v2") for i in range(after_first, after_last + 1)
    ]


def test_content_change_keeping_mtime_and_size_is_picked_up_with_inotify(rig: DaemonRig) -> None:
    # Given a running plugin v1 and an inotify watcher
    configure(rig, watch="auto")
    path = write_plugin(rig, "rec", "'v1'")
    start(rig)
    _, last = rig.site.append_events(3)
    wait_ids(rig, "rec", last)
    old = path.stat()
    # When the content changes but size and mtime are put back exactly as they were
    path.write_text(plugin_source("'v2'"))
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert (path.stat().st_mtime_ns, path.stat().st_size) == (old.st_mtime_ns, old.st_size)
    # Then the content hash of the reported path makes it reload
    wait_loaded(rig, path)
    after_first, after_last = rig.site.append_events(3)
    wait_ids(rig, "rec", after_last)
    assert rig.stop() == 0
    assert got(rig, "rec")[-3:] == [(i, "v2") for i in range(after_first, after_last + 1)]


@pytest.mark.parametrize(
    ("watch", "dispatch"), [("auto", "parallel"), ("polling", "parallel"), ("auto", "serial")]
)
def test_broken_edit_stops_the_plugin_and_the_fix_resumes_where_it_stopped(
    rig: DaemonRig, watch: str, dispatch: str
) -> None:
    # Given a plugin v1 and a witness plugin that keeps running
    configure(rig, watch=watch, daemon=f"dispatch = {dispatch}")
    path = write_plugin(rig, "rec", "'v1'")
    write_plugin(rig, "witness", "'w'")
    start(rig)
    first, last = rig.site.append_events(3)
    wait_ids(rig, "rec", last)
    # When the plugin is saved with a syntax error
    path.write_text(plugin_source("'v2' +"))
    wait_for(
        lambda: any(
            "failed to load" in line and str(path) in line for line in rig.log_text().splitlines()
        ),
        timeout=SLOW,
        what="the broken edit reported, naming the file",
    )
    # And events arrive while it is broken
    down_first, down_last = rig.site.append_events(4)
    wait_ids(rig, "witness", down_last)
    # Then it handles none of them
    assert ids(rig, "rec") == list(range(first, last + 1))
    # When the file is fixed, and more events arrive
    path.write_text(plugin_source("'v3'"))
    wait_loaded(rig, path)
    after_first, after_last = rig.site.append_events(2)
    wait_ids(rig, "rec", after_last)
    wait_ids(rig, "witness", after_last)
    assert rig.stop() == 0
    # Then it resumed where it stopped: every event once, the missed ones by the fixed version
    assert got(rig, "rec") == [(i, "v1") for i in range(first, last + 1)] + [
        (i, "v3") for i in [*range(down_first, down_last + 1), *range(after_first, after_last + 1)]
    ]
    assert ids(rig, "witness") == list(range(first, after_last + 1))


@pytest.mark.parametrize("watch", WATCH_MODES)
def test_changed_helper_module_reloads_its_importers_and_no_other_plugin(
    rig: DaemonRig, watch: str
) -> None:
    # Given _common/util.py imported by plugins a and b, a module in a helper path
    # imported by c, and d importing neither
    libs = rig.folder / "libs"
    libs.mkdir()
    (libs / "shared_lib.py").write_text('VERSION = "lib1"\n')
    common = rig.plugins / "_common"
    common.mkdir()
    util = common / "util.py"
    util.write_text('VERSION = "util1"\n')
    configure(rig, watch=watch, plugins=f"helper_paths = {libs}")
    write_plugin(rig, "a", "util.VERSION", "from _common import util")
    write_plugin(
        rig, "b", "'b-' + VERSION_OF_UTIL", "from _common.util import VERSION as VERSION_OF_UTIL"
    )
    write_plugin(rig, "c", "shared_lib.VERSION", "import shared_lib")
    write_plugin(rig, "d", "'d1'")
    start(rig)
    first, last = rig.site.append_events(2)
    for name in "abcd":
        wait_ids(rig, name, last)
    # When util.py changes
    util.write_text('VERSION = "util2"\n')
    wait_for(lambda: loads_of(rig, "a") == 2 and loads_of(rig, "b") == 2, SLOW, "a and b reloaded")
    second_first, second_last = rig.site.append_events(2)
    for name in "abcd":
        wait_ids(rig, name, second_last)
    # Then a and b use the new helper, c and d were not reloaded
    assert [loads_of(rig, n) for n in "cd"] == [1, 1]
    # When the helper-path module changes
    (libs / "shared_lib.py").write_text('VERSION = "lib2"\n')
    wait_for(lambda: loads_of(rig, "c") == 2, SLOW, "c reloaded")
    third_first, third_last = rig.site.append_events(2)
    for name in "abcd":
        wait_ids(rig, name, third_last)
    assert rig.stop() == 0
    # Then only c was reloaded, with the new helper version; every event once everywhere
    assert [loads_of(rig, n) for n in "abcd"] == [2, 2, 2, 1]
    phases = [range(first, last + 1), range(second_first, second_last + 1)]
    phases.append(range(third_first, third_last + 1))

    def expect(versions: list[str]) -> list[tuple[int, str]]:
        return [(i, v) for phase, v in zip(phases, versions, strict=True) for i in phase]

    assert got(rig, "a") == expect(["util1", "util2", "util2"])
    assert got(rig, "b") == expect(["b-util1", "b-util2", "b-util2"])
    assert got(rig, "c") == expect(["lib1", "lib1", "lib2"])
    assert got(rig, "d") == expect(["d1", "d1", "d1"])
    assert not load_errors(rig)


@pytest.mark.parametrize("watch", WATCH_MODES)
def test_new_plugin_starts_at_the_current_position_and_deleted_plugin_stops(
    rig: DaemonRig, watch: str
) -> None:
    # Given a running plugin that has handled some events
    configure(rig, watch=watch)
    doomed = write_plugin(rig, "doomed", "'v1'")
    start(rig)
    first, last = rig.site.append_events(3)
    wait_ids(rig, "doomed", last)
    # When a new plugin file is dropped in
    fresh = write_plugin(rig, "fresh", "'v1'")
    wait_loaded(rig, fresh)
    # And the old one is deleted
    doomed.unlink()
    wait_for(lambda: "plugin doomed unloaded" in rig.log_text(), SLOW, "doomed unloaded")
    after_first, after_last = rig.site.append_events(3)
    wait_ids(rig, "fresh", after_last)
    assert rig.stop() == 0
    # Then the new plugin got only the events after it appeared, the deleted one none of them
    assert ids(rig, "fresh") == list(range(after_first, after_last + 1))
    assert ids(rig, "doomed") == list(range(first, last + 1))


@pytest.mark.parametrize("watch", WATCH_MODES)
def test_renamed_plugin_starts_as_a_new_plugin_and_the_old_name_keeps_its_position(
    rig: DaemonRig, watch: str
) -> None:
    # Given plugin a that has handled some events
    configure(rig, watch=watch)
    a = write_plugin(rig, "a", "'v1'")
    start(rig)
    first, last = rig.site.append_events(3)
    wait_ids(rig, "a", last)
    # When it is renamed (mv a.py b.py)
    b = rig.plugins / "b.py"
    a.rename(b)
    wait_for(
        lambda: "plugin b looks like plugin a renamed" in rig.log_text(), SLOW, "rename logged"
    )
    moved_first, moved_last = rig.site.append_events(3)
    wait_ids(rig, "b", moved_last)
    # Then, as documented, b is a new plugin starting at the current position and a stops
    assert ids(rig, "a") == list(range(first, last + 1))
    assert ids(rig, "b") == list(range(moved_first, moved_last + 1))
    # When it is renamed back
    b.rename(a)
    wait_for(lambda: loads_of(rig, "a") == 2, SLOW, "a loaded again")
    _, back_last = rig.site.append_events(2)
    wait_ids(rig, "a", back_last)
    assert rig.stop() == 0
    # Then a resumes from the position kept under its name: what b handled meanwhile, a handles too
    assert ids(rig, "a") == list(range(first, back_last + 1))


@pytest.mark.parametrize("watch", WATCH_MODES)
def test_editor_style_saves_never_import_a_half_written_file(rig: DaemonRig, watch: str) -> None:
    # Given a running plugin, a 1 s reload debounce, much longer than the loop's 0.2 s
    # fetch interval (each round scans the plugin folder by stat), and a polling observer
    # that looks only every 3 s (a network file system)
    configure(rig, watch=watch, plugins="reload_debounce = 1.0", poll_interval=3)
    path = write_plugin(rig, "rec", "'v1'")
    start(rig)
    first, last = rig.site.append_events(2)
    wait_ids(rig, "rec", last)
    # When an editor saves v2 by truncating, writing half, pausing 0.6 s (less than the
    # debounce, and long enough for a few rounds of the loop), then writing the rest
    text = plugin_source("'v2'").encode()
    cut = text.index(b"VERSION = ") + len(b"VERSION = '")  # mid-string: a syntax error on its own
    with open(path, "wb") as out:
        out.write(text[:cut])
        out.flush()
        time.sleep(0.6)
        out.write(text[cut:])
    wait_loaded(rig, path)
    # And another saves v3 to a temporary file and renames it over the plugin
    temp = rig.plugins / ".rec.py.swp"
    temp.write_text(plugin_source("'v3'"))
    os.replace(temp, path)
    wait_loaded(rig, path)
    after_first, after_last = rig.site.append_events(2)
    wait_ids(rig, "rec", after_last)
    assert rig.stop() == 0
    # Then no partial file was ever imported, and the last version handles new events
    assert load_errors(rig) == []
    assert got(rig, "rec")[-2:] == [(i, "v3") for i in range(after_first, after_last + 1)]
    assert ids(rig, "rec") == [*range(first, last + 1), *range(after_first, after_last + 1)]
