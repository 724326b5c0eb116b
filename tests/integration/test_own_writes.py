"""The daemon never wakes its own file watcher: a catch-up with state and logs beside the config.

Many studios keep one folder for the whole daemon: config, state file and
journal, logs and pid file. The config's folder is on the plugins' import path
(``config_dir_on_path``, on by default) and so is watched for helper edits;
the daemon's own writes there must not reach the watcher at all.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import FileSystemEvent

from shotgun_events.app import Daemon, Options
from shotgun_events.config.load import load_config
from shotgun_events.plugins.watcher import PluginWatcher
from shotgun_events.service.sdnotify import Notifier, NullReporter
from shotgun_events.service.signals import StopFlag
from shotgun_events.site import LocalSite

EVENTS = 3000

ONE_FOLDER = """\
[daemon]
pidFile = {folder}/shotgunEventDaemon.pid
eventIdFile = {folder}/shotgunEventDaemon.id
logPath = {folder}
logFile = shotgunEventDaemon.log
timing_log = on
logging = 10
fetch_interval = 0.2

[shotgun]
server = {url}
name = shotgun_events
key = local

[plugins]
paths = {folder}/plugins
"""

PLUGIN = """\
import studio


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", seen, None, None)


def seen(sg, logger, event, args):
    logger.info("event %d seen by %s", event["id"], studio.NAME)
"""


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder with a short path: the pid file's control socket beside the config
    must fit a socket path's 107 bytes, which pytest's per-worker folders can exceed."""
    with tempfile.TemporaryDirectory(prefix="sgev-") as folder:
        yield Path(folder)


def test_a_catch_up_with_state_and_logs_beside_the_config_never_wakes_the_watcher(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one folder holding the config, a helper the plugins import, the state, the
    # logs (with the timing log) and the pid file, and a site with events to catch up on
    folder = short_tmp / "shotgunEvents"
    (folder / "plugins").mkdir(parents=True)
    (folder / "studio.py").write_text('NAME = "studio"\n')
    for n in range(3):
        (folder / "plugins" / f"p{n}.py").write_text(PLUGIN)
    handed: list[str] = []
    original = PluginWatcher._on_event

    def counting(self: PluginWatcher, event: FileSystemEvent) -> None:
        handed.append(os.fsdecode(event.src_path))
        original(self, event)

    monkeypatch.setattr(PluginWatcher, "_on_event", counting)
    with LocalSite(scripts={"shotgun_events": "local"}) as site:
        config_path = folder / "shotgunEventDaemon.conf"
        config_path.write_text(ONE_FOLDER.format(folder=folder, url=site.url))
        config = load_config(config_path)
        flag = StopFlag()
        daemon = Daemon.build(
            config,
            Options(foreground=False, from_id=site.newest_event_id() + 1),
            flag=flag,
            reporter=NullReporter(),
            systemd=Notifier.from_environ({}),
        )
        _, last = site.append_events(EVENTS)
        # When the daemon catches up on them
        runner = threading.Thread(target=daemon.run, name="daemon-under-test")
        runner.start()
        try:
            deadline = time.monotonic() + 120
            while not (
                daemon.engine.runners
                and all(r.cursor.last_id >= last for r in daemon.engine.runners)
            ):
                assert time.monotonic() < deadline, "the catch-up did not finish"
                time.sleep(0.1)
            # And a helper beside the config is edited afterwards
            (folder / "studio.py").write_text('NAME = "studio, edited"\n')
            deadline = time.monotonic() + 30
            while "edited" not in (folder / "plugin.p0").read_text():
                assert time.monotonic() < deadline, "the helper's edit was not picked up"
                site.append_events(1)
                time.sleep(0.2)
            # (the loop's own scan may notice it first; the watcher reports it too)
            while not handed:
                assert time.monotonic() < deadline, "the watcher never reported the edit"
                time.sleep(0.1)
        finally:
            flag.stop_requested.set()
            runner.join(60)
            daemon.close()
    # Then the daemon wrote its state, journal, logs and timing log there
    written = {p.name for p in folder.iterdir()}
    assert {"shotgunEventDaemon.id", "shotgunEventDaemon.log", "plugin.p0"} <= written
    assert "shotgunEventDaemon.log.timing" in written
    # And the watcher was handed no event for any of them: only the helper's edit
    assert {Path(p).name for p in handed} == {"studio.py"}, sorted(set(handed))[:10]
