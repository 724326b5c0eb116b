"""Builders of the daemon's parts from one ``Config``, for ``app.Daemon.build`` to assemble.

The heartbeat the engine calls once per loop and its liveness clock; the
engine's settings, site retry and event sources; the plugins' connections
(with the ceiling on their site calls); the delivery (dispatcher, retries,
dead letters, Celery); the hook run at every plugin scan; and the
optional parts: error mail, plugin watcher, webhook receiver, control socket.
A builder of an optional part returns None when the configuration turns it
off; a ``start_*`` logs why its part cannot start, and the daemon goes on
without it. The status server stays in ``app``, the one module that imports
``observe``.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from shotgun_events.client.connections import ConnectionPool, factory_for
from shotgun_events.client.limits import CallLimiter, limiter_for
from shotgun_events.client.outage import Outage
from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import ShotgunEventSource, daemon_source
from shotgun_events.config.model import Config
from shotgun_events.config.plugin_sections import unknown_plugin_warnings
from shotgun_events.delivery.celery.wiring import CeleryWiring, celery_wiring
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.executors import Executors, ExecutorSpec, choose
from shotgun_events.delivery.failures import DeadLetters, FailurePolicy, RetryPolicy
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.engine.settings import Settings
from shotgun_events.engine.wakeup import WakeUps
from shotgun_events.errors import ShotgunEventsError
from shotgun_events.notify.logs import LogSetup
from shotgun_events.notify.mailer import EmailNotifier
from shotgun_events.operator.channel import ControlServer
from shotgun_events.plugins.loader import Plugin
from shotgun_events.plugins.scope import Scope, SiteLookup
from shotgun_events.plugins.watcher import PluginWatcher
from shotgun_events.service.liveness import Liveness, live_timeout
from shotgun_events.service.pidfile import PidFile
from shotgun_events.service.sdnotify import Notifier
from shotgun_events.service.signals import StopFlag
from shotgun_events.state.store import StateStore
from shotgun_events.telemetry import Telemetry
from shotgun_events.webhooks.receiver import WebhookReceiver

log = logging.getLogger("engine")


class Heartbeat:
    """Once per loop: ping the systemd watchdog and stop when the pid file was taken away."""

    def __init__(
        self, config: Config, flag: StopFlag, systemd: Notifier, liveness: Liveness
    ) -> None:
        self._pidfile = PidFile(config.pid_file, config_path=config.path)
        self._watch_pidfile = self._pidfile.read() is not None
        self._flag = flag
        self._systemd = systemd
        self._liveness = liveness
        interval = systemd.watchdog_interval()
        self._watchdog_every = interval
        self._next_ping = 0.0

    def wait(self, seconds: float) -> bool:
        """Wait like the stop flag does, still pinging the watchdog; True when stopping."""
        return self._wait(seconds, reload=False)

    def wait_or_reload(self, seconds: float) -> bool:
        """Like ``wait``, and True as well once a reload is requested: the engine's reads of a
        site that is down give up then, so a SIGHUP (and the plugin edits it brings) is
        applied during an outage, not when the site answers again."""
        return self._wait(seconds, reload=True)

    def _wait(self, seconds: float, *, reload: bool) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if reload and self._flag.reload_requested.is_set():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._flag.stop_requested.is_set()
            # Beat at least every second while waiting: an outage is not a hang (/livez).
            step = min(remaining, self._watchdog_every or 1.0)
            if self._flag.wait(step):
                return True
            self()

    def __call__(self) -> None:
        self._liveness.beat()
        if self._watchdog_every is not None and time.monotonic() >= self._next_ping:
            self._systemd.watchdog()
            self._next_ping = time.monotonic() + self._watchdog_every
        if self._watch_pidfile and not self._pidfile.still_ours():
            log.warning("pid file %s was removed or replaced; stopping", self._pidfile.path)
            self._flag.request_stop("pid file removed")


def build_liveness(config: Config, systemd: Notifier) -> Liveness:
    """The /livez clock: how long the loop may go without a beat."""
    return Liveness(
        live_timeout(
            config.http.live_timeout,
            fetch_interval=config.fetch_interval,
            request_timeout=config.request_timeout,
            watchdog_interval=systemd.watchdog_interval(),
        )
    )


def engine_settings(config: Config, from_id: int | None) -> Settings:
    """The engine's pacing and limits; ``from_id`` (``--from-id``) wins over the config's."""
    return Settings(
        batch_size=config.max_event_batch_size,
        fetch_interval=config.fetch_interval,
        active_fetch_interval=config.active_fetch_interval,
        read_ahead=config.read_ahead,
        backlog_timeout=timedelta(seconds=config.backlog_timeout),
        backlog_poll_interval=config.backlog_poll_interval,
        start_from_id=from_id if from_id is not None else config.start_from_id,
        dispatch=config.dispatch,
        stop_grace=config.stop_timeout,
        callback_timeout=config.callback_timeout,
        disabled_cooldown=config.disabled_cooldown,
        prefilter=config.prefilter,
    )


def site_retry(config: Config, wait: Callable[[float], bool], outage: Outage) -> SiteRetry:
    """How the engine retries the site when it is down, waiting with the heartbeat's ``wait``."""
    return SiteRetry(
        max_attempts=config.max_conn_retries,
        burst_sleep=config.conn_retry_sleep,
        # The heartbeat's wait keeps pinging systemd while the site is down.
        wait=wait,
        config_hint=f"the [shotgun] section of {config.path}",
        outage=outage,
    )


def source_factory(config: Config, sink: Telemetry | None) -> Callable[[], ShotgunEventSource]:
    """Make event sources that report to ``sink`` (the engine makes a new one after a failure)."""

    def new_source() -> ShotgunEventSource:
        made = daemon_source(config)
        if sink is not None:
            made.telemetry = sink
        return made

    return new_source


@dataclass
class PluginConnections:
    """The plugins' ``sg`` pool, the in-flight registry it asks, and the ceiling on their calls."""

    pool: ConnectionPool
    in_flight: InFlight
    limiter: CallLimiter | None


def plugin_connections(config: Config) -> PluginConnections:
    """The plugins' connections; with a call ceiling, each call waits for its plugin's turn.

    The registry the dispatcher writes around each event's callbacks tells the
    gate which plugin calls: several plugins share a thread's ``sg``.
    """
    registry = InFlight()
    limiter = limiter_for(config)
    gate = None
    if limiter is not None:
        gate = limiter.gate(registry.on_thread)
        log.info("ceiling on plugins' site calls: %s", limiter.describe())
    pool = ConnectionPool(factory_for(config), config.max_connections_per_script, gate=gate)
    return PluginConnections(pool, registry, limiter)


@dataclass
class DeliveryParts:
    """How plugins' events run: the dispatcher, the executors and which one each plugin gets."""

    dispatcher: Dispatcher
    executors: Executors
    spec_for: Callable[[Plugin], ExecutorSpec]
    celery: CeleryWiring | None
    #: The site's availability, shared by the engine's reads, the plugins and Celery.
    outage: Outage
    #: The connection the outage's probe reads with (closed with the daemon).
    probe: ShotgunEventSource

    def close(self) -> None:
        """Stop probing and release the probe's connection."""
        self.outage.close()
        self.probe.close()


def build_delivery(
    config: Config,
    *,
    logs: LogSetup,
    store: StateStore,
    connections: PluginConnections,
    lookup: SiteLookup,
    wait: Callable[[float], bool],
    reloading: bool,
) -> DeliveryParts:
    """The dispatcher with the failure policy, each plugin's executor, and Celery when used.

    ``wait`` is the heartbeat's; ``reloading``: built again on SIGHUP (Redis is
    then not waited for).
    """
    policy = FailurePolicy(
        RetryPolicy(
            retries=config.callback_retries,
            delay=config.callback_retry_delay,
            max_delay=config.callback_retry_max_delay,
        ),
        DeadLetters(store, scrub=logs.secret_filter.scrub),
    )
    probe = daemon_source(config)
    outage = Outage(probe.newest_id, max_wait=config.conn_retry_sleep)
    dispatcher = Dispatcher(
        connections=connections.pool,
        in_flight=connections.in_flight,
        use_session_uuid=config.use_session_uuid,
        timing=logs.timing,
        policy=policy,
        # A retry's wait keeps pinging systemd's watchdog: waiting is not hanging.
        wait=wait,
        scope=Scope(settings=config.plugin_settings, lookup=lookup, config_path=config.path),
        outage=outage,
        limits=connections.limiter,
        own_credentials=(config.script_name, config.script_key),
    )
    # Celery (issue 15): Redis is reached here, before ready, or the start fails.
    celery = (
        celery_wiring(
            config,
            policy=policy,
            registry=dispatcher.in_flight,
            outage=outage,
            wait=wait,
            reloading=reloading,
        )
        if config.uses_celery
        else None
    )
    return DeliveryParts(
        dispatcher=dispatcher,
        executors=Executors(dispatcher, celery.factory if celery is not None else None),
        spec_for=functools.partial(
            choose, sections=config.plugin_settings, executor=config.executor
        ),
        celery=celery,
        outage=outage,
        probe=probe,
    )


def build_mailer(config: Config, logs: LogSetup) -> EmailNotifier | None:
    """The error mailer on the engine and plugin logs, None when ``[emails]`` is off."""
    email = config.email
    if not email.enabled:
        return None
    mailer = EmailNotifier(
        server=email.server,
        port=email.port,
        use_tls=email.use_tls,
        use_ssl=email.use_ssl,
        username=email.username,
        password=email.password,
        sender=email.sender,
        to=email.to,
        subject=email.subject,
        digest_seconds=email.digest_seconds,
        timeout=email.timeout,
        ssl_context=ssl.create_default_context(cafile=email.ca_certs) if email.ca_certs else None,
    )
    logs.attach(mailer, "engine", "plugin")
    return mailer


def build_watcher(config: Config) -> PluginWatcher | None:
    """The plugin folder watcher, None when ``plugin_watch`` is off."""
    if config.plugin_watch == "off":
        return None
    return PluginWatcher(
        config.plugin_paths,
        helper_paths=config.plugin_helper_paths,
        # Beside the config only its own files matter; its sub-folders hold logs and state.
        shallow_paths=(config.path.parent,) if config.plugin_config_dir_on_path else (),
        output_folders=config.output_folders,
        polling=config.plugin_watch == "polling",
        poll_interval=config.plugin_poll_interval,
        debounce=config.reload_debounce,
    )


def plugins_changed(
    config: Config, mailer: EmailNotifier | None
) -> Callable[[Iterable[Plugin]], None]:
    """Route emails at every scan; after the first, warn once of sections naming no plugin."""
    warned = False

    def changed(plugins: Iterable[Plugin]) -> None:
        nonlocal warned
        plugins = list(plugins)
        _route_emails(mailer, plugins)
        if not warned:
            warned = True
            loaded = {plugin.name for plugin in plugins}
            for line in unknown_plugin_warnings(config.plugin_settings, loaded, config.path):
                log.warning("%s", line)

    return changed


def _route_emails(mailer: EmailNotifier | None, plugins: Iterable[Plugin]) -> None:
    if mailer is None:
        return
    for plugin in plugins:
        mailer.set_recipients(plugin.name, plugin.emails)


def build_receiver(config: Config, wake: WakeUps | None) -> WebhookReceiver | None:
    """The webhook listener that wakes the loop, None when ``[webhooks]`` does not listen."""
    hooks = config.webhooks
    if wake is None or hooks.host is None:
        return None
    return WebhookReceiver(
        host=hooks.host,
        port=hooks.port,
        secret=hooks.secret,
        path=hooks.path,
        on_delivery=wake.notify,
    )


def start_receiver(receiver: WebhookReceiver, config: Config) -> None:
    """Listen for webhooks; without them the daemon still delivers everything, by polling."""
    try:
        receiver.start()
    except OSError as exc:
        log.error(
            "[webhooks] listen %s:%d in %s: cannot listen (%s); events are still read "
            "every fetch_interval; free the port or change listen, then reload",
            config.webhooks.host,
            config.webhooks.port,
            config.path,
            exc.strerror or exc,
        )


def start_control(control: ControlServer) -> ControlServer | None:
    """Open the control socket; None when it cannot be opened."""
    try:
        control.start()
    except ShotgunEventsError as exc:
        # Events matter more than operator commands: keep delivering without them.
        log.error("%s; operator commands work only while the daemon is stopped", exc)
        return None
    return control
