"""``/metrics``: the daemon's figures as Prometheus metric families, in a registry of its own.

Counters come from the sink (what the parts reported); gauges (positions,
lag, backlog, state) are read from the engine at scrape time. Labels are the
plugin, the read kind, the error kind or the outcome: never an event id, so
the number of series stays bounded by the number of plugins.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from shotgun_events.observe import health
from shotgun_events.observe.view import DaemonView, PluginRow

PREFIX = "shotgun_events"


class DaemonCollector(Collector):
    """Build every ``shotgun_events_*`` family from one view of the daemon."""

    def __init__(self, view: DaemonView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        """Yield the families (called by the registry at each scrape)."""
        rows = self._view.plugins()  # read once: the plugin families and readiness share it
        yield from self._plugin_families(rows)
        yield from self._site_families()
        yield from self._service_families(rows)

    def _plugin_families(self, rows: list[PluginRow]) -> Iterator[Metric]:
        gauges = {
            "position": ("Event id up to which the plugin has handled the log", "position"),
            "lag_events": ("Events between the plugin's position and the head", "lag_events"),
            "lag_seconds": ("Seconds between the plugin's last event and the head", "lag_seconds"),
            "backlog": ("Missing event ids the plugin still waits for", "backlog"),
            "in_flight": ("Events the plugin is handling right now", "in_flight"),
        }  # fmt: skip
        for suffix, (text, attribute) in gauges.items():
            family = GaugeMetricFamily(f"{PREFIX}_plugin_{suffix}", text, labels=["plugin"])
            for row in rows:
                family.add_metric([row.name], float(getattr(row, attribute)))
            yield family
        active = GaugeMetricFamily(
            f"{PREFIX}_plugin_active", "1 while the plugin takes events", labels=["plugin"]
        )
        disabled = GaugeMetricFamily(
            f"{PREFIX}_plugin_disabled",
            "1 while an operator disabled the plugin",
            labels=["plugin"],
        )
        expired = CounterMetricFamily(
            f"{PREFIX}_plugin_expired_events",
            "Events the site's log no longer had when the plugin got to them (never delivered)",
            labels=["plugin"],
        )
        for row in rows:
            active.add_metric([row.name], float(row.state == "active"))
            disabled.add_metric([row.name], float(row.state == "disabled"))
            expired.add_metric([row.name], float(row.expired))
        yield active
        yield disabled
        yield expired
        limits = self._view.engine.dispatcher.limits
        if limits is not None:
            ceiling = GaugeMetricFamily(
                f"{PREFIX}_plugin_max_calls_per_second",
                "The plugin's ceiling on site calls per second (plugins with one)",
                labels=["plugin"],
            )
            for row in rows:
                rate = limits.limit(row.name)
                if rate is not None:
                    ceiling.add_metric([row.name], rate)
            yield ceiling
        yield from self._celery_families(rows)
        yield from self._callback_families()

    def _celery_families(self, rows: list[PluginRow]) -> Iterator[Metric]:
        celery = [row for row in rows if row.tasks]
        in_flight = GaugeMetricFamily(
            f"{PREFIX}_celery_tasks_in_flight",
            "Celery tasks sent and not answered yet",
            labels=["plugin"],
        )
        sent = CounterMetricFamily(
            f"{PREFIX}_celery_tasks_sent", "Celery tasks sent to workers", labels=["plugin"]
        )
        resent = CounterMetricFamily(
            f"{PREFIX}_celery_tasks_resent",
            "Celery tasks sent again: after a callback failed (retry) or no answer came (timeout)",
            labels=["plugin", "reason"],
        )
        held = GaugeMetricFamily(
            f"{PREFIX}_celery_keys_held",
            "Ordering keys whose task is out longer than task_timeout (later events wait)",
            labels=["plugin"],
        )
        for row in celery:
            in_flight.add_metric([row.name], row.tasks.get("tasks_in_flight", 0))
            held.add_metric([row.name], row.tasks.get("keys_held", 0))
            sent.add_metric([row.name], row.tasks.get("sent", 0))
            resent.add_metric([row.name, "retry"], row.tasks.get("resent", 0))
            resent.add_metric([row.name, "timeout"], row.tasks.get("timed_out", 0))
        yield in_flight
        yield sent
        yield resent
        yield held

    def _callback_families(self) -> Iterator[Metric]:
        plugins = dict(self._view.sink.plugins)
        runs = CounterMetricFamily(
            f"{PREFIX}_callbacks",
            "Callback calls by plugin and outcome",
            labels=["plugin", "outcome"],
        )
        duration = HistogramMetricFamily(
            f"{PREFIX}_callback_duration_seconds", "Time spent in callbacks", labels=["plugin"]
        )
        simple = {
            "plugin_site_call_wait_seconds": (
                "Seconds the plugin's site calls waited for its max_calls_per_second",
                "call_wait",
            ),
            "callback_retries": ("Failed callback calls tried again", "retries"),
            "dead_letters": ("Events given up after their callback failed", "dead_letters"),
            "plugin_loads": ("Loads and reloads of the plugin file", "loads"),
            "plugin_load_failures": ("Loads of the plugin file that failed", "load_failures"),
        }
        families = {
            key: CounterMetricFamily(f"{PREFIX}_{key}", text, labels=["plugin"])
            for key, (text, _) in simple.items()
        }
        for name, counters in sorted(plugins.items()):
            runs.add_metric([name, "ok"], counters.ok)
            runs.add_metric([name, "error"], counters.errors)
            duration.add_metric([name], counters.duration.cumulative(), counters.duration.total)
            for key, (_, attribute) in simple.items():
                families[key].add_metric([name], getattr(counters, attribute))
        yield runs
        yield duration
        yield from families.values()
        timers = CounterMetricFamily(
            f"{PREFIX}_timer_runs",
            "Times a plugin's timer was due, by outcome (ok, error, skipped)",
            labels=["plugin", "timer", "outcome"],
        )
        for labels, count in sorted(dict(self._view.sink.timers).items()):
            timers.add_metric(list(labels), count)
        yield timers

    def _site_families(self) -> Iterator[Metric]:
        sink = self._view.sink
        yield CounterMetricFamily(
            f"{PREFIX}_events_fetched", "Events read from the site's event log", sink.events_read
        )
        reads = CounterMetricFamily(
            f"{PREFIX}_site_reads", "Reads of the event log", labels=["kind"]
        )
        for kind, count in sorted(dict(sink.reads).items()):
            reads.add_metric([kind], count)
        yield reads
        errors = CounterMetricFamily(
            f"{PREFIX}_site_read_errors", "Failed reads of the event log", labels=["kind", "error"]
        )
        for (kind, error), count in sorted(dict(sink.read_errors).items()):
            errors.add_metric([kind, error], count)
        yield errors
        duration = HistogramMetricFamily(
            f"{PREFIX}_site_read_duration_seconds",
            "Time per read of the event log",
            labels=["kind"],
        )
        for kind, histogram in sorted(dict(sink.read_duration).items()):
            duration.add_metric([kind], histogram.cumulative(), histogram.total)
        yield duration
        yield GaugeMetricFamily(
            f"{PREFIX}_site_reachable", "1 when the last read of the site succeeded",
            float(sink.site_reachable()),
        )  # fmt: skip
        if sink.last_read_ok is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_last_successful_read_timestamp_seconds",
                "Unix time of the last successful read of the site",
                sink.last_read_ok,
            )
        connections = GaugeMetricFamily(
            f"{PREFIX}_site_connections_open", "Open HTTP connections to the site", labels=["owner"]
        )
        connections.add_metric(["engine"], float(sink.connections))
        connections.add_metric(["plugins"], float(self._view.pool.open_links))
        yield connections
        outage = self._view.engine.outage
        if outage is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_site_unavailable",
                "1 while the site cannot answer (an outage: events are held, not failed)",
                float(outage.down),
            )
            if outage.since is not None:
                yield GaugeMetricFamily(
                    f"{PREFIX}_site_unavailable_since_timestamp_seconds",
                    "Unix time the current outage started",
                    outage.since,
                )
            yield CounterMetricFamily(
                f"{PREFIX}_site_outages", "Outages of the site seen so far", outage.count
            )
            yield CounterMetricFamily(
                f"{PREFIX}_events_held",
                "Callbacks that met an outage: their events were held, not failed",
                outage.held,
            )

    def _service_families(self, rows: list[PluginRow]) -> Iterator[Metric]:
        view = self._view
        sink = view.sink
        yield CounterMetricFamily(f"{PREFIX}_state_writes", "State file writes", sink.state_writes)
        yield CounterMetricFamily(
            f"{PREFIX}_state_write_failures", "State file writes that failed", sink.state_failures
        )
        emails = CounterMetricFamily(
            f"{PREFIX}_emails",
            "Error mails sent or failed, records not mailed alone",
            labels=["outcome"],
        )
        for outcome, count in sorted(dict(sink.emails).items()):
            emails.add_metric([outcome], count)
        yield emails
        yield GaugeMetricFamily(f"{PREFIX}_head_event_id", "Newest event id read", view.engine.head)
        age = view.head_age()
        if age is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_head_event_age_seconds", "Age of the newest event read (site time)", age
            )
        progress = view.engine.progress.current
        yield GaugeMetricFamily(
            f"{PREFIX}_catch_up_behind_events",
            "Events behind the site's newest while catching up (0 when level)",
            float(progress.behind_events if progress else 0),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_live", "1 while the engine loop makes progress", float(health.live(view)[0])
        )
        is_ready, _ = health.ready(view, rows=rows)
        yield GaugeMetricFamily(f"{PREFIX}_ready", "1 while /readyz answers 200", float(is_ready))
        yield GaugeMetricFamily(
            f"{PREFIX}_uptime_seconds", "Seconds since the daemon (or its last reload) started",
            view.uptime(),
        )  # fmt: skip


def build_registry(view: DaemonView) -> CollectorRegistry:
    """A registry of its own: the daemon's families plus the standard process metrics.

    No GCCollector: it hooks ``gc.callbacks`` for the whole process (global
    state that outlives the registry) and costs every garbage collection of
    the hot path a few microseconds more than the one hook the shared lane's
    clock needs (``delivery.fanout.busy_clock``).
    """
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(DaemonCollector(view))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format of every metric in the registry."""
    return generate_latest(registry)
