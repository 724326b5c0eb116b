"""Run one event through one plugin's callbacks, each call isolated from the others.

This is the innermost tier of error isolation: a callback that raises is
handed to the failure policy (failures.py: retries, switching the plugin off,
dead letters, and what is logged where); with ``stopOnError`` the event is
*not* counted as handled, so the plugin resumes from it once its file is
fixed. A callback that failed because the site is unavailable
(client/outage.py) is not the plugin's failure: the event is ``HELD`` (not
handled, no retry used, the plugin stays on) and the outage is reported; the
plugin reads it again once the site answers. Each event's callbacks are
recorded in the in-flight registry (inflight.py) while they run. With DEBUG
on for a plugin, its logger also says "Dispatching event N to callback X."
before each call.

A Celery worker runs the same calls with ``attempt`` (scope included) and
reports the first failure back to the daemon's policy. A timer's run is one
call, ``attempt_timer``, wherever the plugin's callbacks run; what follows a
failure is the timer schedule's (engine/timers.py), by the same policy.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shotgun_events.client.limits import CallLimiter
from shotgun_events.client.outage import Outage, is_unavailable
from shotgun_events.delivery.failures import FailurePolicy, Verdict
from shotgun_events.delivery.inflight import InFlight
from shotgun_events.events import Event
from shotgun_events.plugins.registrar import Callback, Timer
from shotgun_events.plugins.scope import Scope
from shotgun_events.telemetry import Telemetry

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.dispatch")


class Outcome(enum.Enum):
    """What became of one event for one plugin."""

    DONE = "done"
    #: No callback of the plugin matched: nothing ran, nothing to persist at once.
    SKIPPED = "skipped"
    #: A stopOnError callback raised: the plugin is now inactive, the event not handled.
    FAILED = "failed"
    #: A stop was requested while a retry waited: the event is not handled, the plugin stays on.
    INTERRUPTED = "interrupted"
    #: The site could not answer (an outage): the event is not handled, the plugin stays on,
    #: and it is read again once the site answers.
    HELD = "held"


@dataclass(frozen=True)
class TimerFailure:
    """Why a timer's run did not succeed."""

    #: The exception (a run in the daemon) or its one-line text (a run on a worker).
    error: BaseException | str
    #: The site could not answer: an outage, not the plugin's failure.
    unavailable: bool = False
    #: " on worker W" for a Celery run.
    where: str = ""
    #: Nothing ran (no worker took it, no answer, no broker): the time is skipped, no blame.
    not_run: bool = False


class Timing(Protocol):
    """Where a line per callback call goes when ``timing_log`` is on."""

    def record(
        self,
        *,
        event_id: int,
        created_at: datetime | None,
        callback: str,
        start: float,
        end: float,
        error: bool,
    ) -> None:
        """Write one line for one callback call."""
        ...


class Connections(Protocol):
    """Source of the ``sg`` handed to callbacks."""

    def get(self, script_name: str, script_key: str) -> Any:
        """Return a connection for these credentials."""
        ...


class Dispatcher:
    """Call a plugin's matching callbacks for one event, in registration order."""

    def __init__(
        self,
        *,
        connections: Connections,
        use_session_uuid: bool,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.time,
        policy: FailurePolicy | None = None,
        wait: Callable[[float], bool] = lambda seconds: False,
        scope: Scope | None = None,
        in_flight: InFlight | None = None,
        outage: Outage | None = None,
        limits: CallLimiter | None = None,
        own_credentials: tuple[str, str] = ("", ""),
    ) -> None:
        self.scope = scope
        #: The daemon's script name and key: the ``sg`` of a timer in a plugin without callbacks.
        self._own_credentials = own_credentials
        self._connections = connections
        self._use_session_uuid = use_session_uuid
        self._timing = timing
        self._clock = clock
        self.policy = policy or FailurePolicy()
        self._wait = wait
        self.in_flight = in_flight or InFlight()
        #: The site's availability; None: a site error is a callback failure like any other.
        self.outage = outage
        #: The ceiling on each plugin's site calls, when one is set (client/limits.py).
        self.limits = limits
        #: Plugin name -> (event id, retry number) while a retry is waiting (for status).
        self.retrying: dict[str, tuple[int, int]] = {}

    @property
    def telemetry(self) -> Telemetry:
        """Where callback calls, retries and dead letters are counted."""
        return self.policy.telemetry

    @telemetry.setter
    def telemetry(self, sink: Telemetry) -> None:
        self.policy.telemetry = sink

    @staticmethod
    def wants(plugin: Plugin, event: Event) -> bool:
        """Whether some callback of ``plugin`` matches ``event`` (its scope is asked in ``run``)."""
        for callback in plugin.callbacks:  # noqa: SIM110 (no generator per event: the hot path)
            if callback.matches(event):
                return True
        return False

    def run(self, plugin: Plugin, event: Event, *, replay: bool = False) -> Outcome:
        """Deliver ``event`` to every matching callback of ``plugin``.

        With ``replay`` (an operator re-delivering old events) a failure stops the
        replay but neither switches the plugin off nor records a dead letter.
        """
        outcome = Outcome.SKIPPED
        event_id = int(event.get("id") or 0)
        registry = self.in_flight
        scope = self.scope
        running = None
        try:
            for callback in plugin.callbacks:
                if not callback.matches(event):
                    continue
                if scope is not None and not scope.admits(plugin, callback, event):
                    continue  # out of the plugin's scope: handled by not being delivered
                if running is None:
                    running = registry.start(plugin, event_id)
                outcome = Outcome.DONE
                if plugin.logger.isEnabledFor(logging.DEBUG):  # no record at all otherwise
                    plugin.logger.debug(
                        "Dispatching event %s to callback %s.", event_id, callback.name
                    )
                error = self._call_once(plugin, callback, event)
                if error is not None:
                    failed = self._failed(plugin, callback, event, error, replay)
                    if failed is not None:
                        return failed
        finally:
            if running is not None:
                registry.end(running)
        return outcome

    def attempt(self, plugin: Plugin, event: Event) -> tuple[Callback, BaseException] | None:
        """Run the wanted callbacks once each, stopping at the first that raises (a worker)."""
        running = self.in_flight.start(plugin, int(event.get("id") or 0))
        try:
            for callback in plugin.callbacks:
                if not callback.matches(event):
                    continue
                if self.scope is not None and not self.scope.admits(plugin, callback, event):
                    continue
                error = self._call_once(plugin, callback, event)
                if error is not None:
                    return callback, error
            return None
        finally:
            self.in_flight.end(running)

    def attempt_timer(self, plugin: Plugin, timer: Timer) -> TimerFailure | None:
        """Run one timer once in this thread, recorded in the in-flight registry."""
        name, key = (
            (timer.script_name, timer.script_key) if timer.script_name else self._own_credentials
        )
        sg = self._connections.get(name, key)
        if self._use_session_uuid:
            sg.set_session_uuid(None)  # no event, no session: never the last event's
        running = self.in_flight.start(plugin, 0, timer=timer.name)
        error: BaseException | None = None
        try:
            timer.func(sg, timer.logger, timer.args)
        except (Exception, SystemExit) as exc:
            error = exc
        finally:
            self.in_flight.end(running)
        if error is None:
            return None
        return TimerFailure(error, unavailable=is_unavailable(error))

    def _failed(
        self,
        plugin: Plugin,
        callback: Callback,
        event: Event,
        error: BaseException | None,
        replay: bool,
    ) -> Outcome | None:
        """After a callback raised: call it again until the policy lets it go; the outcome
        ending the event, or None."""
        event_id = int(event.get("id") or 0)
        attempt = 0
        while True:
            if error is None:
                return None
            if self.outage is not None and not replay and is_unavailable(error):
                self.outage.report(error, held=True)
                plugin.logger.info(
                    "event %d held: the site is unavailable (%s); it runs again once the site "
                    "answers",
                    event_id,
                    self.outage.reason,
                )
                return Outcome.HELD
            if replay:
                self.policy.replay_failed(plugin, callback, event_id, error)
                return Outcome.FAILED
            attempt += 1
            decision = self.policy.decide(plugin, callback, event_id, attempt, error)
            if decision.verdict is Verdict.STOP:
                return Outcome.FAILED
            if decision.verdict is Verdict.GIVE_UP:
                return None
            self.retrying[plugin.name] = (event_id, attempt)
            try:
                if self._wait(decision.delay):
                    return Outcome.INTERRUPTED
            finally:
                self.retrying.pop(plugin.name, None)
            error = self._call_once(plugin, callback, event)

    def _call_once(self, plugin: Plugin, callback: Callback, event: Event) -> BaseException | None:
        sg = self._connections.get(callback.script_name, callback.script_key)
        if self._use_session_uuid:
            # The client keeps the uuid per connection; always set it (None included)
            # so one event's session never leaks into the next.
            sg.set_session_uuid(event.get("session_uuid"))
        start = self._clock()
        error: BaseException | None = None
        try:
            # A shallow copy per call: a plugin that edits the event's top-level keys
            # must not change what the next callback or plugin sees.
            callback.func(sg, callback.logger, dict(event), callback.args)
        except (Exception, SystemExit) as exc:
            # SystemExit from plugin code is the plugin's bug, not a request to stop.
            error = exc
        end = self._clock()
        if self._timing is not None:
            self._timing.record(
                event_id=int(event.get("id") or 0),
                created_at=event.get("created_at"),
                callback=f"{plugin.name}.{callback.name}",
                start=start,
                end=end,
                error=error is not None,
            )
        self.policy.telemetry.callback_ran(plugin.name, error is None, end - start)
        return error
