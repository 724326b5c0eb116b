"""The poll loop: fetch events once, hand them to every plugin, keep positions.

``Engine.run()`` repeats ``run_once()`` until a stop (or a reload) is
requested; ``run_once()`` is a short list of named steps that tests drive one
at a time. Errors are isolated in tiers: a callback's error stays in its
plugin (dispatch), a site error is retried with backoff (retry), a state write
error pauses delivery until the state can be written again.

The steps' state lives beside it: ``fetch`` (the read and the head),
``backlog`` (late events by id), ``plugins`` (runners per plugin file),
``requests`` (the ``submit`` queue), ``idle`` (the wait between reads),
``settings`` (knobs and counters). Which thread runs each plugin is the
fan-out's (delivery/fanout.py), where its events run the executors'
(delivery/executors.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shotgun_events.client.outage import Outage
from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.executors import ExecutorFactory, Executors, ExecutorSpec, choose
from shotgun_events.delivery.fanout import Fanout, Promotion
from shotgun_events.delivery.inflight import CallbackWatch
from shotgun_events.delivery.plugin_thread import Hooks as DeliveryHooks
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.engine.backlog import BacklogPoll
from shotgun_events.engine.fetch import FreshReads
from shotgun_events.engine.idle import IdleWait
from shotgun_events.engine.pacing import Pacing
from shotgun_events.engine.plugins import PluginSet
from shotgun_events.engine.positions import SavedPositions
from shotgun_events.engine.progress import CatchUp
from shotgun_events.engine.readahead import ReadAhead
from shotgun_events.engine.requests import Requests
from shotgun_events.engine.settings import Exit, Settings, Stats
from shotgun_events.engine.siteclock import SiteClock
from shotgun_events.engine.timers import TimerSchedule
from shotgun_events.engine.wakeup import WakeUps
from shotgun_events.errors import StateWriteError
from shotgun_events.plugins.matching import wanted_event_types
from shotgun_events.plugins.protocols import LoaderLike, WatcherLike
from shotgun_events.plugins.switches import PluginSwitches
from shotgun_events.state.legacy import ANY_PLUGIN
from shotgun_events.state.protocols import StateStoreLike

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine")


@dataclass
class Hooks:
    """Callbacks into the service layer; all optional."""

    on_ready: Callable[[], None] = lambda: None
    heartbeat: Callable[[], None] = lambda: None
    on_plugins_changed: Callable[[Iterable[Plugin]], None] = lambda plugins: None
    #: Called once after start-up, in the engine's thread (queues pending operator replays).
    on_started: Callable[[Engine], None] = lambda engine: None


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
        executors: ExecutorFactory | None = None,
        spec_for: Callable[[Plugin], ExecutorSpec] | None = None,
    ) -> None:
        self._source = source
        self._retry = retry
        self._loader = loader
        self._store = store
        self._dispatcher = dispatcher
        self._settings = settings
        self._stop = stop
        self._reload = reload or threading.Event()
        self._hooks = hooks or Hooks()
        self._monotonic = monotonic
        self._pacing = Pacing(idle=settings.fetch_interval, active=settings.active_fetch_interval)
        self._started = False
        self.stats = Stats()
        self.switches = PluginSwitches({}, cooldown=settings.disabled_cooldown)
        self.site_clock = SiteClock(clock, monotonic)
        self._delivery = self._make_delivery(source_factory or (lambda: source))
        self._plugins = PluginSet(
            loader=loader,
            watcher=watcher,
            store=store,
            dispatcher=dispatcher,
            delivery=self._delivery,
            settings=settings,
            stop=stop,
            switches=self.switches,
            executors=executors or Executors(dispatcher),
            spec_for=spec_for or (lambda plugin: choose(plugin, {})),
            on_changed=lambda plugins: self._hooks.on_plugins_changed(plugins),
            state_trouble=self._state_trouble,
        )
        self._reader = ReadAhead(
            source,
            source_factory or (lambda: source),
            depth=settings.read_ahead if source_factory is not None else 1,
            batch_size=settings.batch_size,
        )
        self._fresh = FreshReads(
            self._reader,
            retry,
            site_clock=self.site_clock,
            pacing=self._pacing,
            stats=self.stats,
            monotonic=monotonic,
            on_ready=lambda: self._hooks.on_ready(),
        )
        self._backlog = BacklogPoll(
            source,
            retry,
            interval=settings.backlog_poll_interval,
            monotonic=monotonic,
            site_clock=self.site_clock,
            stats=self.stats,
        )
        self._watch = CallbackWatch(
            dispatcher.in_flight,
            settings.callback_timeout,
            holds_others=self._delivery.policy is Promotion.NEVER,
        )
        self._requests: Requests[Engine] = Requests()
        self._idle = IdleWait(
            pacing=self._pacing,
            stop=stop,
            reload=self._reload,
            wake=wake,
            watcher=watcher,
            monotonic=monotonic,
            stats=self.stats,
            state_retry_interval=settings.state_retry_interval,
            passed=lambda event_id: self.passed(event_id),
            serve_requests=lambda: self.serve_requests(),
            refresh_plugins=lambda: self.refresh_plugins(),
        )
        self.progress = CatchUp(batch_size=settings.batch_size, monotonic=monotonic)

    def _make_delivery(self, source_factory: Callable[[], EventSource]) -> Fanout:
        hooks = DeliveryHooks(
            on_failed=lambda plugin: self._plugins.publish_status(),
            on_state_trouble=self._state_trouble,
            clock=lambda: self.site_clock.now(),
            event_types=self.event_type_filter,
            grouped=self._store.grouped,
            site_down=lambda: self.outage is not None and self.outage.down,
        )
        return Fanout(
            hooks,
            self._stop,
            policy=Promotion(self._settings.dispatch),
            registry=self._dispatcher.in_flight,
            source_factory=source_factory,
            retry=self._retry,
            batch_size=self._settings.batch_size,
            state_retry_interval=self._settings.state_retry_interval,
        )

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
    def delivery(self) -> Fanout:
        """Which thread runs each plugin: the shared lane, or a thread of its own."""
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
        return self._requests.submit(action)

    @property
    def runners(self) -> list[PluginRunner]:
        """The runners in delivery order (collections, then file names)."""
        return self._plugins.ordered()

    @property
    def head(self) -> int:
        """The highest event id fetched so far (or the start position)."""
        return self._fresh.head

    @property
    def head_created_at(self) -> datetime | None:
        """created_at of the newest event fetched (for plugins' lag in seconds)."""
        return self._fresh.head_created_at

    def start(self) -> bool:
        """Load saved positions and plugins and choose where to start; False if stopped."""
        positions = self._plugins.positions = SavedPositions(self._store.load())
        newest = self._retry.call("reading the newest event id", self._source.newest_id)
        if newest is None or not self._learn_site_time(newest):
            return False
        self._reader.learn_newest(newest)
        if self._settings.start_from_id is not None:
            self._fresh.head = self._settings.start_from_id - 1
            log.info("starting plugins without a saved position at event %d", self._fresh.head + 1)
        else:
            self._fresh.head = newest
            if not positions.found:
                log.info(
                    "no saved state: starting at the newest event (%d); nothing is replayed "
                    "(use --from-id to start elsewhere)",
                    newest,
                )
        self.switches.disabled = dict(self._store.extras().get("disabled", {}))
        self._started = True
        self.refresh_plugins(initial=True)
        self._skip_expired(list(self._plugins.by_key.values()))
        for key in positions.respelled:
            self._store.forget(key)
        if positions.legacy_default is not None:
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
            return self._exit()
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
        return self._exit()

    def _exit(self) -> Exit:
        return Exit.RELOAD if self._reload.is_set() and not self._stop.is_set() else Exit.STOP

    def run_once(self) -> bool:
        """Do one round of named steps; True when a full batch came back (more may wait)."""
        self.serve_requests()
        if self.outage is not None and self.outage.down:
            return self._wait_for_site(self.outage)
        self._plugins.revive_cooled_down()
        if not self._delivery.save_pending():
            return False
        self.refresh_plugins()
        self._delivery.wait_for_room(self._stop, self.serve_requests)
        position = self._fetch_position()
        batch = self._fresh.next_batch(position, self.event_type_filter())
        if batch is None:
            return False
        if batch and int(batch[0]["id"]) - position - 1 > self._settings.batch_size:
            # More ids missing than a batch: not gaps, the site's log may start after them.
            self._skip_expired(self._delivery.on_lane())
        delivered = self._delivery.deliver(batch, after=position)
        self._backlog.poll(list(self._plugins.by_key.values()), self._delivery)
        self._delivery.expire(self.site_clock.now())
        self._hooks.heartbeat()
        full = len(batch) >= self._settings.batch_size or self._reader.more_ahead()
        self.progress.step(self, full=full)
        return delivered and full

    @property
    def timers(self) -> TimerSchedule:
        """The plugins' timers (for status)."""
        return self._plugins.timers

    @property
    def outage(self) -> Outage | None:
        """The site's availability (None when the daemon does not track it)."""
        return self._dispatcher.outage

    def _wait_for_site(self, outage: Outage) -> bool:
        """Hand out nothing while the site cannot answer; True once it does (go on at once)."""

        def pause(seconds: float) -> bool:
            self.serve_requests()
            self._hooks.heartbeat()
            return self._stop.wait(seconds) or self._reload.is_set()

        return outage.wait(pause)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every plugin handled what was fetched so far (tests, benchmarks)."""
        deadline = self._monotonic() + timeout
        if not self._delivery.drain(timeout):
            return False
        return all(
            runner.drain(max(0.0, deadline - self._monotonic()))
            for runner in list(self._plugins.by_key.values())
        )

    def close(self) -> None:
        """Stop delivery: workers finish the event in hand and persist their cursors."""
        self._reader.close()
        self._delivery.close(self._settings.stop_grace)
        self._close_runners()

    def _close_runners(self) -> None:
        """Let timers and events in flight finish; persist the plugins' watermarks."""
        self._plugins.timers.close(self._settings.stop_grace)
        for runner in list(self._plugins.by_key.values()):
            runner.close(self._settings.stop_grace)

    # -- named steps ---------------------------------------------------------

    def refresh_plugins(self, *, initial: bool = False) -> None:
        """Pick up added, changed and deleted plugin files (see ``PluginSet.refresh``)."""
        self._plugins.refresh(head=self._fresh.head, initial=initial)

    def apply_disabled(self) -> None:
        """Keep plugins an operator disabled switched off, also across reloads."""
        self._plugins.apply_disabled()

    def serve_requests(self) -> None:
        """Carry out operator requests queued by ``submit``."""
        self._requests.serve(self)

    def event_type_filter(self) -> frozenset[str] | None:
        """The event types to ask the site for, or None for all (see ``wanted_event_types``)."""
        return wanted_event_types(self._loader.plugins) if self._settings.prefilter else None

    def _skip_expired(self, runners: list[PluginRunner]) -> None:
        """Move plugins past the events the site's log no longer has (``skip_expired``)."""
        if not runners:
            return
        oldest = self._retry.call("reading the oldest event", self._source.oldest_id)
        for runner in runners:
            runner.skip_expired(oldest or 0, more_than=self._settings.batch_size)

    def _fetch_position(self) -> int:
        return self._delivery.fetch_position(self._fresh.head)

    def _state_trouble(self, exc: StateWriteError) -> None:
        log.critical(
            "cannot write the state file (%s); no further events are delivered until it can "
            "be written; retrying in %.1f s",
            exc,
            self._settings.state_retry_interval,
        )

    def _idle_wait(self) -> bool:
        """Wait before the next poll; True when a stop or reload was requested meanwhile."""
        return self._idle.wait(unsaved=any(r.unsaved for r in self._plugins.by_key.values()))

    def passed(self, event_id: int) -> bool:
        """True when every plugin is past ``event_id``: read, and awaited by no backlog."""
        if event_id > self._fetch_position():
            return False
        return not any(event_id in r.awaited() for r in self._plugins.by_key.values() if r.active)
