"""``shotgunEventDaemon -c CONF worker``: a Celery worker running the configured plugins' callbacks.

It uses Celery's own worker machinery (thread pool of ``--concurrency``
threads) on the queues of the plugins it serves, loads the plugin folders of
the config through the daemon's loader, rescans them every ``poll_interval``
(reloading changed files), and writes a beacon to Redis that ``status``
shows. A task that is not in our wire format is rejected with one log line.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery.exceptions import Reject

from celery import Celery
from shotgun_events.client.connections import ConnectionFactory, factory_for
from shotgun_events.client.limits import Gate, limiter_for
from shotgun_events.config.model import Config
from shotgun_events.delivery.celery.app import make_app, queue_name
from shotgun_events.delivery.celery.codec import (
    TASK_NAME,
    MalformedTaskError,
    decode_task,
    encode_result,
)
from shotgun_events.delivery.celery.runtime import WorkerRuntime
from shotgun_events.delivery.celery.store import DoneStore, write_beacon
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.notify.logs import configure_logging
from shotgun_events.plugins.loader import PluginLoader
from shotgun_events.plugins.scope import Scope, SiteLookup

log = logging.getLogger("engine.celery.worker")

BEACON_EVERY = 5.0


@dataclass(frozen=True)
class WorkerOptions:
    """The ``worker`` command's options."""

    plugins: tuple[str, ...] = ()
    concurrency: int = 4
    hostname: str = ""
    foreground: bool = True


class ThreadConnections:
    """One ``sg`` and one HTTP connection per (credentials, callback thread) of this worker.

    The daemon's pool shares one HTTP link per credential because its plugins
    mostly take turns; a worker's threads run callbacks at the same time, and
    sharing one link would make them wait for each other's site calls. With a
    ``gate`` each call waits for its plugin's turn (max_calls_per_second, held
    per worker process).
    """

    def __init__(self, factory: ConnectionFactory, gate: Gate | None = None) -> None:
        self._factory = factory
        self._gate = gate
        self._local = threading.local()

    def get(self, script_name: str, script_key: str) -> Any:
        """Return the calling thread's connection for these credentials."""
        cache: dict[tuple[str, str], Any] | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = {}
        sg = cache.get((script_name, script_key))
        if sg is None:
            sg = cache[(script_name, script_key)] = self._factory.create(
                script_name, script_key, gate=self._gate
            )
        return sg


def register_task(app: Celery, runtime: WorkerRuntime) -> None:
    """Register the one task: decode, run through the runtime, answer as JSON."""

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True
    )
    def run_events(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            spec = decode_task(args, kwargs)
        except MalformedTaskError as exc:
            log.error(
                "malformed task %s rejected (%s); it is dropped, nothing ran",
                getattr(self.request, "id", "?"),
                exc,
            )
            raise Reject(str(exc), requeue=False) from None
        return encode_result(runtime.run(spec))


def run_worker(config: Config, options: WorkerOptions) -> int:
    """Build the runtime from ``config`` and run a Celery worker until it is stopped."""
    hostname = options.hostname or f"shotgun_events@{socket.gethostname()}.{os.getpid()}"
    logs = configure_logging(
        log_file=config.log_dir / "workers" / f"{_safe(hostname)}.log",
        log_mode=config.log_mode,
        level=config.log_level,
        foreground=options.foreground,
        timing_log=False,
        secrets=config.secrets,
    )
    logging.getLogger("celery").setLevel(max(config.log_level, logging.INFO))
    app = make_app(config.celery, worker=True)
    loader = PluginLoader(
        paths=config.plugin_paths,
        helper_paths=config.plugin_helper_paths,
        logger_factory=logs.plugin_logger,
    )
    client = app.backend.client if hasattr(app.backend, "client") else None
    if client is None:
        raise RuntimeError("the result backend is not Redis")
    done = DoneStore(
        client,
        config.celery.queue_prefix,
        ttl=config.celery.done_ttl,
        claim_ttl=config.celery.task_timeout,
    )
    factory = factory_for(config)
    registry = InFlight()
    limiter = limiter_for(config)
    dispatcher = Dispatcher(
        connections=ThreadConnections(
            factory, limiter.gate(registry.on_thread) if limiter is not None else None
        ),
        in_flight=registry,
        use_session_uuid=config.use_session_uuid,
        # The same scope as the daemon's: [plugin:NAME] projects / ignore_own_events.
        scope=Scope(
            settings=config.plugin_settings,
            lookup=SiteLookup(lambda: factory.create(config.script_name, config.script_key)),
            config_path=config.path,
        ),
        own_credentials=(config.script_name, config.script_key),
    )
    runtime = WorkerRuntime(
        loader=loader,
        done=done,
        dispatcher=dispatcher,
        hostname=hostname,
        only=options.plugins or None,
        rescan_every=config.plugin_poll_interval,
        settle=config.reload_debounce,
    )
    runtime.refresh(force=True)
    served = sorted(runtime.plugins())
    missing = sorted(set(options.plugins) - {p.name for p in loader.plugins})
    if missing:
        log.warning("--plugins names %s, not found in %s", ", ".join(missing), config.plugin_paths)
    names = list(options.plugins) or [p.name for p in loader.plugins]
    if not names:
        log.error("no plugins to serve in %s; the worker takes no tasks", config.plugin_paths)
        return 1
    register_task(app, runtime)
    stop = threading.Event()
    keeper = threading.Thread(
        target=_keep_up,
        args=(runtime, client, config, hostname, options, stop),
        name="celery-worker-keeper",
        daemon=True,
    )
    keeper.start()
    log.info(
        "worker %s: broker %s, plugins %s, %d threads",
        hostname,
        config.celery.safe_broker,
        ", ".join(served) or "(none active yet)",
        options.concurrency,
    )
    queues = ",".join(queue_name(config.celery, n) for n in names)
    argv: Sequence[str] = [
        "worker",
        "--pool=threads",
        f"--concurrency={options.concurrency}",
        f"--queues={queues}",
        f"--hostname={hostname}",
        "--without-mingle",
        "--without-gossip",
        "--loglevel=INFO",
    ]
    try:
        app.worker_main(list(argv))
    finally:
        stop.set()
        logs.close()
    return 0


def _keep_up(
    runtime: WorkerRuntime,
    client: Any,
    config: Config,
    hostname: str,
    options: WorkerOptions,
    stop: threading.Event,
) -> None:
    """Rescan plugin files and refresh the beacon until the worker stops."""
    beacon_due = 0.0
    elapsed = 0.0
    step = min(config.plugin_poll_interval, BEACON_EVERY)
    while True:
        if elapsed >= beacon_due:
            beacon_due = elapsed + BEACON_EVERY
            try:
                write_beacon(
                    client,
                    config.celery.queue_prefix,
                    hostname,
                    {
                        "plugins": runtime.plugins(),
                        "concurrency": options.concurrency,
                        "pid": os.getpid(),
                    },
                )
            except Exception as exc:  # Redis down: Celery reconnects; the beacon waits
                log.debug("beacon not written: %s", exc)
        if stop.wait(step):
            return
        elapsed += step
        try:
            runtime.refresh()
        except Exception:  # a scan must never take the worker down
            log.exception("plugin rescan failed; trying again")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-@" else "_" for c in name)
