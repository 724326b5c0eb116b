"""The poll loop: fetch events once, hand them to every plugin, keep positions.

``Engine.run()`` repeats ``run_once()`` until a stop (or a reload) is
requested; ``run_once()`` is a short list of named steps that tests drive one
at a time. Errors are isolated in tiers: a callback's error stays in its
plugin (dispatch), a site error is retried with backoff (retry), a state write
error pauses delivery until the state can be written again.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.auto import AutoDelivery
from shotgun_events.delivery.base import Delivery
from shotgun_events.delivery.base import Hooks as DeliveryHooks
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.executor import ExecutorFactory, ExecutorSpec
from shotgun_events.delivery.parallel import ParallelDelivery
from shotgun_events.delivery.plan import spec_resolver
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.delivery.serial import SerialDelivery
from shotgun_events.delivery.watch import CallbackWatch, WatchThread
from shotgun_events.engine.pacing import Pacing
from shotgun_events.engine.positions import SavedPositions
from shotgun_events.engine.progress import CatchUp
from shotgun_events.engine.readahead import ReadAhead
from shotgun_events.engine.siteclock import SiteClock
from shotgun_events.engine.wakeup import WakeUps
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event, PluginKey
from shotgun_events.plugins.protocols import LoaderLike, WatcherLike
from shotgun_events.plugins.registrar import wanted_event_types
from shotgun_events.plugins.switches import PluginSwitches
from shotgun_events.state.legacy import ANY_PLUGIN
from shotgun_events.state.protocols import StateStoreLike

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine")


class Exit(enum.Enum):
    """Why ``Engine.run`` returned."""

    STOP = "stop"
    RELOAD = "reload"


@dataclass(frozen=True)
class Settings:
    """The engine's knobs, taken from the configuration."""

    batch_size: int = 500
    fetch_interval: float = 5.0
    #: Seconds between reads while events keep coming (adaptive polling; see pacing.py).
    active_fetch_interval: float = 1.0
    backlog_timeout: timedelta = timedelta(seconds=300)
    backlog_poll_interval: float = 5.0
    start_from_id: int | None = None
    state_retry_interval: float = 5.0
    #: "parallel": one worker per plugin; "serial": the original's single thread;
    #: "auto": quick plugins share the engine's thread, slow ones get their own (auto.py).
    dispatch: str = "serial"
    #: Batches a parallel worker may have queued; the engine waits for room in each.
    max_pending_batches: int = 4
    #: Seconds a worker may stay full before it is left to catch up on its own.
    detach_after: float = 0.25
    #: Seconds a worker may take to finish its current event when the daemon stops.
    stop_grace: float = 30.0
    #: Seconds one callback may run before its stack is logged (0 = never).
    callback_timeout: float = 0.0
    #: Seconds after which a plugin switched off by a failing callback is tried again (0 = never).
    disabled_cooldown: float = 0.0
    #: Ask the site only for event types some active callback can match (when all are finite).
    prefilter: bool = False
    #: Id windows read at once while catching up (1 = one read at a time; see readahead.py).
    read_ahead: int = 1


@dataclass
class Hooks:
    """Callbacks into the service layer; all optional."""

    on_ready: Callable[[], None] = lambda: None
    heartbeat: Callable[[], None] = lambda: None
    on_plugins_changed: Callable[[Iterable[Plugin]], None] = lambda plugins: None
    #: Called once after start-up, in the engine's thread (queues pending operator replays).
    on_started: Callable[[Engine], None] = lambda engine: None


@dataclass
class Stats:
    """Counters for status output and benchmarks."""

    batches: int = 0
    events_fetched: int = 0
    backlog_reads: int = 0
    #: Wake-ups (webhooks) taken, and how many of them named an event not yet read.
    wakeups: int = 0
    wakeups_wanted: int = 0
    started_at: float = field(default_factory=time.time)


class Engine:
    """Deliver the site's events to the loaded plugins, forever."""

    def __init__(
        self,
        *,
        source: EventSource,
        retry: SiteRetry,
        loader: LoaderLike,
        store: StateStoreLike,
        dispatcher: Dispatcher,
        settings: Settings,
        stop: threading.Event,
        reload: threading.Event | None = None,
        hooks: Hooks | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        source_factory: Callable[[], EventSource] | None = None,
        watcher: WatcherLike | None = None,
        wake: WakeUps | None = None,
        executor_factory: ExecutorFactory | None = None,
        spec_for: Callable[[Plugin], ExecutorSpec] | None = None,
    ) -> None:
        self._source = source
        # How each plugin's events run (inline, a keyed pool, Celery) and what it asks for.
        self._executor_factory = executor_factory
        self._spec_for = spec_for or spec_resolver({})
        self._retry = retry
        self._loader = loader
        self._store = store
        self._dispatcher = dispatcher
        self._settings = settings
        self._stop = stop
        self._reload = reload or threading.Event()
        self._hooks = hooks or Hooks()
        self._clock = clock
        self._monotonic = monotonic
        self._watcher = watcher
        self._wake = wake
        self._pacing = Pacing(idle=settings.fetch_interval, active=settings.active_fetch_interval)
        self._runners: dict[PluginKey, PluginRunner] = {}
        self._head = 0
        #: created_at of the newest event fetched (for plugins' lag in seconds).
        self.head_created_at: datetime | None = None
        self._started = False
        self._ready = False
        self._next_backlog_poll = 0.0
        self.stats = Stats()
        self._delivery = self._make_delivery(source_factory or (lambda: source))
        self._reader = ReadAhead(
            source,
            source_factory or (lambda: source),
            depth=settings.read_ahead if source_factory is not None else 1,
            batch_size=settings.batch_size,
        )
        self._watch = WatchThread(
            CallbackWatch(settings.callback_timeout, serial=settings.dispatch != "parallel"),
            self._busy,
        )
        self._requests: queue.SimpleQueue[tuple[Callable[[Engine], Any], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self.switches = PluginSwitches({}, cooldown=settings.disabled_cooldown)
        self.site_clock = SiteClock(clock, monotonic)
        self._positions = SavedPositions(None)
        self.progress = CatchUp(batch_size=settings.batch_size, monotonic=monotonic)

    def _busy(self) -> list[tuple[PluginRunner, float, int | None]]:
        """Plugins inside a callback: the delivery's threads, and concurrent plugins' pools."""
        busy = [b for b in self._delivery.busy() if not b[0].concurrent]
        for runner in list(self._runners.values()):
            busy.extend((runner, seconds, ident) for seconds, ident in runner.busy())
        return busy

    def _make_delivery(self, source_factory: Callable[[], EventSource]) -> Delivery:
        hooks = DeliveryHooks(
            on_failed=lambda plugin: self._publish_plugin_status(),
            on_state_trouble=self._state_trouble,
            clock=lambda: self.site_clock.now(),
            event_types=self.event_type_filter,
        )
        if self._settings.dispatch in ("parallel", "auto"):
            own = ParallelDelivery(
                hooks,
                self._stop,
                source_factory=source_factory,
                retry=self._retry,
                batch_size=self._settings.batch_size,
                max_pending=self._settings.max_pending_batches,
                detach_after=self._settings.detach_after,
                state_retry_interval=self._settings.state_retry_interval,
            )
            if self._settings.dispatch == "parallel":
                return own
            return AutoDelivery(hooks, self._stop, own=own)
        return SerialDelivery(hooks, self._stop)

    # -- what operator actions (operations.py) work with ---------------------

    @property
    def loader(self) -> LoaderLike:
        """The plugin loader."""
        return self._loader

    @property
    def store(self) -> StateStoreLike:
        """The state store."""
        return self._store

    @property
    def source(self) -> EventSource:
        """The engine's own view of the site."""
        return self._source

    @property
    def retry(self) -> SiteRetry:
        """The site retry policy."""
        return self._retry

    @property
    def delivery(self) -> Delivery:
        """How events reach the plugins."""
        return self._delivery

    @property
    def dispatcher(self) -> Dispatcher:
        """Runs one event through one plugin's callbacks."""
        return self._dispatcher

    @property
    def settings(self) -> Settings:
        """The engine's knobs."""
        return self._settings

    def now(self) -> datetime:
        """The site's time (backlog deadlines are measured in it)."""
        return self.site_clock.now()

    def runner_named(self, name: str) -> PluginRunner | None:
        """Return the runner of the plugin with this name (file name without .py)."""
        return next((r for r in self.runners if r.plugin.name == name), None)

    def submit(self, action: Callable[[Engine], Any]) -> Future[Any]:
        """Run ``action(engine)`` in the engine's thread at its next safe point."""
        future: Future[Any] = Future()
        self._requests.put((action, future))
        return future

    @property
    def runners(self) -> list[PluginRunner]:
        """The runners in delivery order (collections, then file names)."""
        return [self._runners[p.key] for p in self._loader.plugins if p.key in self._runners]

    @property
    def head(self) -> int:
        """The highest event id fetched so far (or the start position)."""
        return self._head

    def start(self) -> bool:
        """Load saved positions and plugins and choose where to start; False if stopped."""
        self._positions = SavedPositions(self._store.load())
        newest = self._retry.call("reading the newest event id", self._source.newest_id)
        if newest is None or not self._learn_site_time(newest):
            return False
        self._reader.learn_newest(newest)
        if self._settings.start_from_id is not None:
            self._head = self._settings.start_from_id - 1
            log.info("starting plugins without a saved position at event %d", self._head + 1)
        else:
            self._head = newest
            if not self._positions.found:
                log.info(
                    "no saved state: starting at the newest event (%d); nothing is replayed "
                    "(use --from-id to start elsewhere)",
                    newest,
                )
        self.switches.disabled = dict(self._store.extras().get("disabled", {}))
        self._started = True
        self.refresh_plugins(initial=True)
        for key in self._positions.respelled:
            self._store.forget(key)
        if self._positions.legacy_default is not None:
            # Every plugin now has its own saved position; a plugin added later
            # must start at the newest event, not at the legacy id.
            self._store.forget(ANY_PLUGIN)
        self._hooks.on_started(self)
        return True

    def _learn_site_time(self, newest: int) -> bool:
        """Read the newest event's time so gap deadlines start in site time; False if stopped."""
        if newest <= 0:
            return True
        found = self._retry.call(
            "reading the newest event", lambda: self._source.fetch_ids([newest])
        )
        if found is None:
            return False
        for event in found:
            self.site_clock.observe(event.get("created_at"))
        return True

    def run(self) -> Exit:
        """Repeat ``run_once`` until a stop or reload is requested."""
        if not self._started and not self.start():
            return Exit.STOP
        self._watch.start()
        try:
            while not self._stop.is_set() and not self._reload.is_set():
                full = self.run_once()
                if not full and self._idle_wait():
                    break
        finally:
            self._watch.stop()
            self._reader.close()
            self._delivery.close(self._settings.stop_grace)
            self._close_runners()
        return Exit.RELOAD if self._reload.is_set() and not self._stop.is_set() else Exit.STOP

    def run_once(self) -> bool:
        """Do one round of named steps; True when a full batch came back (more may wait)."""
        self.serve_requests()
        self._revive_cooled_down()
        if not self._delivery.save_pending():
            return False
        self.refresh_plugins()
        self._delivery.wait_for_room(self._stop, self.serve_requests)
        batch = self._fetch_fresh()
        if batch is None:
            return False
        delivered = self._delivery.deliver(batch)
        self._poll_backlog()
        self._delivery.expire(self.site_clock.now())
        self._hooks.heartbeat()
        full = len(batch) >= self._settings.batch_size or self._reader.more_ahead()
        self.progress.step(self, full=full)
        return delivered and full

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every plugin handled what was fetched so far (tests, benchmarks)."""
        deadline = self._monotonic() + timeout
        if not self._delivery.drain(timeout):
            return False
        return all(
            runner.drain(max(0.0, deadline - self._monotonic()))
            for runner in list(self._runners.values())
        )

    def close(self) -> None:
        """Stop delivery: workers finish the event in hand and persist their cursors."""
        self._reader.close()
        self._delivery.close(self._settings.stop_grace)
        self._close_runners()

    def _close_runners(self) -> None:
        """Let concurrent plugins' events in flight finish and persist their watermarks."""
        for runner in list(self._runners.values()):
            runner.close(self._settings.stop_grace)

    # -- named steps ---------------------------------------------------------

    def refresh_plugins(self, *, initial: bool = False) -> None:
        """Pick up added, changed and deleted plugin files.

        The first scan loads every file, even one the watcher saw being written
        a moment ago: a plugin present at start must start at the start
        position, not later as if it had been added while running.
        """
        if self._watcher is None or initial:
            result = self._loader.scan()
        else:
            due = self._watcher.take_due()
            result = self._loader.scan(changed=due, settling=self._watcher.pending())
        for plugin in result.removed:
            runner = self._runners.pop(plugin.key, None)
            if runner is not None:
                self._delivery.remove(runner)
                runner.close(self._settings.stop_grace)
                self._positions.keep(plugin.key, runner.saved_cursor())
                log.info(
                    "plugin %s removed; its position %d is kept", plugin.name, runner.cursor.last_id
                )
        for plugin in self._loader.plugins:
            if plugin.key not in self._runners:
                runner = self._new_runner(plugin, first_scan=initial)
                self._runners[plugin.key] = runner
                self._delivery.add(runner)
        self.switches.apply_disabled(self._loader.plugins)
        if isinstance(self._delivery, SerialDelivery):
            self._delivery.order(self.runners)
        if result.added or result.reloaded or result.removed:
            self._publish_plugin_status()
            self._hooks.on_plugins_changed(self._loader.plugins)

    def apply_disabled(self) -> None:
        """Keep plugins an operator disabled switched off, also across reloads."""
        self.switches.apply_disabled(self._loader.plugins)

    def serve_requests(self) -> None:
        """Carry out operator requests queued by ``submit``."""
        while True:
            try:
                action, future = self._requests.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(action(self))
            except Exception as exc:
                log.warning("operator request failed: %s", exc)
                future.set_exception(exc)

    def _revive_cooled_down(self) -> None:
        if self.switches.revive_cooled_down(self._loader.plugins):
            self._publish_plugin_status()

    def _new_runner(self, plugin: Plugin, *, first_scan: bool) -> PluginRunner:
        cursor = self._positions.take(plugin.key, start=self._head, first_scan=first_scan)
        runner = PluginRunner(
            plugin,
            cursor,
            dispatcher=self._dispatcher,
            recorder=self._store,
            backlog_timeout=self._settings.backlog_timeout,
            executor_factory=self._executor_factory,
            spec_for=self._spec_for,
            stop=self._stop,
        )
        # Persist the start position at once, so a crash before the first event
        # does not move a new plugin's start to a later "newest event".
        try:
            runner.save()
        except StateWriteError as exc:
            self._state_trouble(exc)
        return runner

    def event_type_filter(self) -> frozenset[str] | None:
        """The event types to ask the site for, or None for all (see ``wanted_event_types``)."""
        return wanted_event_types(self._loader.plugins) if self._settings.prefilter else None

    def _fetch_fresh(self) -> list[Event] | None:
        position = self._fetch_position()
        types = self.event_type_filter()
        batch = self._reader.next_batch(position, types, self._retry.call)
        if batch is None:
            return None
        self.stats.batches += 1
        self.stats.events_fetched += len(batch)
        if batch:
            self._head = max(self._head, int(batch[-1]["id"]))
            created_at = batch[-1].get("created_at")
            self.site_clock.observe(created_at)
            if isinstance(created_at, datetime):
                self.head_created_at = created_at
        self._pacing.read_done(self._monotonic(), found=bool(batch), head=self._head)
        if not self._ready:
            self._ready = True
            self._hooks.on_ready()
        return batch

    def _fetch_position(self) -> int:
        return self._delivery.fetch_position(self._head)

    def _poll_backlog(self) -> None:
        """Look for late events by id, no more often than the poll interval."""
        if self._monotonic() < self._next_backlog_poll:
            return
        self._next_backlog_poll = self._monotonic() + self._settings.backlog_poll_interval
        awaited: set[int] = set()
        for runner in self._runners.values():
            if runner.active:
                awaited |= runner.awaited()
        # Late events already handed to a worker are not read (and queued) again.
        awaited -= self._delivery.in_flight()
        if not awaited:
            return
        ids = sorted(awaited)
        found = self._retry.call("reading missing event ids", lambda: self._source.fetch_ids(ids))
        self.stats.backlog_reads += 1
        if found:
            for event in found:
                self.site_clock.observe(event.get("created_at"))
            self._delivery.deliver_late(found)

    def _state_trouble(self, exc: StateWriteError) -> None:
        log.critical(
            "cannot write the state file (%s); no further events are delivered until it can "
            "be written; retrying in %.1f s",
            exc,
            self._settings.state_retry_interval,
        )

    def _idle_wait(self) -> bool:
        """Wait before the next poll; True when a stop or reload was requested meanwhile.

        The pacing rule (pacing.py) says when: sooner while events keep coming
        or a wake-up names an event not read yet, ``fetch_interval`` when idle.
        """
        state_retry: float | None = None
        if any(r.unsaved for r in self._runners.values()):
            state_retry = self._monotonic() + self._settings.state_retry_interval
        while True:
            self._take_wakeups()
            deadline = state_retry or self._pacing.next_read(self._monotonic())
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return False
            # Wake often enough that a reload request or an edited plugin is seen promptly.
            step = 1.0 if self._watcher is None and self._wake is None else 0.1
            if self._wake is not None:
                self._wake.wait(min(remaining, step))
                if self._stop.is_set() or self._reload.is_set():
                    return True
            elif self._stop.wait(min(remaining, step)) or self._reload.is_set():
                return True
            self.serve_requests()
            if self._watcher is not None and self._watcher.changed.is_set():
                self.refresh_plugins()

    def _take_wakeups(self) -> None:
        """Turn pending wake-ups into an early read when they name an event not read yet."""
        if self._wake is None:
            return
        highest = self._wake.take()
        if highest is None:
            return
        self.stats.wakeups += 1
        if highest and self.passed(highest):
            log.debug("wake-up for event %d: every plugin is past it; no read", highest)
            return
        self.stats.wakeups_wanted += 1
        log.debug("wake-up for event %d: reading the event log soon", highest)
        self._pacing.wake(highest)

    def passed(self, event_id: int) -> bool:
        """True when every plugin is past ``event_id``: read, and awaited by no backlog."""
        if event_id > self._fetch_position():
            return False
        return not any(event_id in r.awaited() for r in self._runners.values() if r.active)

    def _publish_plugin_status(self) -> None:
        status = {
            f"{p.key[0]}::{p.key[1]}": {"active": p.active, "reason": p.reason, "path": str(p.path)}
            for p in self._loader.plugins
        }
        try:
            self._store.set_extra("plugins", status)
        except StateWriteError as exc:
            self._state_trouble(exc)
