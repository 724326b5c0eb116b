"""Wake-ups: commit -> callback start with webhooks and with adaptive polling; their costs.

The site's activity generator writes believable changes at 10 events/s in
this process (``LocalSite``; the commit clock of bench_latency notes when
each event became visible). The daemon is built by ``Daemon.build`` and runs
its real ``Engine.run`` loop in a thread, with one recording plugin.

- commit -> callback start p50/p99 with webhooks on (the site's own sender
  POSTs a signed delivery for every committed event to the daemon's
  receiver) and with adaptive polling only, at the default keys
  (fetch_interval 5, active_fetch_interval 1), over a window that opens
  6 s after the daemon started (its first poll can wait a whole idle
  fetch_interval: the figure is about a daemon that events keep arriving at);
- reads per idle minute with both on, at fetch_interval 5;
- a burst: 500 events committed over 1 s, each followed by its signed
  delivery from this benchmark's own client (on two keep-alive
  connections, timed per request): the site's reads from the burst's start
  to 1 s after it, and the receiver's answer time p99;
- mis-signed flood: the daemon as a process (``shotgunEventDaemon
  foreground``) catching up N events appended at once to the site process,
  once alone and once under 1,000 mis-signed deliveries per second for 10 s
  (8 keep-alive connections from this process): throughput ratio and the
  reads the flood added (the site's read counter). On a 2-core machine the
  flooding client takes CPU from the daemon and the site too.

Run alone: ``python bench/bench_wakeups.py [--quick]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_latency import CommitClock, percentile
from common import PROFILES, Profile, Row, at_least, at_most, format_table, scratch
from rigs import SCRIPTS, DaemonProcess, InProcessDaemon, SiteProcess
from workload import PluginSpec, standard_plugins, write_config, write_plugins

from shotgun_events.site import LocalSite
from shotgun_events.webhooks.payload import sign

SECTION = "9 wake-ups"
RATE = 10.0
SECRET = "bench-webhook-secret"
RECORDER = PluginSpec("latency", record_starts=True)
HOOK_PATH = "/sg-hook"
#: Seconds between the daemon's start and the latency window (one idle fetch_interval + 1).
WARM_UP = 6.0


@dataclass(frozen=True)
class Sizes:
    """How long each part runs, per profile."""

    latency_window: float
    idle_fetch_interval: float
    idle_window: float
    burst: int
    burst_seconds: float
    flood_events: int
    flood_rate: float
    flood_seconds: float
    #: Seconds reads are still counted after the catch-up (between two idle polls).
    settle: float = 9.0


SIZES = {
    "full": Sizes(60.0, 5.0, 60.0, 500, 1.0, 200_000, 1000.0, 10.0),
    "quick": Sizes(15.0, 5.0, 30.0, 500, 1.0, 100_000, 1000.0, 10.0),
    "tiny": Sizes(2.0, 0.5, 2.0, 50, 0.2, 1_000, 200.0, 1.0, settle=1.0),
}


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the daemon's receiver)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hooks_config(port: int) -> str:
    """The [webhooks] lines, appended after [plugins] in the generated config."""
    return f"\n[webhooks]\nlisten = 127.0.0.1:{port}\nsecret = {SECRET}\npath = {HOOK_PATH}\n"


def with_webhooks(config: Path, port: int) -> Path:
    """Add a [webhooks] section to a config written by write_config."""
    config.write_text(config.read_text() + hooks_config(port))
    return config


class Running:
    """An in-process daemon whose engine loop (and receiver) runs in a thread."""

    def __init__(self, config: Path) -> None:
        self.daemon = InProcessDaemon(config)
        self.daemon.start()
        if self.daemon.daemon.receiver is not None:
            self.daemon.daemon.receiver.start()
        self.thread = threading.Thread(target=self.daemon.engine.run, name="bench-engine")
        self.thread.start()

    def starts(self) -> dict[int, float]:
        """event id -> time.time() its callback started."""
        return dict(list(self.daemon.plugin_globals(RECORDER.name)["STARTS"]))

    def close(self) -> None:
        self.daemon.flag.stop_requested.set()
        self.thread.join()
        self.daemon.close()


def latencies(
    site: LocalSite, clock: CommitClock, config: Path, window: float, wait_last: float
) -> list[float]:
    """commit -> callback start (s) of every event committed during ``window``."""
    running = Running(config)
    try:
        # Steady state: the first poll after start may wait a whole idle fetch_interval.
        time.sleep(WARM_UP)
        opened = max(clock.committed, default=0)
        time.sleep(window)
        closed = max(clock.committed, default=0)
        wanted = [i for i in range(opened + 1, closed + 1) if i in clock.committed]
        deadline = time.monotonic() + wait_last
        while time.monotonic() < deadline and not all(i in running.starts() for i in wanted):
            time.sleep(0.05)
        started = running.starts()
    finally:
        running.close()
    missing = [i for i in wanted if i not in started]
    if missing:
        raise RuntimeError(f"{len(missing)} events were never delivered: {missing[:5]}...")
    return [started[i] - clock.committed[i] for i in wanted]


def latency_rows(folder: Path, sizes: Sizes) -> list[Row]:
    """p50/p99 with webhooks on, then with adaptive polling only (default keys)."""
    out: list[Row] = []
    with LocalSite(scripts=SCRIPTS) as site:
        clock = CommitClock(site)
        plugins = write_plugins(folder / "plugins", [RECORDER, *standard_plugins(2)])
        site.start_activity(RATE, seed=11)
        cases: list[tuple[str, float, float, bool]] = [
            ("webhooks on", 0.150, 0.500, True),
            ("adaptive polling only, defaults", 1.0, 2.0, False),
        ]
        for label, p50_target, p99_target, hooks in cases:
            case = folder / label.split()[0]
            config = write_config(case, url=site.url, plugins=plugins, fetch_interval=5.0)
            if hooks:
                port = free_port()
                with_webhooks(config, port)
                site.configure_webhook(f"http://127.0.0.1:{port}{HOOK_PATH}", SECRET)
            else:
                site.configure_webhook(None)
            found = latencies(site, clock, config, sizes.latency_window, 8.0)
            n = f"{label}, {len(found)} events at {RATE:g}/s"
            p50, p99 = percentile(found, 0.50), percentile(found, 0.99)
            out.append(
                Row(
                    SECTION,
                    f"commit -> callback start p50 ({n})",
                    p50,
                    "s",
                    f"<= {p50_target:g} s",
                    at_most(p50, p50_target),
                )
            )
            out.append(
                Row(
                    SECTION,
                    f"commit -> callback start p99 ({n})",
                    p99,
                    "s",
                    f"<= {p99_target:g} s",
                    at_most(p99, p99_target),
                )
            )
        site.configure_webhook(None)
    return out


def idle_row(folder: Path, sizes: Sizes) -> Row:
    """Reads per idle minute with webhooks and adaptive polling on."""
    with LocalSite(scripts=SCRIPTS) as site:
        plugins = write_plugins(folder / "plugins", [RECORDER, *standard_plugins(2)])
        site.append_events(10)
        port = free_port()
        config = write_config(
            folder / "idle", url=site.url, plugins=plugins, fetch_interval=sizes.idle_fetch_interval
        )
        with_webhooks(config, port)
        site.configure_webhook(f"http://127.0.0.1:{port}{HOOK_PATH}", SECRET)
        running = Running(config)
        try:
            time.sleep(sizes.idle_fetch_interval)  # the first read is done and paced
            site.reset_counts()
            time.sleep(sizes.idle_window)
            reads = site.call_counts().get("read", 0)
        finally:
            running.close()
    per_minute = reads * 60 / sizes.idle_window
    bound = 60 / sizes.idle_fetch_interval
    return Row(
        SECTION,
        f"reads per idle minute, webhooks + adaptive on (fetch_interval "
        f"{sizes.idle_fetch_interval:g} s, {reads} reads in {sizes.idle_window:g} s)",
        per_minute,
        "reads/min",
        f"<= {bound:g}",
        at_most(reads, sizes.idle_window / sizes.idle_fetch_interval + 1),
    )


class Poster:
    """A keep-alive client for the receiver that times every answer."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.times: list[float] = []
        self.statuses: dict[int, int] = {}
        self.elapsed = 0.0

    def post(self, body: bytes, signature: str) -> None:
        started = time.perf_counter()
        self.conn.request("POST", HOOK_PATH, body, {"X-SG-SIGNATURE": signature})
        reply = self.conn.getresponse()
        reply.read()
        self.times.append(time.perf_counter() - started)
        self.statuses[reply.status] = self.statuses.get(reply.status, 0) + 1

    def close(self) -> None:
        self.conn.close()


def paced(
    count: int,
    seconds: float,
    action: Callable[[int], None],
    stop: threading.Event | None = None,
) -> None:
    """Call ``action(i)`` ``count`` times spread evenly over ``seconds`` (until ``stop``)."""
    start = time.perf_counter()
    for i in range(count):
        if stop is not None and stop.is_set():
            return
        due = start + seconds * i / count
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        action(i)


def burst_rows(folder: Path, sizes: Sizes) -> list[Row]:
    """Reads caused by a burst of deliveries for new events, and answer times under it."""
    with LocalSite(scripts=SCRIPTS) as site:
        plugins = write_plugins(folder / "plugins", [RECORDER, *standard_plugins(2)])
        port = free_port()
        config = write_config(folder / "burst", url=site.url, plugins=plugins, fetch_interval=5.0)
        with_webhooks(config, port)
        running = Running(config)
        posters = [Poster(port), Poster(port)]
        try:
            time.sleep(0.5)
            site.reset_counts()
            secret = SECRET.encode()

            def one(i: int) -> None:
                event_id = site.append_events(1)[0]
                body = json.dumps(
                    {"data": {"event_log_entry_id": event_id}, "timestamp": "t"}
                ).encode()
                posters[i % 2].post(body, sign(secret, body))

            paced(sizes.burst, sizes.burst_seconds, one)
            time.sleep(1.0)
            reads = site.call_counts().get("read", 0)
            last = site.newest_event_id()
            deadline = time.monotonic() + 10
            while last not in running.starts() and time.monotonic() < deadline:
                time.sleep(0.05)
            delivered = last in running.starts()
        finally:
            for poster in posters:
                poster.close()
            running.close()
    times = [t for p in posters for t in p.times]
    p99 = percentile(times, 0.99)
    note = "" if delivered else "NOT all delivered"
    return [
        Row(
            SECTION,
            f"reads caused by {sizes.burst} deliveries in {sizes.burst_seconds:g} s "
            "(burst start to 1 s after)",
            reads,
            "reads",
            "<= 10",
            at_most(reads, 10),
            note=note,
        ),
        Row(
            SECTION,
            f"receiver answer time p99 under that burst ({len(times)} requests)",
            p99 * 1000,
            "ms",
            "<= 50 ms",
            at_most(p99 * 1000, 50),
            note=f"p50 {statistics.median(times) * 1000:.2f} ms",
        ),
    ]


MARKER = '''\
"""Benchmark plugin: notes when it got its first and its N-th event (N from $BENCH_N)."""
import json
import os
import time

OUT = os.environ["BENCH_MARKS"]
N = int(os.environ["BENCH_N"])
SEEN = {"count": 0, "first": 0.0}


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", on_event, None, None)


def on_event(sg, logger, event, args):
    now = time.time()
    SEEN["count"] += 1
    if SEEN["count"] == 1:
        SEEN["first"] = now
    if SEEN["count"] == N:
        tmp = OUT + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"first": SEEN["first"], "last": now, "id": event["id"]}, f)
        os.replace(tmp, OUT)
'''


def _marks(path: Path, proc: DaemonProcess, timeout: float = 900.0) -> dict[str, float]:
    """Wait (cheaply: one small file, every 0.2 s) for the marker plugin's result."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the daemon did not catch up")
        time.sleep(0.2)
    return dict(json.loads(path.read_text()))


def catch_up(
    site: SiteProcess, folder: Path, n: int, flood: Sizes | None, settle: float
) -> tuple[float, int]:
    """(events/s, site reads) of the daemon process catching up ``n`` events appended at once.

    The daemon runs caught up first; the flood (if any) starts 1 s before the
    append. Throughput runs from the first to the last event's callback (a marker
    plugin notes both, so the benchmark does not poll the state file meanwhile);
    reads are counted from the append to 9 s after the catch-up (between two
    idle polls of the pacing rule, so both runs count the same polls).
    """
    plugins = write_plugins(folder / "plugins", standard_plugins(2))
    (plugins / "marker.py").write_text(MARKER)
    marks = folder / "marks.json"
    os.environ["BENCH_MARKS"], os.environ["BENCH_N"] = str(marks), str(n)
    port = free_port()
    config = with_webhooks(write_config(folder, url=site.url, plugins=plugins), port)
    daemon = DaemonProcess(config)
    stop = threading.Event()
    attack: threading.Thread | None = None
    bad: list[Poster] = []
    try:
        daemon.wait_positions(["marker"], site.newest())
        if flood is not None:
            attack = threading.Thread(target=_flood, args=(port, flood, stop, bad))
            attack.start()
            time.sleep(1.0)
        site.reset_counts()
        site.append(n)
        found = _marks(marks, daemon)
        seconds = found["last"] - found["first"]
        time.sleep(settle)
        calls, _ = site.counts()
    finally:
        if attack is not None:
            attack.join()
        stop.set()
        daemon.stop()
    refused = sum(p.statuses.get(401, 0) for p in bad)
    sent = sum(len(p.times) for p in bad)
    if refused != sent:
        raise RuntimeError(f"{sent - refused} mis-signed deliveries were not refused")
    if flood is not None:
        FLOOD_SENT.append((sent, sum(p.elapsed for p in bad) / max(len(bad), 1)))
    return (n - 1) / seconds, calls.get("read", 0)


#: (mis-signed deliveries sent, seconds the flood lasted) of the flooded run.
FLOOD_SENT: list[tuple[int, float]] = []


FLOOD_CONNECTIONS = 8


def _flood(port: int, sizes: Sizes, stop: threading.Event, posters: list[Poster]) -> None:
    """Mis-signed deliveries at ``flood_rate``/s for ``flood_seconds``, on a few connections."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not stop.is_set():  # until the receiver listens
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.05)
    body = json.dumps({"data": {"event_log_entry_id": 10**9}, "timestamp": "t"}).encode()
    wrong = sign(b"not-the-secret", body)
    per_connection = int(sizes.flood_rate * sizes.flood_seconds / FLOOD_CONNECTIONS)
    posters.extend(Poster(port) for _ in range(FLOOD_CONNECTIONS))

    def send(poster: Poster) -> None:
        began = time.monotonic()
        paced(per_connection, sizes.flood_seconds, lambda i: poster.post(body, wrong), stop)
        poster.elapsed = time.monotonic() - began

    threads = [threading.Thread(target=send, args=(p,)) for p in posters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for poster in posters:
        poster.close()


def flood_rows(folder: Path, sizes: Sizes) -> list[Row]:
    """Catch-up throughput and reads, alone and under a mis-signed flood."""
    folder.mkdir(parents=True, exist_ok=True)
    with SiteProcess(folder) as site:
        n, settle = sizes.flood_events, sizes.settle
        # A-B-B-A order, so a drift over the four runs (WAL, caches) falls on both sides.
        results: dict[bool, list[tuple[float, int]]] = {False: [], True: []}
        for index, flooding in enumerate((False, True, True, False)):
            run_folder = folder / f"run{index}"
            results[flooding].append(
                catch_up(site, run_folder, n, sizes if flooding else None, settle)
            )
    alone = statistics.mean(rate for rate, _ in results[False])
    flooded = statistics.mean(rate for rate, _ in results[True])
    reads_alone = max(reads for _, reads in results[False])
    reads_flooded = max(reads for _, reads in results[True])
    ratio = flooded / alone
    extra = reads_flooded - reads_alone
    what = f"{sizes.flood_rate:g} mis-signed deliveries/s for {sizes.flood_seconds:g} s"
    return [
        Row(
            SECTION,
            f"catch-up throughput under {what} / alone ({sizes.flood_events:,} events, "
            "mean of 2 runs each)",
            ratio,
            "x",
            ">= 0.95x",
            at_least(ratio, 0.95),
            note=f"{flooded:,.0f} vs {alone:,.0f} events/s; {_flood_rate()}",
        ),
        Row(
            SECTION,
            f"extra reads caused by the {what}",
            extra,
            "reads",
            "0",
            at_most(extra, 0),
            note=f"{reads_flooded} vs {reads_alone} reads (most of 2 runs each)",
        ),
    ]


def _flood_rate() -> str:
    if not FLOOD_SENT:
        return "no flood"
    sent, seconds = FLOOD_SENT[-1]
    return f"{sent:,} refused with 401 during it ({sent / seconds:,.0f}/s)"


def run(profile: Profile) -> list[Row]:
    """Measure and return the rows of section 9."""
    sizes = SIZES[profile.name]
    with scratch("wakeups") as folder:
        rows = latency_rows(folder / "latency", sizes)
        rows.append(idle_row(folder / "idle", sizes))
        rows += burst_rows(folder / "burst", sizes)
        rows += flood_rows(folder / "flood", sizes)
    return rows


def main() -> None:
    """Print this benchmark's rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
