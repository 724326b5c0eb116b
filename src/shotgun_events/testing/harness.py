"""One plugin file loaded by the daemon's loader and fed events through its dispatcher.

``PluginHarness`` is what ``plugin_under_test(path)`` returns and what
``shotgunEventDaemon try`` drives: the real ``PluginLoader`` (restricted to one
file), the real ``Dispatcher`` (sg, logger, args, matchEvents, retries, stopOnError
switching the plugin off), with every callback's connection a ``RecordingShotgun``.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shotgun_events.client.connections import ConnectionFactory
from shotgun_events.client.source import ShotgunEventSource
from shotgun_events.delivery.dispatch import Dispatcher, Outcome, TimerFailure
from shotgun_events.delivery.failures import FailurePolicy, RetryPolicy
from shotgun_events.engine.timers import TimerLoop
from shotgun_events.errors import PluginError
from shotgun_events.events import Event
from shotgun_events.plugins.loader import Plugin, PluginLoader
from shotgun_events.plugins.registrar import Callback, Timer
from shotgun_events.testing.guard import ours
from shotgun_events.testing.recording import RecordingShotgun, Write, WriteLog

#: How many events one read of ``process_new_events`` asks for (the site's page size).
PAGE = 500


@dataclass
class CallbackError:
    """One failed callback run: which callback, on which event, and the exception."""

    callback: str
    event_id: int | None
    exception: BaseException
    traceback: str = field(repr=False)

    def __str__(self) -> str:
        """``callback on event N: Type: message`` (a timer's run has no event)."""
        where = "" if self.event_id is None else f" on event {self.event_id}"
        return f"{self.callback}{where}: {type(self.exception).__name__}: {self.exception}"


@dataclass(frozen=True)
class Registration:
    """What one ``reg.registerCallback`` call registered."""

    name: str
    match_events: object
    args: object
    stop_on_error: bool
    script_name: str


class _OneFileLoader(PluginLoader):
    """The daemon's loader, seeing only one file of its folder (its neighbours stay unloaded)."""

    def __init__(self, path: Path, logger_factory: Callable[[str], logging.Logger]) -> None:
        self._only = path.resolve()
        super().__init__(paths=[path.parent], logger_factory=logger_factory)

    def _list(self, collection: Path) -> Any:
        found = super()._list(collection)
        return None if found is None else [e for e in found if e[1].resolve() == self._only]


class _Capture(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink.append(record)


@dataclass
class _TimerHere:
    """Runs a timer in the calling thread, through the harness's dispatcher; keeps its errors."""

    plugin: Plugin
    dispatcher: Dispatcher
    errors: list[CallbackError]

    def run_timer(self, timer: Timer) -> TimerFailure | None:
        failure = self.dispatcher.attempt_timer(self.plugin, timer)
        if failure is not None and isinstance(failure.error, BaseException):
            text = "".join(traceback.format_exception(failure.error))
            self.errors.append(CallbackError(timer.name, None, failure.error, text))
        return failure


class RecordingConnections:
    """The dispatcher's connection source: one ``RecordingShotgun`` per credential."""

    def __init__(
        self,
        server: str,
        writes: WriteLog,
        *,
        dry: bool,
        timeout: float = 60.0,
        http_proxy: str | None = None,
        ca_certs: str | None = None,
    ) -> None:
        """Connect to ``server``; record into ``writes``; ``dry`` sends no write."""
        self._server = server
        self._writes = writes
        self._dry = dry
        self._timeout = timeout
        self._options = {"http_proxy": http_proxy, "ca_certs": ca_certs}
        self._made: dict[tuple[str, str], RecordingShotgun] = {}

    def get(self, script_name: str, script_key: str) -> RecordingShotgun:
        """The connection for these credentials, made once, not connected until used."""
        sg = self._made.get((script_name, script_key))
        if sg is None:
            with ours():
                sg = self._make(script_name, script_key)
            self._made[(script_name, script_key)] = sg
        return sg

    def _make(self, script_name: str, script_key: str) -> RecordingShotgun:
        sg = RecordingShotgun(
            self._server,
            script_name,
            script_key,
            connect=False,
            writes=self._writes,
            dry=self._dry,
            **self._options,  # type: ignore[arg-type]
        )
        sg.config.timeout_secs = self._timeout
        return sg

    def close(self) -> None:
        """Close every connection."""
        for sg in self._made.values():
            sg.close()
        self._made.clear()


@dataclass
class PluginHarness:
    """A plugin loaded as the daemon loads it, with what it wrote, logged and raised."""

    path: Path
    connections: RecordingConnections
    source: ShotgunEventSource | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    use_session_uuid: bool = True
    writes_log: WriteLog = field(default_factory=WriteLog)
    errors: list[CallbackError] = field(default_factory=list)
    logs: list[logging.LogRecord] = field(default_factory=list)
    #: The id ``process_new_events`` reads after.
    cursor: int = 0
    #: The ``sg`` credentials of a timer in a plugin without callbacks (the daemon's own).
    own_credentials: tuple[str, str] = ("", "")

    def __post_init__(self) -> None:
        self.path = Path(self.path).resolve()
        if not self.path.is_file():
            raise PluginError(f"plugin {self.path}: no such file")
        self._handler = _Capture(self.logs)
        self._loggers: list[tuple[logging.Logger, int]] = []
        self._loader = _OneFileLoader(self.path, self._logger)
        self._dispatcher = Dispatcher(
            connections=self.connections,
            use_session_uuid=self.use_session_uuid,
            policy=FailurePolicy(self.policy),
            # retries run at once: a test (or a dry run) never sleeps through a back-off
            wait=lambda seconds: False,
            own_credentials=self.own_credentials,
        )
        self._loader.scan()
        plugin = self.plugin
        if not plugin.active:
            raise PluginError(f"plugin {self.path} did not load: {plugin.reason}")
        self._instrument()

    # -- loading ---------------------------------------------------------------------

    def _logger(self, name: str) -> logging.Logger:
        logger = logging.getLogger(f"plugin.{name}")
        # Plugins' INFO lines must reach the capture even when the root logger says WARNING.
        self._loggers.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self._handler)
        return logger

    @property
    def plugin(self) -> Plugin:
        """The loader's ``Plugin`` object (``active``, ``reason``, ``callbacks``...)."""
        if not self._loader.plugins:
            raise PluginError(f"plugin {self.path} is not a plugin file the daemon would load")
        return self._loader.plugins[0]

    @property
    def name(self) -> str:
        """The plugin's name (its file name without ``.py``)."""
        return self.plugin.name

    @property
    def active(self) -> bool:
        """False once a stopOnError callback failed (the daemon switches the plugin off)."""
        return self.plugin.active

    def reload(self) -> None:
        """Load the file again, as a touch of it does in the daemon (switches it back on)."""
        self._loader.reload(self.plugin.key)
        if not self.plugin.active:
            raise PluginError(f"plugin {self.path} did not load: {self.plugin.reason}")
        self._instrument()

    def resume(self) -> None:
        """Switch the plugin back on without reloading it (its module state is kept)."""
        self.plugin.active = True
        self.plugin.reason = None
        self.plugin.failed_at = None

    def _instrument(self) -> None:
        for callback in self.plugin.callbacks:
            callback.func = self._recording(callback, callback.func)

    def _recording(self, callback: Callback, func: Callable[..., object]) -> Callable[..., object]:
        def run(sg: Any, logger: logging.Logger, event: Event, args: Any) -> object:
            try:
                return func(sg, logger, event, args)
            except BaseException as exc:
                self.errors.append(
                    CallbackError(callback.name, event.get("id"), exc, traceback.format_exc())
                )
                raise

        run.__name__ = callback.name
        return run

    @property
    def registered(self) -> list[Registration]:
        """Its callbacks, in registration order, with their filters and args."""
        return [
            Registration(cb.name, cb.match_events, cb.args, cb.stop_on_error, cb.script_name)
            for cb in self.plugin.callbacks
        ]

    @property
    def callbacks(self) -> list[Callback]:
        """The registered ``Callback`` objects themselves."""
        return list(self.plugin.callbacks)

    # -- events ----------------------------------------------------------------------

    @property
    def writes(self) -> list[Write]:
        """What the plugin wrote, in order: ``{method, entity_type, entity_id, data}``."""
        return list(self.writes_log.items)

    def deliver(self, event: Event) -> Outcome:
        """Run one event through the real dispatcher; a failing callback does not raise.

        Returns the dispatcher's outcome; ``SKIPPED`` when no callback matched or the
        plugin is switched off (as the daemon, which sends it nothing until reloaded).
        """
        if not self.plugin.active:
            logging.getLogger(f"plugin.{self.name}").warning(
                "event %s not delivered: the plugin is off (%s); call reload() to switch it on",
                event.get("id"),
                self.plugin.reason,
            )
            return Outcome.SKIPPED
        return self._dispatcher.run(self.plugin, event)

    def deliver_all(self, events: Iterable[Event]) -> list[Outcome]:
        """Deliver events in order; returns one outcome per event."""
        return [self.deliver(e) for e in events]

    def process_new_events(self) -> list[Event]:
        """Deliver every event logged since the plugin was loaded (or the last call).

        Events that the plugin's own writes cause during this call are delivered by
        the next call, as the daemon would deliver them at its next poll.
        """
        if self.source is None:
            raise PluginError("this plugin is not connected to a site; deliver() events instead")
        newest = self.source.newest_id()
        delivered: list[Event] = []
        while self.cursor < newest:
            batch = [e for e in self.source.fetch_after(self.cursor, PAGE) if e["id"] <= newest]
            if not batch:
                break
            for event in batch:
                self.deliver(event)
                delivered.append(event)
            self.cursor = batch[-1]["id"]
        self.cursor = max(self.cursor, newest)
        return delivered

    def run_timer(self, name: str) -> bool:
        """Run the plugin's timer ``name`` once now, as the daemon would at its due time.

        A failure goes through the same policy as in the daemon (retries at
        once, then ``stopOnError`` switches the plugin off); True if it ran
        without raising.
        """
        timer = next((t for t in self.plugin.timers if t.name == name), None)
        if timer is None:
            known = ", ".join(t.name for t in self.plugin.timers) or "none"
            raise PluginError(f"plugin {self.path} has no timer {name!r} (its timers: {known})")
        runner = _TimerHere(self.plugin, self._dispatcher, self.errors)
        loop = TimerLoop(
            runner, timer, policy=self._dispatcher.policy, outage=None, clock=time.time
        )
        return loop.run_now(self.plugin)

    def replay(self, events: str | Path | Iterable[Event]) -> list[Outcome]:
        """Deliver captured events (an ``events.jsonl`` from ``capture``, or a list)."""
        from shotgun_events.testing.capture import load_events

        items = load_events(events) if isinstance(events, str | Path) else list(events)
        return self.deliver_all(items)

    def close(self) -> None:
        """Close connections and detach the log capture."""
        self.connections.close()
        if self.source is not None:
            self.source.close()
        for logger, level in self._loggers:
            logger.removeHandler(self._handler)
            logger.setLevel(level)
        self._loggers.clear()


def site_source(url: str, script_name: str, script_key: str, timeout: float = 60.0) -> Any:
    """An event source reading the site as the daemon's engine does."""
    factory = ConnectionFactory(server=url, timeout=timeout)
    return ShotgunEventSource(lambda: factory.create(script_name, script_key, fast_decode=True))
