"""The ``demo`` command: a seeded local site with live activity, and the daemon on it.

Everything happens in a temporary folder: the site's database, the config
file, the state file and the logs. The daemon runs exactly as ``foreground``
does, with the example plugins shipped with the package.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from shotgun_events.app import Options, prepare
from shotgun_events.service.lifecycle import foreground
from shotgun_events.site import LocalSite
from shotgun_events.state.store import read_positions

DEMO_CONFIG = """\
# Written by `shotgunEventDaemon demo`; a real config is documented in
# conf/shotgunEventDaemon.conf.
[daemon]
pidFile = {folder}/shotgunEventDaemon.pid
eventIdFile = {folder}/state.json
logMode = 0
logPath = {folder}/logs
logFile = shotgunEventDaemon.log
logging = 20
fetch_interval = 1
backlog_timeout = 30

[shotgun]
server = {url}
name = shotgun_events
key = local

[plugins]
paths = {plugins}
"""


def example_plugins() -> Path:
    """Return the folder of the example plugins, installed or in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundled" / "plugins", here.parents[1] / "plugins"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the example plugins are not installed with this package")


def run_demo(*, duration: float = 30.0, rate: float = 4.0) -> int:
    """Run the demo for ``duration`` seconds (0 = until Ctrl-C); return the exit code."""
    with (
        tempfile.TemporaryDirectory(prefix="shotgun_events_demo_") as folder,
        LocalSite(Path(folder) / "site.sqlite3", seed=True) as site,
    ):
        config_path = Path(folder) / "shotgunEventDaemon.conf"
        config_path.write_text(
            DEMO_CONFIG.format(folder=folder, url=site.url, plugins=example_plugins())
        )
        config_path.chmod(0o600)
        _say(f"local site running at {site.url} (script 'shotgun_events', key 'local')")
        _say(f"demo folder: {folder}; plugins: {example_plugins()}")
        _say(f"site activity: about {rate:g} events per second; they flow below")
        if duration > 0:
            _say(f"stopping after {duration:g} s (Ctrl-C stops sooner)")
            _stop_after(duration)
        else:
            _say("press Ctrl-C to stop")
        site.start_activity(rate)
        try:
            code = foreground(
                pid_file=None,
                prepare=lambda: prepare(config_path, Options(foreground=True)),
                config_path=config_path,
            )
        finally:
            site.stop_activity()
        _summary(Path(folder) / "state.json", site.newest_event_id())
        return code


def _stop_after(seconds: float) -> None:
    """Send ourselves SIGTERM later, so the demo stops the way a service does."""
    timer = threading.Timer(seconds, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()


def _summary(state_file: Path, newest: int) -> None:
    positions = read_positions(state_file) or {}
    _say(f"done; the site's newest event is {newest}; where each plugin stopped:")
    for (_, name), cursor in sorted(positions.items()):
        _say(f"  {name:<20} last event {cursor.last_id}  (waiting for {len(cursor.backlog)})")


def _say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)
