"""Plugins' timers: each on its fixed grid, one run at a time, where the plugin's callbacks run.

A timer (``reg.registerTimer``, plugins/registrar.py) is due whenever the
UTC clock is a whole multiple of its ``every``. Each timer has a thread of
its own that sleeps until the next due time and then asks the plugin's
runner to run it (``run_timer``: in the daemon, or as a task on a Celery
worker when the plugin's callbacks run there). The rules:

- **One run at a time.** A run still going at the timer's next due time
  skips that time (and any later one it overlaps); the skips are counted in
  status and metrics, never piled up, and logged when a timer starts to
  overrun (again only after it has kept its time).
- **Only when the plugin can run.** A switched-off plugin's timers do not
  run; during a site outage (client/outage.py) a due time is skipped, and a
  run that meets the outage is not the plugin's failure.
- **A failure is a callback's failure.** The same policy
  (delivery/failures.py) retries, then switches the plugin off
  (``stopOnError``) or gives the run up until the next due time; it is
  logged on the timer's logger, so it goes to the plugin's log file and its
  emails.
- **Reload and stop wait.** A reload replaces a plugin's timers; a new
  timer with the name of an old one waits for the old one's run to end
  before its first run. A stop waits for running runs, up to the grace time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from shotgun_events.client.outage import Outage
from shotgun_events.delivery.dispatch import TimerFailure
from shotgun_events.delivery.failures import FailurePolicy, Verdict
from shotgun_events.plugins.registrar import Timer

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.timers")


class TimerRunner(Protocol):
    """What the schedule needs of a plugin's runner."""

    @property
    def plugin(self) -> Plugin: ...

    def run_timer(self, timer: Timer) -> TimerFailure | None:
        """Run the timer once where the plugin's callbacks run; its failure, if any."""
        ...


def next_due(now: float, every: float) -> float:
    """The first grid time of ``every`` strictly after ``now`` (UTC seconds)."""
    return (math.floor(now / every) + 1) * every


class TimerLoop:
    """One timer's thread: wait for the due time, run, count, repeat until retired."""

    def __init__(
        self,
        runner: TimerRunner,
        timer: Timer,
        *,
        policy: FailurePolicy,
        outage: Outage | None,
        clock: Callable[[], float],
        previous: TimerLoop | None = None,
    ) -> None:
        self.runner = runner
        self.timer = timer
        self._policy = policy
        self._outage = outage
        self._clock = clock
        self._previous = previous
        self._retired = threading.Event()
        self.next_run: float | None = None
        #: Wall time the current run started, None between runs.
        self.running_since: float | None = None
        self.last_run: float | None = None
        self.last_seconds: float | None = None
        self.runs = 0
        self.errors = 0
        self.skipped = 0
        self._overran = False
        self._thread = threading.Thread(
            target=self._loop, name=f"timer-{timer.plugin_name}.{timer.name}", daemon=True
        )

    def start(self) -> None:
        """Start waiting for the first due time."""
        self._thread.start()

    def retire(self) -> None:
        """Run no more (the run in progress, if any, finishes)."""
        self._retired.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; False on timeout."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def describe(self) -> dict[str, Any]:
        """What ``status`` shows of this timer."""
        since = self.running_since
        return {
            "name": self.timer.name,
            "every": self.timer.every,
            "next_run": _iso(self.next_run),
            "last_run": _iso(self.last_run),
            "last_seconds": None if self.last_seconds is None else round(self.last_seconds, 3),
            "running_seconds": None if since is None else round(self._clock() - since, 1),
            "runs": self.runs,
            "errors": self.errors,
            "skipped": self.skipped,
        }

    def _loop(self) -> None:
        if self._previous is not None:
            self._previous.join()  # the old code's run ends before the new code's first
            self._previous = None
        every = self.timer.every
        while True:
            due = next_due(self._clock(), every)
            self.next_run = due
            if self._sleep_until(due):
                self.next_run = None
                return
            plugin = self.runner.plugin
            if not plugin.active:
                continue  # a switched-off plugin's timers wait for it to come back
            if self._outage is not None and self._outage.down:
                self._skip(f"the site is unavailable ({self._outage.reason})")
                continue
            self.run_now(plugin)
            missed = math.floor((self._clock() - due) / every)
            if missed > 0:
                self.skipped += missed
                for _ in range(missed):
                    self._policy.telemetry.timer_ran(plugin.name, self.timer.name, "skipped")
            # Said when a timer starts to overrun, again only after it has kept its time.
            if missed > 0 and not self._overran:
                self.timer.logger.warning(
                    "timer %s ran %.1f s, longer than its every %g s: %d due time(s) skipped; "
                    "a run is never started while one runs (counted in status until it keeps "
                    "its time again)",
                    self.timer.name,
                    self.last_seconds or 0.0,
                    every,
                    missed,
                )
            self._overran = missed > 0

    def _sleep_until(self, due: float) -> bool:
        """Sleep until wall time ``due``; True when retired first."""
        while (left := due - self._clock()) > 0:
            # Short naps: the wall clock may be stepped while we sleep on the monotonic one.
            if self._retired.wait(min(left, 1.0)):
                return True
        return self._retired.is_set()

    def _skip(self, why: str) -> None:
        self.skipped += 1
        self._policy.telemetry.timer_ran(self.runner.plugin.name, self.timer.name, "skipped")
        self.timer.logger.info(
            "timer %s did not run: %s; it runs at its next time", self.timer.name, why
        )

    def run_now(self, plugin: Plugin) -> bool:
        """Run once now; after a failure follow the policy (retries included). True if it ran."""
        start = self.running_since = self._clock()
        try:
            failure = self.runner.run_timer(self.timer)
            attempt = 0
            while failure is not None:
                if failure.not_run:
                    self._skip(_text(failure.error))
                    return False
                if failure.unavailable and self._outage is not None:
                    self._outage.report(failure.error)
                    self._skip(f"the site is unavailable ({self._outage.reason})")
                    return False
                self.errors += 1
                attempt += 1
                decision = self._policy.decide(
                    plugin, self.timer, None, attempt, failure.error, where=failure.where
                )
                if decision.verdict is not Verdict.RETRY:
                    self._policy.telemetry.timer_ran(plugin.name, self.timer.name, "error")
                    return False
                if self._retired.wait(decision.delay):
                    return False
                failure = self.runner.run_timer(self.timer)
            self.runs += 1
            self._policy.telemetry.timer_ran(plugin.name, self.timer.name, "ok")
            return True
        finally:
            self.running_since = None
            self.last_run = start
            self.last_seconds = self._clock() - start


class TimerSchedule:
    """The active plugins' timers: a loop per timer, replaced when its plugin reloads."""

    def __init__(
        self,
        *,
        policy: FailurePolicy,
        outage: Outage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policy = policy
        self._outage = outage
        self._clock = clock
        self._lock = threading.Lock()
        self._loops: dict[Timer, TimerLoop] = {}
        self._closed = False

    def sync(self, runners: Iterable[TimerRunner]) -> None:
        """Run the timers the runners' plugins have now; retire those they no longer have."""
        wanted = {timer: runner for runner in runners for timer in runner.plugin.timers}
        with self._lock:
            if self._closed:
                return
            retired: dict[tuple[str, str], TimerLoop] = {}
            for timer, loop in list(self._loops.items()):
                if wanted.get(timer) is not loop.runner:
                    loop.retire()
                    retired[(timer.plugin_name, timer.name)] = loop
                    del self._loops[timer]
            for timer, runner in wanted.items():
                if timer in self._loops:
                    continue
                loop = TimerLoop(
                    runner,
                    timer,
                    policy=self._policy,
                    outage=self._outage,
                    clock=self._clock,
                    previous=retired.get((timer.plugin_name, timer.name)),
                )
                self._loops[timer] = loop
                loop.start()

    def describe(self, plugin: Plugin) -> list[dict[str, Any]]:
        """Status of one plugin's timers, in registration order."""
        with self._lock:
            loops = dict(self._loops)
        return [loops[t].describe() for t in plugin.timers if t in loops]

    def running(self) -> int:
        """Timer runs in progress now."""
        with self._lock:
            return sum(1 for loop in self._loops.values() if loop.running_since is not None)

    def close(self, timeout: float) -> None:
        """Run no more; wait up to ``timeout`` for the runs in progress to end."""
        with self._lock:
            self._closed = True
            loops = list(self._loops.values())
            self._loops.clear()
        for loop in loops:
            loop.retire()
        deadline = time.monotonic() + timeout
        for loop in loops:
            if not loop.join(max(0.0, deadline - time.monotonic())):
                log.warning(
                    "timer %s of plugin %s still runs after %.0f s; not waiting for it",
                    loop.timer.name,
                    loop.timer.plugin_name,
                    timeout,
                )


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")


def _text(error: BaseException | str) -> str:
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"
