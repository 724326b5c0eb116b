"""The telemetry sink behind ``/metrics``: plain counters, cheap enough for the hot path.

Each plugin's figures are written by the one thread delivering to it at a
time (the engine's in serial mode, the plugin's worker in parallel mode), so
they need no lock; reads, connections and mails come from several threads
and take a short lock. The collector (metrics.py) turns them into metric
families when Prometheus scrapes.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable

#: Upper bounds (seconds) of the callback and read duration histograms.
BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip

_FIRST = BUCKETS[0]


class Histogram:
    """Counts per bucket (the last one is +Inf) and the sum of observed values."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one value."""
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Buckets as Prometheus wants them: (upper bound, count of values <= it)."""
        running = 0
        out: list[tuple[str, float]] = []
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), list(self.counts), strict=True):
            running += count
            out.append((bound, running))
        return out


class PluginCounters:
    """What one plugin's callbacks did since the daemon started."""

    __slots__ = (
        "call_wait",
        "dead_letters",
        "duration",
        "errors",
        "load_failures",
        "loads",
        "ok",
        "retries",
    )

    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.retries = 0
        self.dead_letters = 0
        self.loads = 0
        self.load_failures = 0
        #: Seconds its site calls waited for max_calls_per_second.
        self.call_wait = 0.0
        self.duration = Histogram()


class MetricsSink:
    """A ``Telemetry`` that keeps every report as a counter (see ``shotgun_events.telemetry``)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.plugins: dict[str, PluginCounters] = {}
        self.reads: dict[str, int] = {}
        self.read_errors: dict[tuple[str, str], int] = {}
        self.read_duration: dict[str, Histogram] = {}
        self.events_read = 0
        #: Wall time of the last successful read and of the last failed one (None: never).
        self.last_read_ok: float | None = None
        self.last_read_error: tuple[float, str] | None = None
        self.failed_reads_in_a_row = 0
        self.connections = 0
        self.state_writes = 0
        self.state_failures = 0
        #: (when, why) of the last state write failure, cleared by the next good write.
        self.state_error: tuple[float, str] | None = None
        self.emails: dict[str, int] = {"sent": 0, "failed": 0, "suppressed": 0}
        #: (plugin, timer, outcome) -> times a timer's time came.
        self.timers: dict[tuple[str, str, str], int] = {}

    def plugin(self, name: str) -> PluginCounters:
        """The counters of one plugin, created at its first report."""
        counters = self.plugins.get(name)
        if counters is None:
            with self._lock:
                counters = self.plugins.setdefault(name, PluginCounters())
        return counters

    def callback_ran(self, plugin: str, ok: bool, seconds: float) -> None:
        """Count one callback call and its duration."""
        counters = self.plugins.get(plugin) or self.plugin(plugin)
        if ok:
            counters.ok += 1
        else:
            counters.errors += 1
        # Inlined Histogram.observe: this runs once per callback call, on the hot path.
        histogram = counters.duration
        histogram.counts[0 if seconds <= _FIRST else bisect_left(BUCKETS, seconds)] += 1
        histogram.total += seconds

    def callback_retried(self, plugin: str) -> None:
        """Count a retry."""
        self.plugin(plugin).retries += 1

    def timer_ran(self, plugin: str, timer: str, outcome: str) -> None:
        """Count a timer's run (or skipped time)."""
        key = (plugin, timer, outcome)
        with self._lock:
            self.timers[key] = self.timers.get(key, 0) + 1

    def dead_lettered(self, plugin: str) -> None:
        """Count a dead letter."""
        self.plugin(plugin).dead_letters += 1

    def site_call_waited(self, plugin: str, seconds: float) -> None:
        """Add to the plugin's waiting time (its callbacks may call from several threads)."""
        counters = self.plugin(plugin)
        with self._lock:
            counters.call_wait += seconds

    def site_read(self, kind: str, seconds: float, events: int, error: str | None) -> None:
        """Count one read of the event log, failed or not."""
        now = self._clock()
        with self._lock:
            self.reads[kind] = self.reads.get(kind, 0) + 1
            histogram = self.read_duration.get(kind)
            if histogram is None:
                histogram = self.read_duration[kind] = Histogram()
            histogram.observe(seconds)
            if error is None:
                self.events_read += events
                self.last_read_ok = now
                self.failed_reads_in_a_row = 0
            else:
                self.read_errors[(kind, error)] = self.read_errors.get((kind, error), 0) + 1
                self.last_read_error = (now, error)
                self.failed_reads_in_a_row += 1

    def connection_opened(self, delta: int) -> None:
        """Track the daemon's own open site connections."""
        with self._lock:
            self.connections += delta

    def state_written(self, error: str | None) -> None:
        """Count one state write (called with the store's lock held: one writer at a time)."""
        if error is None:
            self.state_writes += 1
            self.state_error = None
        else:
            self.state_failures += 1
            self.state_error = (self._clock(), error)

    def plugin_loaded(self, plugin: str, error: str | None) -> None:
        """Count a (re)load of a plugin file."""
        counters = self.plugin(plugin)
        counters.loads += 1
        if error is not None:
            counters.load_failures += 1

    def email(self, outcome: str) -> None:
        """Count a mail sent or failed, or a record not mailed on its own."""
        with self._lock:
            self.emails[outcome] = self.emails.get(outcome, 0) + 1

    def site_reachable(self) -> bool:
        """Whether the most recent read succeeded (True before any read failed)."""
        failed = self.last_read_error
        return failed is None or (self.last_read_ok is not None and self.last_read_ok >= failed[0])

    def state_writable(self) -> bool:
        """Whether the most recent state write succeeded."""
        return self.state_error is None
