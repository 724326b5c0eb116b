"""Assemble every part of the daemon from one ``Config`` and run it.

``Daemon.build`` puts together the parts that ``wiring`` builds; this module
keeps the process: the state lock, signals, and rebuilding on SIGHUP.

``prepare()`` does every check that can fail because of the operator's files
(config, folders, state) in the calling process, so ``start`` reports them on
the terminal; the returned ``run`` builds the daemon, runs the engine, and on
SIGHUP re-reads the configuration and builds it again in the same process
(positions live in the state file, so nothing is lost).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shotgun_events import wiring
from shotgun_events.client.connections import ConnectionPool, factory_for
from shotgun_events.client.source import ShotgunEventSource
from shotgun_events.config.checks import permission_warnings, validate_paths
from shotgun_events.config.load import load_config_with_warnings
from shotgun_events.config.model import Config
from shotgun_events.delivery.celery.wiring import CeleryWiring
from shotgun_events.engine.loop import Engine, Hooks
from shotgun_events.engine.settings import Exit
from shotgun_events.engine.wakeup import WakeUps
from shotgun_events.errors import ConfigError, ShotgunEventsError
from shotgun_events.notify.logs import LogSetup, configure_logging
from shotgun_events.notify.mailer import EmailNotifier
from shotgun_events.notify.output import whole_lines
from shotgun_events.observe.recent import RecentLog
from shotgun_events.observe.server import ObserveServer
from shotgun_events.observe.sink import MetricsSink
from shotgun_events.observe.view import DaemonView
from shotgun_events.operator import operations
from shotgun_events.operator.channel import ControlServer
from shotgun_events.plugins.loader import PluginLoader
from shotgun_events.plugins.scope import SiteLookup
from shotgun_events.plugins.watcher import PluginWatcher
from shotgun_events.service.lifecycle import ReadyReporter, Run
from shotgun_events.service.pidfile import PidFile
from shotgun_events.service.sdnotify import Notifier
from shotgun_events.service.signals import StopFlag
from shotgun_events.state.lock import OPERATOR_WAIT, StateLock, warn_if_unfenced
from shotgun_events.state.store import StateStore, read_positions
from shotgun_events.webhooks.receiver import WebhookReceiver

log = logging.getLogger("engine")


@dataclass(frozen=True)
class Options:
    """Command-line choices that are not in the config file."""

    foreground: bool = True
    from_id: int | None = None


def prepare(config_path: Path, options: Options) -> Run:
    """Check config, folders and state file now; return the function that runs the daemon."""
    config, warnings = load_config_with_warnings(config_path)
    validate_paths(config)
    _check_owner(config)
    # A corrupt state file must stop us here, with its message, before detaching.
    read_positions(config.event_id_file, config.path)
    problems = permission_warnings(config)
    if problems and config.strict_permissions:
        raise ConfigError(f"{problems[0]} (strict_permissions is on in {config.path})")
    notes = [(logging.WARNING, line) for line in [*warnings, *problems]]
    for _, line in notes:
        print(f"shotgunEventDaemon: warning: {line}", file=sys.stderr)

    def run(reporter: ReadyReporter) -> int:
        return serve(config, options, reporter, notes)

    return run


def serve(
    config: Config,
    options: Options,
    reporter: ReadyReporter,
    notes: Sequence[tuple[int, str]] = (),
) -> int:
    """Run the daemon until stopped, rebuilding it on SIGHUP; return the exit code."""
    flag = StopFlag()
    if threading.current_thread() is threading.main_thread():
        flag.install()
    systemd = Notifier.from_environ()
    # What plugins print stays in whole lines, even with plugins running side by side.
    output = contextlib.ExitStack()
    output.enter_context(whole_lines())
    # Taken before the state is read and held across reloads: one owner per state file.
    lock = StateLock(config.event_id_file, config_path=config.path)
    try:
        notes = [*notes, *_own_state(lock, flag)]
        reloading = False
        while True:
            daemon = Daemon.build(
                config, options, flag=flag, reporter=reporter, systemd=systemd, reloading=reloading
            )
            reloading = True
            for level, text in notes:
                log.log(level, "%s", text)
            notes = []
            try:
                outcome = daemon.run()
            finally:
                daemon.close()
            if outcome is Exit.STOP:
                return 0
            # Logging is closed with the old daemon: keep what to say for the new one.
            config, notes = _reread(config)
            flag.reload_requested.clear()
    except ShotgunEventsError as exc:
        reporter.failed(str(exc), exc.exit_code)
        raise
    finally:
        lock.release()
        systemd.stopping()
        flag.uninstall()
        output.close()


def _check_owner(config: Config) -> None:
    """Refuse at once (exit 75) when another daemon owns the state; a command is waited for."""
    probe = StateLock(config.event_id_file, config_path=config.path)
    try:
        probe.acquire()
    except ShotgunEventsError:
        holder = probe.holder()
        # The daemon of our own pid file is the pid file's business: `start` says it
        # runs, `restart` stops it before the new one takes the lock.
        ours = PidFile(config.pid_file, config_path=config.path).running_pid()
        if holder.is_daemon and (holder.pid is None or holder.pid != ours):
            raise
    finally:
        # lockf locks are per process and not inherited by fork: the daemon takes its own.
        probe.release()


def _own_state(lock: StateLock, flag: StopFlag) -> list[tuple[int, str]]:
    """Take the state lock for the daemon's life; return notes for the log."""
    waited: list[tuple[int, str]] = []

    def tell(holder: object) -> None:
        text = f"waiting for {holder} to release {lock.path}"
        print(f"shotgunEventDaemon: {text}", file=sys.stderr)
        waited.append((logging.INFO, text.replace("waiting for", "waited for")))

    lock.acquire(
        wait_for_operator=OPERATOR_WAIT,
        stop=flag.stop_requested,
        on_wait=lambda holder: tell(holder.describe()),
    )
    return [*waited, *((logging.WARNING, line) for line in warn_if_unfenced(lock))]


def _reread(config: Config) -> tuple[Config, list[tuple[int, str]]]:
    """Load the config again for a reload; keep the running one if the new one is broken.

    Returns the config to use and (level, message) notes to log once logging is open again.
    """
    try:
        new, warnings = load_config_with_warnings(config.path)
        validate_paths(new)
    except ConfigError as exc:
        return config, [(logging.ERROR, f"reload: {exc}; keeping the running configuration")]
    if new.event_id_file != config.event_id_file:
        # The lock is on the running state file; switching files needs a restart.
        return config, [
            (
                logging.ERROR,
                f"reload: eventIdFile changed to {new.event_id_file} in {config.path}; "
                "restart the daemon to use another state file; keeping the running "
                "configuration",
            )
        ]
    notes = [(logging.WARNING, line) for line in [*warnings, *permission_warnings(new)]]
    notes.append(
        (logging.INFO, f"reload: configuration re-read from {config.path}; plugins reloaded")
    )
    return new, notes


@dataclass
class Daemon:
    """Everything one configuration builds; ``close()`` releases all of it."""

    config: Config
    logs: LogSetup
    store: StateStore
    pool: ConnectionPool
    source: ShotgunEventSource
    loader: PluginLoader
    engine: Engine
    mailer: EmailNotifier | None = None
    watcher: PluginWatcher | None = None
    control: ControlServer | None = None
    observer: ObserveServer | None = None
    receiver: WebhookReceiver | None = None
    lookup: SiteLookup | None = None
    celery: CeleryWiring | None = None
    delivery: wiring.DeliveryParts | None = None

    @classmethod
    def build(
        cls,
        config: Config,
        options: Options,
        *,
        flag: StopFlag,
        reporter: ReadyReporter,
        systemd: Notifier,
        reloading: bool = False,
    ) -> Daemon:
        """Open logs, state, connections and plugins for this configuration.

        ``reloading``: built again on SIGHUP (Redis is then not waited for).
        """
        logs = configure_logging(
            log_file=config.log_file_path,
            log_mode=config.log_mode,
            level=config.log_level,
            foreground=options.foreground,
            timing_log=config.timing_log,
            secrets=config.secrets,
        )
        mailer = wiring.build_mailer(config, logs)
        store = StateStore(config.event_id_file, fsync=config.state_fsync, config_path=config.path)
        connections = wiring.plugin_connections(config)
        pool = connections.pool
        lookup = SiteLookup(
            lambda: factory_for(config).create(config.script_name, config.script_key)
        )

        # [http] on: the parts report to a sink that /metrics reads; off: to nothing.
        sink = MetricsSink() if config.http.enabled else None
        new_source = wiring.source_factory(config, sink)
        source = new_source()
        loader = PluginLoader(
            paths=config.plugin_paths,
            helper_paths=config.plugin_import_paths,
            logger_factory=logs.plugin_logger,
        )
        watcher = wiring.build_watcher(config)
        liveness = wiring.build_liveness(config, systemd)
        heartbeat = wiring.Heartbeat(config, flag, systemd, liveness)
        wake = WakeUps() if config.webhooks.enabled else None
        delivery = wiring.build_delivery(
            config,
            logs=logs,
            store=store,
            connections=connections,
            lookup=lookup,
            wait=heartbeat.wait,
            reloading=reloading,
        )
        engine = Engine(
            source=source,
            retry=wiring.site_retry(config, heartbeat.wait_or_reload, delivery.outage),
            loader=loader,
            store=store,
            dispatcher=delivery.dispatcher,
            settings=wiring.engine_settings(config, options.from_id),
            source_factory=new_source,
            watcher=watcher,
            wake=wake,
            executors=delivery.executors,
            spec_for=delivery.spec_for,
            stop=flag.stop_requested,
            reload=flag.reload_requested,
            hooks=Hooks(
                on_ready=reporter.ready,
                heartbeat=heartbeat,
                on_plugins_changed=wiring.plugins_changed(config, mailer),
                on_started=operations.queue_pending_replays,
            ),
        )
        log.info(
            "shotgunEventDaemon starting: site %s, %d plugin folder(s), state %s",
            config.server,
            len(config.plugin_paths),
            config.event_id_file,
        )
        limiter = connections.limiter
        control = ControlServer(config.control_socket_path, engine.submit)
        receiver = wiring.build_receiver(config, wake)
        observer = None
        if sink is not None:
            for part in (store, loader, engine.dispatcher, mailer, limiter):
                if part is not None:
                    part.telemetry = sink
            recent = RecentLog()
            logs.attach(recent, "")
            view = DaemonView(config, engine, pool, sink, liveness, recent)
            observer = ObserveServer(config.http, view)
        daemon = cls(
            config,
            logs,
            store,
            pool,
            source,
            loader,
            engine,
            mailer,
            watcher,
            control,
            observer,
            receiver,
        )
        daemon.lookup = lookup
        daemon.celery = delivery.celery
        daemon.delivery = delivery
        return daemon

    def run(self) -> Exit:
        """Run the engine until a stop or reload request."""
        if self.watcher is not None:
            # Started here, after any fork, and before the first scan: no change is missed.
            self.watcher.start()
        if self.control is not None:
            self.control = wiring.start_control(self.control)
        if self.observer is not None:
            try:
                self.observer.start()
            except ShotgunEventsError as exc:
                log.error("%s; delivering events without metrics and status page", exc)
                self.observer = None
        if self.receiver is not None:
            wiring.start_receiver(self.receiver, self.config)
        outcome = self.engine.run()
        log.info(
            "engine %s after %d events in %d batches",
            "stopping" if outcome is Exit.STOP else "reloading",
            self.engine.stats.events_fetched,
            self.engine.stats.batches,
        )
        return outcome

    def close(self) -> None:
        """Persist state and release connections, mail and log files."""
        if self.observer is not None:
            self.observer.close()
        if self.control is not None:
            self.control.close()
        if self.receiver is not None:
            self.receiver.close()
        if self.watcher is not None:
            self.watcher.stop()
        try:
            self.store.close()
        except ShotgunEventsError as exc:
            log.critical("could not save the state file on exit: %s", exc)
        if self.celery is not None:
            self.celery.close()
        if self.delivery is not None:
            self.delivery.close()
        self.pool.close()
        if self.lookup is not None:
            self.lookup.close()
        self.source.close()
        if self.mailer is not None:
            self.mailer.close()
        self.logs.close()
