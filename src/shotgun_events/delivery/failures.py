"""The one failure policy: what happens when an event fails, locally or on a Celery worker.

After a callback raised on an event (``attempt`` = how many times it has
failed on it so far), ``FailurePolicy.decide`` answers, the same way for a
callback that ran in the daemon and one that ran on a worker:

- **retry** while ``attempt`` <= its retries (the callback's own ``retries``,
  else ``callback_retries``), after ``delay * 2**(attempt-1)`` seconds (the
  callback's own ``retry_delay``, else ``callback_retry_delay``), at most
  ``callback_retry_max_delay``; logged at WARNING on the callback's logger;
- then, with ``stopOnError=True``: **stop** the plugin (switched off until its
  file changes; the event is not handled, the plugin resumes from it);
- with ``stopOnError=False``: **give up** the event to the dead letters (it
  counts as handled, the plugin goes on).

An event a worker cannot run at all (its task came back rejected) is given
up the same way after its retries, whatever ``stopOnError`` says: that is not
the plugin's failure. An operator's ``replay`` stops at the first failure and
neither switches the plugin off nor records a dead letter.

A timer's run (plugins/registrar.py ``Timer``) fails the same way, with no
event: retries, then stop the plugin, or give the run up until the timer's
next time (no dead letter: there is no event to keep).

What is logged where: the final failure of a callback that ran in the daemon
is CRITICAL on the callback's logger (so in the plugin's log file and in an
email) with the traceback and the failing frames' local variables. On a
Celery worker that record goes to the worker's log, and the daemon logs the
decision (WARNING for a retry, CRITICAL for stop or give up) on the same
logger with the worker's one-line error.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shotgun_events.config.model import DEFAULTS
from shotgun_events.notify.frames import describe_locals
from shotgun_events.plugins.registrar import Callback, Registered
from shotgun_events.state.protocols import ExtrasStore
from shotgun_events.telemetry import NULL, Telemetry

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

#: Dead letters kept in the state file (the oldest are dropped first).
DEAD_LETTER_LIMIT = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: the config's defaults; a callback's own values win."""

    retries: int = DEFAULTS.integer("daemon", "callback_retries")
    delay: float = DEFAULTS.number("daemon", "callback_retry_delay")
    max_delay: float = DEFAULTS.number("daemon", "callback_retry_max_delay")

    def attempts_for(self, callback: Registered | None) -> int:
        """Extra attempts after the first failure."""
        if callback is None or callback.retries is None:
            return self.retries
        return callback.retries

    def wait_before(self, callback: Registered | None, retry: int) -> float:
        """Seconds to wait before the ``retry``-th new attempt (1-based): doubling."""
        base = (
            self.delay
            if callback is None or callback.retry_delay is None
            else (callback.retry_delay)
        )
        return float(min(base * 2.0 ** (retry - 1), self.max_delay))


class Verdict(enum.Enum):
    """What to do with an event whose callback failed."""

    RETRY = "retry"
    STOP = "stop"
    GIVE_UP = "give up"


@dataclass(frozen=True)
class Decision:
    """The verdict, and for a retry the wait before it."""

    verdict: Verdict
    delay: float = 0.0


class FailurePolicy:
    """Retries, back-off, switching off and dead letters, for local and Celery runs alike."""

    telemetry: Telemetry = NULL

    def __init__(self, retry: RetryPolicy | None = None, dead_letters: DeadLetters | None = None):
        self.retry = retry or RetryPolicy()
        self.dead_letters = dead_letters

    def decide(
        self,
        plugin: Plugin,
        callback: Registered | None,
        event_id: int | None,
        attempt: int,
        error: BaseException | str,
        *,
        where: str = "",
        unrunnable: bool = False,
        stop_on_error: bool | None = None,
    ) -> Decision:
        """Decide (and log, and record) what follows the ``attempt``-th failure of an event.

        ``callback`` None: no callback is to blame (the event cannot be run);
        ``event_id`` None: a timer's run failed; ``where``: " on worker W" for a
        Celery run; ``unrunnable``: give up after the retries whatever
        ``stopOnError`` says; ``stop_on_error``: the failing callback's flag
        when it is not at hand (a worker's answer).
        """
        name = callback.name if callback is not None else "the task"
        logger = callback.logger if callback is not None else plugin.logger
        text = _text(error)
        failed = (
            f"timer {name} failed{where}"
            if event_id is None
            else f"{name} failed on event {event_id}{where}"
        )
        retries = self.retry.attempts_for(callback)
        if attempt <= retries:
            delay = self.retry.wait_before(callback, attempt)
            self.telemetry.callback_retried(plugin.name)
            logger.warning(
                "%s (%s); retry %d of %d in %.1f s", failed, text, attempt, retries, delay
            )
            return Decision(Verdict.RETRY, delay)
        if stop_on_error is None:
            stop_on_error = callback is not None and callback.stop_on_error
        if stop_on_error and not unrunnable:
            _critical(
                plugin,
                logger,
                error,
                "%s (%s); stopping plugin %s (file %s) until its file changes%s",
                failed,
                text,
                plugin.name,
                plugin.path,
                "" if event_id is None else "; it will resume from this event",
            )
            reason = (
                f"timer {name} failed"
                if event_id is None
                else f"callback {name} failed on event {event_id}"
            )
            plugin.deactivate(f"{reason}: {text}", by_callback=True)
            return Decision(Verdict.STOP)
        why = "it cannot be run" if unrunnable else "stopOnError=False"
        if event_id is None:
            _critical(
                plugin, logger, error, "%s (%s); it runs again at its next time (%s)",
                failed, text, why,
            )  # fmt: skip
            return Decision(Verdict.GIVE_UP)
        _critical(
            plugin,
            logger,
            error,
            "%s (%s); giving it up (%s; see dead letters)",
            failed,
            text,
            why,
        )
        self.telemetry.dead_lettered(plugin.name)
        if self.dead_letters is not None:
            self.dead_letters.record(plugin.name, event_id, f"{name}: {text}", reason=why)
        return Decision(Verdict.GIVE_UP)

    def replay_failed(
        self, plugin: Plugin, callback: Callback, event_id: int, error: BaseException
    ) -> None:
        """Log a failure during an operator's replay (which stops; nothing else happens)."""
        _critical(
            plugin,
            callback.logger,
            error,
            "%s failed on replayed event %d (%s); replay stopped",
            callback.name,
            event_id,
            _text(error),
        )


def log_on_worker(
    plugin: Plugin, callback: Registered, event_id: int | None, error: BaseException
) -> None:
    """A Celery worker's record of a failing callback or timer: CRITICAL with frames, here."""
    _critical(
        plugin,
        callback.logger,
        error,
        "%s (%s); the daemon decides what follows",
        f"timer {callback.name} failed" if event_id is None else
        f"{callback.name} failed on event {event_id}",
        _text(error),
    )  # fmt: skip


def _text(error: BaseException | str) -> str:
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


def _critical(
    plugin: Plugin, logger: Any, error: BaseException | str, message: str, *args: object
) -> None:
    """Log at CRITICAL; with the exception at hand, add its traceback and frames' locals."""
    if isinstance(error, str):
        logger.critical(message, *args)
        return
    keys = [c.script_key for c in plugin.callbacks] + [t.script_key for t in plugin.timers]
    frames = describe_locals(error, secrets=keys)
    logger.critical(
        message + "%s",
        *args,
        f"\n\n{frames}" if frames else "",
        exc_info=error,
        stacklevel=4,  # the record names the dispatcher's (or the executor's) line, as before
    )


class DeadLetters:
    """Events given up after their callback failed, kept in the state file."""

    SECTION = "dead_letters"

    def __init__(
        self,
        store: ExtrasStore,
        *,
        limit: int = DEAD_LETTER_LIMIT,
        scrub: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._store = store
        self._limit = limit
        # Error texts are the plugins' own: they can hold a password, like any log line.
        self._scrub = scrub

    def record(self, plugin: str, event_id: int, error: str, *, reason: str) -> None:
        """Add one given-up event (plugin, event id, error, time, why)."""
        entry = {
            "plugin": plugin,
            "event_id": event_id,
            "error": self._scrub(error)[:500],
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "reason": reason,
        }
        self._store.add_extra(self.SECTION, entry, keep=self._limit)

    def entries(self) -> list[dict[str, Any]]:
        """Return the recorded dead letters, oldest first."""
        return list(self._store.extras().get(self.SECTION, []))
