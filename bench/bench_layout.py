"""Layouts (issue 21): the same catch-ups with the daemon's files in one folder and apart.

Many studios keep the config, the state file (``eventIdFile`` and its
journal), the logs and the pid file in one folder; the shipped example
config (``conf/shotgunEventDaemon.conf``) keeps state and logs in folders of
their own. The daemon watches its config's folder for helper modules
(``[plugins] config_dir_on_path``, on by default), so in the first layout its
own writes land in a watched folder. Nothing else differs: the shipped
defaults (``dispatch = auto``, ``watch = auto``...), 10 plugins of which every
fifth calls the site (``workload.standard_plugins``), the real engine loop in
this process with the plugin watcher started, the site as its own process.

Two catch-ups, each run in both layouts in the same run, interleaved and in
alternating order (A B, B A, ...): on loopback, and from a site 100 ms away
(the site's latency control). Target: one folder / apart between 0.95 and
1.05 (the median of the run-by-run ratios).

Run alone: ``python bench/bench_layout.py [--quick]``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from common import PROFILES, Profile, Row, format_table, median, scratch
from rigs import InProcessDaemon, SiteProcess
from workload import LAYOUTS, callers, standard_plugins, write_config, write_plugins

SECTION = "13 layouts"
PLUGINS = 10
#: Milliseconds the distant site takes to answer each call.
DISTANT_MS = 100
#: The band the one-folder layout must stay in, as a ratio to the shipped layout.
BAND = (0.95, 1.05)
LABELS = {"shipped": "state and logs apart (shipped layout)", "one folder": "all in one folder"}


@dataclass(frozen=True)
class Sizes:
    """Events per catch-up, per profile."""

    loopback: int
    distant: int


SIZES = {
    "full": Sizes(50_000, 20_000),
    "quick": Sizes(10_000, 3_000),
    "tiny": Sizes(1_200, 600),
}


def catch_up(
    root: Path, site: SiteProcess, plugins: Path, layout_name: str, first: int, last: int
) -> tuple[float, bool]:
    """One catch-up of first..last in a layout: (events/s, every plugin got all in order)."""
    config = write_config(root, url=site.url, plugins=plugins, layout_name=layout_name)
    names = [spec.name for spec in standard_plugins(PLUGINS)]
    daemon = InProcessDaemon(config, from_id=first)
    try:
        daemon.start()
        seconds = daemon.run_until(names, last)
        stats = daemon.plugin_stats()
    finally:
        daemon.close()
    events = last - first + 1
    ok = len(stats) == PLUGINS and all(
        s["calls"] == events and s["out_of_order"] == 0 for s in stats.values()
    )
    return events / seconds, ok


def compare(
    folder: Path, site: SiteProcess, plugins: Path, case: str, events: int, runs: int
) -> tuple[dict[str, list[float]], list[float], bool]:
    """Both layouts ``runs`` times on the same events: (rates by layout, ratios, all ok)."""
    first, last = site.append(events)
    rates: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    ratios: list[float] = []
    ok = True
    for run in range(runs):
        # Alternating order: a drift of the machine hits both layouts alike.
        for name in LAYOUTS if run % 2 == 0 else LAYOUTS[::-1]:
            root = folder / f"{case}-{name.replace(' ', '_')}-{run}"
            rate, complete = catch_up(root, site, plugins, name, first, last)
            rates[name].append(rate)
            ok &= complete
        ratios.append(rates["one folder"][-1] / rates["shipped"][-1])
    return rates, ratios, ok


def rows_for(title: str, rates: dict[str, list[float]], ratios: list[float]) -> list[Row]:
    """The rows of one catch-up: both layouts' rates and their ratio."""
    out = [
        Row(
            SECTION,
            f"{title}: {LABELS['shipped']}",
            median(rates["shipped"]),
            "events/s",
            runs=rates["shipped"],
        ),
        Row(
            SECTION,
            f"  {LABELS['one folder']}",
            median(rates["one folder"]),
            "events/s",
            runs=rates["one folder"],
            note="config, state file + journal, logs and pid file in one folder",
        ),
    ]
    ratio = median(ratios)
    out.append(
        Row(
            SECTION,
            "  one folder / apart",
            ratio,
            "x",
            f"{BAND[0]:g} - {BAND[1]:g}",
            BAND[0] <= ratio <= BAND[1],
            note="runs: " + ", ".join(f"{r:.2f}" for r in ratios),
            runs=ratios,
        )
    )
    return out


def run(profile: Profile) -> list[Row]:
    """Measure and return the rows of section 13."""
    sizes = SIZES[profile.name]
    plugins_note = f"{PLUGINS} plugins ({callers(PLUGINS)} call the site)"
    rows: list[Row] = []
    ok = True
    with scratch("layout") as folder, SiteProcess(folder) as site:
        plugins = write_plugins(folder / "plugins", standard_plugins(PLUGINS))
        rates, ratios, done = compare(
            folder, site, plugins, "loopback", sizes.loopback, profile.runs
        )
        ok &= done
        rows += rows_for(
            f"catch-up {sizes.loopback:,} events, {plugins_note}, loopback", rates, ratios
        )
        site.control("set_latency", ms=DISTANT_MS)
        try:
            rates, ratios, done = compare(
                folder, site, plugins, "distant", sizes.distant, profile.runs
            )
        finally:
            site.control("set_latency", ms=0)
        ok &= done
        rows += rows_for(
            f"catch-up {sizes.distant:,} events, {plugins_note}, {DISTANT_MS} ms site",
            rates,
            ratios,
        )
    rows.append(
        Row(SECTION, "every plugin got every event, in order", 0 if ok else 1, "failures", "0", ok)
    )
    return rows


def main() -> None:
    """Print this benchmark's rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
