"""[http] on: catch-up with Prometheus scraping /metrics every second, and the cost of a scrape.

Catch-up: the site holds N events; 10 plugins with trivial callbacks (every
event) start before the first one; the daemon (``Daemon.build`` in this
process, ``dispatch = parallel``) catches up once with ``[http]`` off and
once with it on and a client process scraping ``/metrics`` every second, back to
back on the same events, in alternating order. The ratio on/off is formed
run by run; the target is >= 0.97.

Scrape: 50 plugins loaded and each past a few events; the time of one
``GET /metrics`` over a real connection (median of 50), target <= 20 ms,
and of rendering the registry alone.

Run alone: ``python bench/bench_observe.py [--quick]``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import PROFILES, Profile, Row, at_least, at_most, format_table, median, scratch
from rigs import InProcessDaemon, SiteProcess
from workload import standard_plugins, write_config, write_plugins

from shotgun_events.observe import metrics

PLUGINS = 10
SCRAPE_PLUGINS = 50
SCRAPES = 50


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_http(config: Path) -> str:
    """Turn [http] on in a written config; return the base URL."""
    port = _free_port()
    config.write_text(config.read_text() + f"\n[http]\nlisten = 127.0.0.1:{port}\n")
    return f"http://127.0.0.1:{port}"


#: Prometheus in miniature, in its own process as the real one is: GET the URL every second.
SCRAPER = """
import sys, time, urllib.request
while True:
    time.sleep(1.0)
    with urllib.request.urlopen(sys.argv[1], timeout=10) as reply:
        reply.read()
"""


def start_scraper(url: str) -> subprocess.Popen[bytes]:
    """Scrape ``url`` every second from a child process until it is terminated."""
    return subprocess.Popen([sys.executable, "-c", SCRAPER, url])


def catch_up(
    site: SiteProcess, folder: Path, plugins: Path, first: int, last: int, http: bool
) -> float:
    """Events/s of one catch-up of first..site end, with [http] on or off."""
    config = write_config(folder, url=site.url, plugins=plugins, dispatch="parallel")
    base = _with_http(config) if http else None
    daemon = InProcessDaemon(config, from_id=first)
    scraper = None
    try:
        if base is not None:
            assert daemon.daemon.observer is not None
            daemon.daemon.observer.start()
            scraper = start_scraper(f"{base}/metrics")
        start = time.perf_counter()
        daemon.start()
        daemon.catch_up()
        elapsed = time.perf_counter() - start
    finally:
        if scraper is not None:
            scraper.terminate()
            scraper.wait()
        daemon.close()
    return (last - first + 1) / elapsed


def scrape_cost(site: SiteProcess, folder: Path) -> tuple[float, float, int]:
    """(ms per GET /metrics, ms per render, bytes) with 50 plugins loaded."""
    plugins = write_plugins(folder / "plugins50", standard_plugins(SCRAPE_PLUGINS))
    config = write_config(folder / "scrape", url=site.url, plugins=plugins)
    base = _with_http(config)
    first, _ = site.append(20)
    daemon = InProcessDaemon(config, from_id=first)
    try:
        observer = daemon.daemon.observer
        assert observer is not None
        observer.start()
        daemon.start()
        daemon.catch_up()
        timings = []
        size = 0
        for _ in range(SCRAPES):
            start = time.perf_counter()
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:
                size = len(reply.read())
            timings.append((time.perf_counter() - start) * 1000)
        view = observer._view
        registry = metrics.build_registry(view)
        renders = []
        for _ in range(SCRAPES):
            start = time.perf_counter()
            metrics.render(registry)
            renders.append((time.perf_counter() - start) * 1000)
    finally:
        daemon.close()
    return statistics.median(timings), statistics.median(renders), size


def run(profile: Profile) -> list[Row]:
    """Rows of section 8 (observe)."""
    off: list[float] = []
    on: list[float] = []
    ratios: list[float] = []
    with scratch("observe") as folder, SiteProcess(folder) as site:
        first, last = site.append(profile.catchup_events)
        plugins = write_plugins(folder / "plugins", standard_plugins(PLUGINS))
        for run_number in range(profile.runs):
            rates = {}
            for http in (False, True) if run_number % 2 == 0 else (True, False):
                label = f"{'on' if http else 'off'}{run_number}"
                rates[http] = catch_up(site, folder / label, plugins, first, last, http)
            off.append(rates[False])
            on.append(rates[True])
            ratios.append(rates[True] / rates[False])
        per_scrape, per_render, size = scrape_cost(site, folder)
    n = f"{profile.catchup_events:,} events, {PLUGINS} plugins, parallel"
    ratio = median(ratios)
    return [
        Row("8 observe", f"catch-up, [http] off ({n})", median(off), "events/s", runs=off),
        Row(
            "8 observe",
            "catch-up, [http] on, /metrics scraped every 1 s",
            median(on),
            "events/s",
            runs=on,
        ),
        Row(
            "8 observe",
            "catch-up on / off",
            ratio,
            "x",
            ">= 0.97",
            at_least(ratio, 0.97),
            runs=ratios,
        ),
        Row(
            "8 observe",
            f"GET /metrics with {SCRAPE_PLUGINS} plugins (over HTTP, median of {SCRAPES})",
            per_scrape,
            "ms",
            "<= 20 ms",
            at_most(per_scrape, 20),
            note=f"{size:,} bytes",
        ),
        Row(
            "8 observe", f"render of the registry alone, {SCRAPE_PLUGINS} plugins", per_render, "ms"
        ),
    ]


def main() -> None:
    """Run alone and print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
