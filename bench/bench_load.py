"""Site load of the real daemon process: connections per credential, reads when idle.

The daemon runs as ``shotgunEventDaemon foreground`` against the site
process. Ten plugins use three distinct script credentials (4, 3 and 3
plugins), and each makes one ``sg`` call on its first event, so every
credential's connection is really opened. The site's counters give:

- connections opened during a catch-up of a few thousand events (target:
  1 for the engine + 1 per distinct plugin credential) and ``info`` calls
  (one per ``Shotgun`` object that connected);
- reads per idle minute: once caught up, the reads counted over an idle
  window of W seconds, scaled by 60 / W (target: 60 / fetch_interval; the
  count is exact to +-1 read, so the window spans many intervals).

Reads per 1,000 events during catch-up come from the catch-up benchmark.

Run alone: ``python bench/bench_load.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time

from common import PROFILES, Profile, Row, at_most, format_table, scratch
from rigs import SCRIPTS, DaemonProcess, SiteProcess
from workload import SITE_CALL_EVERY, PluginSpec, write_config, write_plugins

CREDENTIALS = [(name, key) for name, key in SCRIPTS.items() if name != "shotgun_events"]
SPECS = [
    PluginSpec(
        f"plugin{n:02d}", script=CREDENTIALS[n % len(CREDENTIALS)], site_every=SITE_CALL_EVERY
    )
    for n in range(10)
]


def run(profile: Profile) -> list[Row]:
    """Measure and return the connection and idle rows of section 4."""
    target = 1 + len({spec.script for spec in SPECS})
    out: list[Row] = []
    with scratch("load") as folder, SiteProcess(folder) as site:
        first, last = site.append(profile.load_events)
        plugins = write_plugins(folder / "plugins", SPECS)
        for mode in ("parallel", "serial"):
            config = write_config(
                folder / mode,
                url=site.url,
                plugins=plugins,
                dispatch=mode,
                fetch_interval=profile.idle_fetch_interval,
            )
            site.reset_counts()
            daemon = DaemonProcess(config, from_id=first)
            try:
                daemon.wait_positions([s.name for s in SPECS], last)
                calls, connections = site.counts()
                out.append(
                    Row(
                        "4 site load",
                        f"connections, daemon process, {mode} (10 plugins, 3 credentials)",
                        connections,
                        "conns",
                        f"<= {target}",
                        at_most(connections, target),
                        note=f"{calls.get('info', 0)} info calls",
                    )
                )
                if mode == "parallel":
                    out.append(idle_reads(site, profile))
            finally:
                daemon.stop()
    return out


def idle_reads(site: SiteProcess, profile: Profile) -> Row:
    """Reads per minute of a caught-up daemon, from a window of ``profile.idle_window`` s."""
    time.sleep(profile.idle_fetch_interval)  # let the poll that found the head finish
    site.reset_counts()
    time.sleep(profile.idle_window)
    calls, _ = site.counts()
    reads = calls.get("read", 0)
    per_minute = reads * 60 / profile.idle_window
    expected = 60 / profile.idle_fetch_interval
    return Row(
        "4 site load",
        f"reads per idle minute (fetch_interval {profile.idle_fetch_interval:g} s, "
        f"{reads} reads in {profile.idle_window:g} s x 60/{profile.idle_window:g})",
        per_minute,
        "reads/min",
        f"<= {expected:g}",
        # +-1 read is the resolution of a window: allow it.
        at_most(reads, profile.idle_window / profile.idle_fetch_interval + 1),
    )


def main() -> None:
    """Print this benchmark's rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
