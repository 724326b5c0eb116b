"""Memory: RSS growth of the daemon process over a long catch-up, and over plugin reloads.

- events: the real daemon (``shotgunEventDaemon foreground``, 10 quick
  plugins, parallel dispatch, plugin watching on) catches up on S events;
  its RSS is read from /proc once every plugin saved the last id. Then the
  site gets L - S more events, and the RSS is read again once they are all
  handled. The figure is RSS(L) - RSS(S) (target < 20 MB for S = 100,000,
  L = 1,000,000).
- reloads: in a child process, the real ``PluginLoader`` reloads one plugin
  file R times (each time with new content, as an edit would); RSS after
  the R reloads minus RSS after a warm-up of 20 (target < 10 MB for 1,000).

Run alone: ``python bench/bench_memory.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import PROFILES, Profile, Row, at_most, format_table, rss_mb, scratch
from rigs import DaemonProcess, SiteProcess
from workload import standard_plugins, write_config, write_plugins

PLUGINS = 10
WARM_UP = 20
RELOADED = '''\
"""Reload benchmark plugin, version {version}."""
import json

VERSION = {version}
TABLE = {{"v": VERSION, "rows": list(range(200))}}


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", on_change, {{"Shotgun_Shot_Change": None}})
    reg.registerCallback("shotgun_events", "local", on_new, {{"Shotgun_Shot_New": None}})
    reg.registerCallback("shotgun_events", "local", on_any, None, json.dumps(TABLE))


def on_change(sg, logger, event, args):
    return VERSION


def on_new(sg, logger, event, args):
    return VERSION


def on_any(sg, logger, event, args):
    return args
'''


def events_growth(profile: Profile) -> tuple[float, float]:
    """(RSS after S events, RSS after L events) of the daemon process, MiB."""
    with scratch("memory") as folder, SiteProcess(folder) as site:
        first, small_last = site.append(profile.memory_small)
        plugins = write_plugins(folder / "plugins", standard_plugins(PLUGINS))
        names = [p.name for p in standard_plugins(PLUGINS)]
        config = write_config(folder / "daemon", url=site.url, plugins=plugins)
        daemon = DaemonProcess(config, from_id=first)
        try:
            daemon.wait_positions(names, small_last)
            small = daemon.rss_mb()
            _, large_last = site.append(profile.memory_large - profile.memory_small)
            daemon.wait_positions(names, large_last, timeout=1800)
            large = daemon.rss_mb()
        finally:
            daemon.stop()
    return small, large


def reload_child(folder: Path, reloads: int) -> None:
    """In this (child) process: reload one plugin file, print RSS before and after as JSON."""
    from shotgun_events.plugins.loader import PluginLoader

    plugins = folder / "plugins"
    plugins.mkdir(parents=True)
    path = plugins / "reloaded.py"
    loader = PluginLoader(paths=[plugins])

    def edit_and_scan(version: int) -> None:
        path.write_text(RELOADED.format(version=version))
        result = loader.scan(changed=[path])
        if version and not result.reloaded:
            raise RuntimeError(f"version {version} was not reloaded")
        if not loader.plugins[0].active:
            raise RuntimeError(f"the plugin failed to load: {loader.plugins[0].reason}")

    for version in range(WARM_UP):
        edit_and_scan(version)
    before = rss_mb()
    for version in range(WARM_UP, WARM_UP + reloads):
        edit_and_scan(version)
    print(json.dumps({"before": before, "after": rss_mb()}))


def reload_growth(profile: Profile) -> tuple[float, float]:
    """(RSS after the warm-up, RSS after the reloads) of a child process, MiB."""
    with scratch("reload") as folder:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--reload-child",
                str(folder),
                "--reloads",
                str(profile.reloads),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    return float(figures["before"]), float(figures["after"])


def run(profile: Profile) -> list[Row]:
    """Measure and return the rows of section 6."""
    small, large = events_growth(profile)
    before, after = reload_growth(profile)
    grown = large - small
    reload_grown = after - before
    return [
        Row("6 memory", f"daemon RSS after {profile.memory_small:,} events", small, "MiB"),
        Row("6 memory", f"daemon RSS after {profile.memory_large:,} events", large, "MiB"),
        Row(
            "6 memory",
            "RSS growth between the two (10 plugins, parallel)",
            grown,
            "MiB",
            "< 20 MB",
            at_most(grown, 19.07),
        ),
        Row(
            "6 memory",
            f"RSS growth over {profile.reloads:,} plugin reloads",
            reload_grown,
            "MiB",
            "< 10 MB",
            at_most(reload_grown, 9.53),
            note=f"{before:.1f} -> {after:.1f} MiB",
        ),
    ]


def main() -> None:
    """Print this benchmark's rows (or act as the reload child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reload-child", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--reloads", type=int, default=1000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reload_child:
        reload_child(Path(args.reload_child), args.reloads)
        return
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
