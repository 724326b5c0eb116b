"""observe/: the [http] section, liveness, catch-up progress, metrics, readiness and the page.

The engine is the real one on in-memory fakes (tests/unit/fakes.py); the
metrics go through the real prometheus_client registry and parser.
"""

from __future__ import annotations

import gc
import logging
import re
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shotgun_events.client.connections import ConnectionPool, factory_for
from shotgun_events.client.limits import CallLimiter
from shotgun_events.client.retry import SiteRetry
from shotgun_events.config.load import load_config_with_warnings
from shotgun_events.config.model import Config
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.progress import CatchUp, duration
from shotgun_events.engine.settings import Settings
from shotgun_events.errors import ConfigError
from shotgun_events.observe import health, metrics, page
from shotgun_events.observe.recent import PerMinute, RecentLog
from shotgun_events.observe.sink import MetricsSink
from shotgun_events.observe.view import DaemonView
from shotgun_events.service.liveness import Liveness, live_timeout

from .fakes import Clock, FakeConnections, FakeLoader, FakeSource, FakeStore, recording_plugin

CONFIG = """\
[daemon]
pidFile = {folder}/sed.pid
eventIdFile = {folder}/state.json
logFile = {folder}/main.log

[shotgun]
server = https://studio.example.com
name = daemon
key = s3cr3t-key-value

[plugins]
paths = {folder}

[http]
{http}
"""


def config_with(tmp_path: Path, http: str) -> tuple[Config, list[str]]:
    path = tmp_path / "sed.conf"
    path.write_text(CONFIG.format(folder=tmp_path, http=textwrap.dedent(http)))
    return load_config_with_warnings(path, environ={})


# -- [http] ----------------------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", ":9464", "[::]:9464", "*:9464"])
def test_a_wildcard_address_needs_a_token(tmp_path: Path, listen: str) -> None:
    # Given [http] on every interface without a token, when loaded, then one line refuses it
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, f"listen = {listen}")
    message = str(caught.value)
    assert "\n" not in message and "[http] listen" in message and "token" in message
    # And with a token it is accepted, silently
    config, warnings = config_with(tmp_path, f"listen = {listen}\ntoken = {'x' * 24}")
    assert config.http.enabled and config.http.token == "x" * 24
    assert not [w for w in warnings if "[http]" in w]
    # And the token is a secret (scrubbed from logs, masked in status)
    assert "x" * 24 in config.secrets


def test_an_explicit_address_warns_without_a_token_and_loopback_does_not(tmp_path: Path) -> None:
    config, warnings = config_with(tmp_path, "listen = 10.1.2.3:9464")
    assert config.http.host == "10.1.2.3" and config.http.port == 9464
    assert any("[http] listen = 10.1.2.3:9464" in w and "token" in w for w in warnings)
    for loopback in ("127.0.0.1:9464", "localhost:9464", "[::1]:9464"):
        config, warnings = config_with(tmp_path, f"listen = {loopback}")
        assert config.http.enabled and not [w for w in warnings if "[http]" in w]


@pytest.mark.parametrize(
    ("http", "expected"),
    [
        ("listen = 9464", "HOST:PORT"),
        ("listen = 127.0.0.1:http", "HOST:PORT"),
        ("listen = 127.0.0.1:70000", "between 1 and 65535"),
        ("listen = ::1:9464", "HOST:PORT"),
        ("listen = 127.0.0.1:9464\ntoken = short", "at least 16"),
        ("live_timeout = -1", "seconds"),
    ],
)
def test_bad_http_values_are_one_line_errors(tmp_path: Path, http: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, http)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_http_is_off_by_default(tmp_path: Path) -> None:
    config, _ = config_with(tmp_path, "")
    assert not config.http.enabled


# -- liveness ------------------------------------------------------------------------------


def test_liveness_follows_the_heartbeat() -> None:
    clock = Clock()
    liveness = Liveness(30, monotonic=clock.monotonic)
    assert liveness.check()[0]
    clock.advance(31)
    alive, reason = liveness.check()
    assert not alive and "31 s" in reason
    liveness.beat()
    assert liveness.check()[0]


def test_live_timeout_follows_the_watchdog_when_there_is_one() -> None:
    assert live_timeout(12.0, fetch_interval=5, request_timeout=60, watchdog_interval=60) == 12
    assert live_timeout(None, fetch_interval=5, request_timeout=60, watchdog_interval=60) == 120
    assert live_timeout(None, fetch_interval=5, request_timeout=60, watchdog_interval=None) == 130
    assert live_timeout(None, fetch_interval=1, request_timeout=5, watchdog_interval=None) == 60


# -- catch-up progress ---------------------------------------------------------------------


class ProgressView:
    """The few engine attributes CatchUp reads, moved by the test."""

    def __init__(self, source: FakeSource, clock: Clock) -> None:
        self.source = source
        self.head = 0
        self.position = 0
        self._clock = clock

    @property
    def runners(self) -> list[Any]:
        return [SimpleNamespace(active=True, cursor=SimpleNamespace(last_id=self.position))]

    def now(self) -> Any:
        return self._clock()


def test_catch_up_progress_is_logged_with_rate_and_estimate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a site 10,000 events ahead of the only plugin, created an hour ago
    clock = Clock()
    source = FakeSource()
    source.add(*range(1, 10_001), created_at=clock.now - timedelta(hours=1))
    view = ProgressView(source, clock)
    progress = CatchUp(batch_size=500, every=10, monotonic=clock.monotonic)
    caplog.set_level(logging.INFO, "engine.progress")
    # When the engine reads full batches for 10 s, then 10 s more at 400 events/s
    view.head = 500
    clock.advance(10)
    progress.step(view, full=True)  # type: ignore[arg-type]
    first = progress.current
    view.position, view.head = 4000, 4500
    clock.advance(10)
    progress.step(view, full=True)  # type: ignore[arg-type]
    # Then the log says how far behind, how old the oldest undelivered event is, the rate, the ETA
    assert first is not None and first.behind_events == 10_000 and first.rate is None
    current = progress.current
    assert current is not None
    assert current.behind_events == 6000 and current.rate == pytest.approx(400)
    assert current.eta_seconds == pytest.approx(15)
    assert current.oldest_age_seconds == pytest.approx(3620)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-1] == (
        "catching up: 6,000 events behind, oldest undelivered 1 h 0 min old, 400 events/s, "
        "caught up in about 15 s"
    )
    # When it is level again, it says so once and publishes nothing more
    view.position = view.head = 10_000
    clock.advance(10)
    progress.step(view, full=False)  # type: ignore[arg-type]
    assert progress.current is None and caplog.records[-1].getMessage().startswith("caught up")


def test_no_progress_reads_while_level() -> None:
    clock = Clock()
    source = FakeSource()
    source.add(1, 2, 3)
    view = ProgressView(source, clock)
    view.head = view.position = 3
    progress = CatchUp(batch_size=500, every=10, monotonic=clock.monotonic)
    for _ in range(5):
        clock.advance(10)
        progress.step(view, full=False)  # type: ignore[arg-type]
    assert source.calls == [] and progress.current is None


def test_durations_read_well() -> None:
    assert [duration(s) for s in (5, 65, 7300, 90000)] == [
        "5 s",
        "1 min 5 s",
        "2 h 1 min",
        "1 d 1 h",
    ]


# -- metrics, readiness, page on a real engine ---------------------------------------------


def observed(
    tmp_path: Path, plugins: int = 2, prepare: Callable[[list[Any]], None] = lambda made: None
) -> tuple[DaemonView, Engine, FakeSource, list[Any]]:
    config, _ = config_with(tmp_path, "listen = 127.0.0.1:9464")
    source = FakeSource()
    source.add(1, 2, 3)
    made = [
        recording_plugin(f"plugin{i:02d}", fail_on={5} if i == 0 else None) for i in range(plugins)
    ]
    prepare(made)
    stop = threading.Event()
    sink = MetricsSink()
    dispatcher = Dispatcher(connections=FakeConnections(), use_session_uuid=True)
    dispatcher.telemetry = sink
    engine = Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: stop.is_set()),
        loader=FakeLoader(made),
        store=FakeStore(),
        dispatcher=dispatcher,
        settings=Settings(dispatch="serial", backlog_timeout=timedelta(seconds=300)),
        stop=stop,
    )
    assert engine.start()
    view = DaemonView(
        config, engine, ConnectionPool(factory_for(config)), sink, Liveness(60), RecentLog()
    )
    return view, engine, source, made


def samples(view: DaemonView) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render(metrics.build_registry(view)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_follow_delivery_labelled_by_plugin_only(tmp_path: Path) -> None:
    # Given 50 plugins, one failing on event 5, and events 4..6 delivered
    hooks = list(gc.callbacks)
    view, engine, source, _ = observed(tmp_path, plugins=50)
    view.sink.site_read("after", 0.01, 3, None)
    source.add(4, 5, 6)
    engine.run_once()
    # When scraped
    found = samples(view)
    # Then every plugin has its own series, and no label names an event
    assert (
        found[("shotgun_events_callbacks_total", (("outcome", "ok"), ("plugin", "plugin01")))] == 3
    )
    assert (
        found[("shotgun_events_callbacks_total", (("outcome", "error"), ("plugin", "plugin00")))]
        == 1
    )
    assert found[("shotgun_events_plugin_active", (("plugin", "plugin00"),))] == 0
    assert found[("shotgun_events_plugin_position", (("plugin", "plugin01"),))] == 6
    assert found[("shotgun_events_plugin_position", (("plugin", "plugin00"),))] == 4
    assert found[("shotgun_events_plugin_lag_events", (("plugin", "plugin00"),))] == 2
    assert found[("shotgun_events_callback_duration_seconds_count", (("plugin", "plugin49"),))] == 3
    assert sum(1 for name, _ in found if name == "shotgun_events_plugin_backlog") == 50
    labels = {key for _, pairs in found for key, _ in pairs}
    assert labels <= {"plugin", "outcome", "kind", "error", "owner", "le", "generation",
                      "implementation", "major", "minor", "patchlevel", "version"}  # fmt: skip
    assert ("process_cpu_seconds_total", ()) in found
    # No metrics collector hooks the interpreter's garbage collector
    assert gc.callbacks == hooks


def test_call_ceilings_and_the_time_calls_waited_are_exported_per_plugin(tmp_path: Path) -> None:
    # Given plugin01 held to 4 site calls per second, its waits reported to the sink
    view, engine, source, _ = observed(tmp_path)
    limits = CallLimiter(0, {"plugin01": 4}, monotonic=lambda: 7.0, sleep=lambda s: None)
    limits.telemetry = view.sink
    engine.dispatcher.limits = limits
    for _ in range(6):
        limits.wait("plugin01")
    source.add(4)
    engine.run_once()
    # When scraped
    found = samples(view)
    # Then its ceiling and its 0.75 s of waiting show; the other plugin has no ceiling
    wait = "shotgun_events_plugin_site_call_wait_seconds_total"
    ceiling = "shotgun_events_plugin_max_calls_per_second"
    assert found[(wait, (("plugin", "plugin01"),))] == 0.75
    assert found[(wait, (("plugin", "plugin00"),))] == 0
    assert found[(ceiling, (("plugin", "plugin01"),))] == 4
    assert (ceiling, (("plugin", "plugin00"),)) not in found


def test_readiness_says_why_it_is_not_ready(tmp_path: Path) -> None:
    view, _, _, plugins = observed(tmp_path)
    sink = view.sink
    assert health.ready(view) == (False, "starting: the site has not been read yet")
    sink.site_read("after", 0.01, 1, None)
    ok, reason = health.ready(view)
    assert ok and "2 of 2 plugins active" in reason
    # A failed read: the site is unreachable until a read succeeds again
    sink.site_read("after", 0.01, 0, "connection")
    ok, reason = health.ready(view)
    assert not ok and reason.startswith("site unreachable: 1 failed read(s) in a row")
    sink.site_read("after", 0.01, 0, None)
    assert health.ready(view)[0]
    # A failed state write
    sink.state_written("No space left on device")
    ok, reason = health.ready(view)
    assert not ok and "No space left on device" in reason
    sink.state_written(None)
    # No plugin active
    for plugin in plugins:
        plugin.deactivate("broken")
    ok, reason = health.ready(view)
    assert not ok and reason.startswith("no plugin is active: plugin00 (inactive)")


def test_the_page_escapes_and_masks_what_plugins_say(tmp_path: Path) -> None:
    # Given a plugin switched off with a reason holding markup and the script key
    view, _, _, plugins = observed(tmp_path)
    plugins[1].deactivate("<script>alert(1)</script> using s3cr3t-key-value")
    logging.getLogger("plugin.plugin01.callback").addHandler(view.recent)
    try:
        logging.getLogger("plugin.plugin01.callback").error("failed <b>hard</b>")
    finally:
        logging.getLogger("plugin.plugin01.callback").removeHandler(view.recent)
    # When rendered
    html = page.render(view)
    # Then markup is shown as text, the secret never appears, and the parts are there
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "s3cr3t-key-value" not in html and "***" in html
    assert "failed &lt;b&gt;hard&lt;/b&gt;" in html
    assert html.count('class="plugin"') == 2 and 'id="events-chart"' in html
    assert '<meta http-equiv="refresh"' in html


def test_events_per_minute_keeps_the_last_hour() -> None:
    now = [6000.0]
    counter = [0]
    rate = PerMinute(lambda: counter[0], clock=lambda: now[0])
    counter[0] = 7
    rate.sample()
    now[0] += 60
    counter[0] = 10
    series = rate.series()
    assert len(series) == 60 and series[-2:] == [(6000, 7), (6060, 3)]
    now[0] += 3600
    assert sum(count for _, count in rate.series()) == 0


def test_the_shipped_dashboard_and_alerts_use_only_exported_metrics(tmp_path: Path) -> None:
    # Given every shotgun_events_* name the daemon exports (a plugin failed, so all are there)
    view, engine, source, _ = observed(tmp_path)
    view.sink.site_read("after", 0.01, 3, None)
    view.sink.site_read("after", 0.01, 0, "timeout")
    view.sink.dead_lettered("plugin01")
    source.add(4, 5, 6)
    engine.run_once()
    exported = {name for name, _ in samples(view)}
    root = Path(__file__).resolve().parents[2] / "conf"
    # When the shipped Grafana dashboard and alert rules are read
    used = set()
    for name in ("grafana-dashboard.json", "prometheus-alerts.yml"):
        used |= set(re.findall(r"shotgun_events_[a-z_]+", (root / name).read_text()))
    # Then each name they use is exported, and the alerts cover what the issue lists
    assert used and used <= exported, used - exported
    alerts = (root / "prometheus-alerts.yml").read_text()
    for expr in (
        "up{",
        "shotgun_events_plugin_active == 0",
        "shotgun_events_plugin_lag_seconds >",
        "shotgun_events_site_reachable == 0",
        "shotgun_events_dead_letters_total",
    ):
        assert expr in alerts, expr  # fmt: skip


def test_in_flight_counts_events_handed_to_a_concurrent_plugins_pool(tmp_path: Path) -> None:
    # Given a plugin at concurrency 4 whose callback is held on event 5
    release = threading.Event()

    def hold_five(made: list[Any]) -> None:
        held = made[1]
        held.concurrency = 4
        inner = held.callbacks[0].func
        held.callbacks[0].func = lambda sg, lg, ev, args: (
            release.wait(10) if ev["id"] == 5 else None,
            inner(sg, lg, ev, args),
        )

    view, engine, source, _ = observed(tmp_path, plugins=2, prepare=hold_five)
    # When events 4..6 of one shot are read (4 finishes, 5 is held, 6 waits behind it)
    source.add(4, 5, 6)
    engine.run_once()
    in_flight = ("shotgun_events_plugin_in_flight", (("plugin", "plugin01"),))
    for _ in range(500):  # event 4 finishes on a pool thread
        found = samples(view)
        if found[in_flight] <= 2:
            break
        time.sleep(0.01)
    # Then the plugin shows the two events its pool still holds, the serial one none
    try:
        assert found[in_flight] == 2
        assert found[("shotgun_events_plugin_in_flight", (("plugin", "plugin00"),))] == 0
    finally:
        release.set()
    assert engine.drain(10)
    assert samples(view)[in_flight] == 0
