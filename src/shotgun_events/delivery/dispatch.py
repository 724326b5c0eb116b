"""Run one event through one plugin's callbacks, each call isolated from the others.

This is the innermost tier of error isolation: a callback that raises is
logged at CRITICAL on its own logger (``plugin.<name>.<callback>``, so in the
plugin's file), with its traceback and the local variables of its frames, as
the original daemon does; with ``stopOnError`` the whole plugin is switched
off and the event is *not* counted as handled, so the plugin resumes from it
once its file is fixed. With DEBUG on for a plugin, its logger also says
"Dispatching event N to callback X." before each call.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shotgun_events.delivery.failures import DeadLetters, RetryPolicy
from shotgun_events.delivery.scope import Scope
from shotgun_events.events import Event
from shotgun_events.notify.frames import describe_locals
from shotgun_events.plugins.registrar import Callback
from shotgun_events.telemetry import NULL, Telemetry

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

    telemetry: Telemetry = NULL

    def __init__(
        self,
        *,
        connections: Connections,
        use_session_uuid: bool,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.time,
        policy: RetryPolicy | None = None,
        dead_letters: DeadLetters | None = None,
        wait: Callable[[float], bool] = lambda seconds: False,
        scope: Scope | None = None,
    ) -> None:
        self.scope = scope
        self._connections = connections
        self._use_session_uuid = use_session_uuid
        self._timing = timing
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._dead_letters = dead_letters
        self._wait = wait
        #: Plugin name -> (event id, retry number) while a retry is waiting (for status).
        self.retrying: dict[str, tuple[int, int]] = {}

    def run(self, plugin: Plugin, event: Event, *, replay: bool = False) -> Outcome:
        """Deliver ``event`` to every matching callback of ``plugin``.

        With ``replay`` (an operator re-delivering old events) a failure stops the
        replay but neither switches the plugin off nor records a dead letter.
        """
        outcome = Outcome.SKIPPED
        for callback in plugin.callbacks:
            if not callback.matches(event):
                continue
            if self.scope is not None and not self.scope.admits(plugin, callback, event):
                continue  # out of the plugin's scope: handled by not being delivered
            outcome = Outcome.DONE
            if plugin.logger.isEnabledFor(logging.DEBUG):  # no record at all otherwise
                plugin.logger.debug(
                    "Dispatching event %s to callback %s.", event.get("id"), callback.name
                )
            error = self._call(plugin, callback, event)
            if error is None:
                continue
            if error is _INTERRUPTED:
                return Outcome.INTERRUPTED
            event_id = event.get("id")
            if replay:
                _critical(
                    plugin,
                    callback,
                    error,
                    "%s failed on replayed event %s: %s; replay stopped",
                    callback.name,
                    event_id,
                    error,
                )
                return Outcome.FAILED
            if callback.stop_on_error:
                _critical(
                    plugin,
                    callback,
                    error,
                    "%s failed on event %s; stopping plugin %s (file %s) until its file "
                    "changes; it will resume from this event",
                    callback.name,
                    event_id,
                    plugin.name,
                    plugin.path,
                )
                plugin.deactivate(
                    f"callback {callback.name} raised {type(error).__name__} on event "
                    f"{event_id}: {error}",
                    by_callback=True,
                )
                return Outcome.FAILED
            _critical(
                plugin,
                callback,
                error,
                "%s failed on event %s; giving it up (stopOnError=False)",
                callback.name,
                event_id,
            )
            self.telemetry.dead_lettered(plugin.name)
            if self._dead_letters is not None:
                self._dead_letters.record(
                    plugin.name,
                    int(event_id or 0),
                    f"{callback.name}: {type(error).__name__}: {error}",
                    reason="stopOnError=False",
                )
        return outcome

    def _call(self, plugin: Plugin, callback: Callback, event: Event) -> BaseException | None:
        """Call one callback, retrying as the policy says; return the final error or None."""
        retries = self._policy.attempts_for(callback)
        attempt = 0
        while True:
            error = self._call_once(plugin, callback, event)
            if error is None:
                return None
            if attempt >= retries:
                return error
            attempt += 1
            self.telemetry.callback_retried(plugin.name)
            delay = self._policy.wait_before(callback, attempt)
            callback.logger.warning(
                "%s failed on event %s (%s: %s); retry %d of %d in %.1f s",
                callback.name,
                event.get("id"),
                type(error).__name__,
                error,
                attempt,
                retries,
                delay,
            )
            self.retrying[plugin.name] = (int(event.get("id") or 0), attempt)
            try:
                if self._wait(delay):
                    return _INTERRUPTED
            finally:
                self.retrying.pop(plugin.name, None)

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
        if self._timing is not None:
            self._timing.record(
                event_id=int(event.get("id") or 0),
                created_at=event.get("created_at"),
                callback=f"{plugin.name}.{callback.name}",
                start=start,
                end=self._clock(),
                error=error is not None,
            )
        self.telemetry.callback_ran(plugin.name, error is None, self._clock() - start)
        return error


def _critical(
    plugin: Plugin, callback: Callback, error: BaseException, message: str, *args: object
) -> None:
    """Log a callback failure at CRITICAL with its traceback and its frames' local variables."""
    keys = [cb.script_key for cb in plugin.callbacks]
    frames = describe_locals(error, secrets=keys)
    callback.logger.critical(
        message + "%s",
        *args,
        f"\n\n{frames}" if frames else "",
        exc_info=error,
        stacklevel=2,  # the record names the dispatcher's line, not this helper
    )


class _InterruptedError(Exception):
    """A retry wait was cut short by a stop request."""


_INTERRUPTED = _InterruptedError()
