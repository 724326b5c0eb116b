"""Which thread runs each plugin: the shared lane, or a thread of its own.

Every plugin starts on the shared lane, where the engine's batches
run event by event, plugin after plugin, as in the original daemon: no
hand-off between threads per event, so quick plugins cost what they cost
serially, and the engine reads from the slowest plugin of the lane. A
promotion policy decides who leaves it for a thread of its own:

- ``never`` (``dispatch = serial``): nobody; a slow or stuck callback holds
  every plugin, as in the original;
- ``when slow`` (``dispatch = auto``, the default): a plugin leaves once its
  slow callbacks (``SLOW_CALL`` or longer each) add up to more than ``HELD``
  in one batch, the one still running included, so the others wait for it
  at most ``HELD`` per promotion; one that has caught up and stayed idle
  comes back after ``REJOIN_AFTER`` seconds, twice as long after each new
  promotion, so a plugin slow for good stays on its own thread. Times are
  taken on ``busy_clock``: a garbage collection stops every thread, so the
  callback it lands in is not slow for it;
- ``always`` (``dispatch = parallel``): every plugin on its own thread.

Plugins on threads of their own are fed by ``threads.OwnThreads``. The lane
itself is a thread (``Lane``) that the engine's thread hands each batch and
watches: a plugin taken off in the middle of a callback leaves that lane to
the callback, a new lane takes the rest of the batch (plugins skip what they
already handled, by their positions), and the plugin gets its thread once
the callback returns.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from shotgun_events.client.retry import SiteRetry
from shotgun_events.client.source import EventSource
from shotgun_events.delivery.dispatch import Outcome
from shotgun_events.delivery.inflight import InFlight, busy_clock
from shotgun_events.delivery.plugin_thread import DETACH_AFTER, Hooks
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.delivery.threads import Lane, LaneAbandonedError, OwnThreads
from shotgun_events.errors import StateWriteError
from shotgun_events.events import Event

log = logging.getLogger("engine.delivery")

#: A callback at least this long is slow; shorter ones (GIL waits, a cache miss) never count.
SLOW_CALL = 0.01
#: Slow time in one batch after which a plugin leaves the shared lane.
HELD = 0.03
#: Seconds a caught-up, idle plugin waits before it rejoins the lane (doubling). Coming
#: back too soon costs the lane at most ``HELD`` once; staying away costs a thread hand-off
#: per event for as long: a second away already costs more than a wrong return.
REJOIN_AFTER = 1.0


class Promotion(enum.Enum):
    """Who leaves the shared lane for a thread of their own."""

    NEVER = "serial"
    WHEN_SLOW = "auto"
    ALWAYS = "parallel"


class Fanout:
    """The shared lane and the plugins' own threads, fed from one read of the site."""

    def __init__(
        self,
        hooks: Hooks,
        stop: threading.Event,
        *,
        policy: Promotion,
        registry: InFlight,
        source_factory: Callable[[], EventSource],
        retry: SiteRetry,
        batch_size: int,
        state_retry_interval: float = 5.0,
        monotonic: Callable[[], float] = busy_clock,
    ) -> None:
        self._hooks = hooks
        self._stop = stop
        self.policy = policy
        self._registry = registry
        self._monotonic = monotonic
        self._own = OwnThreads(
            hooks,
            stop,
            source_factory=source_factory,
            retry=retry,
            batch_size=batch_size,
            state_retry_interval=state_retry_interval,
            monotonic=monotonic,
            # A plugin taken off the lane for holding it never holds it again: once it is
            # MAX_PENDING batches behind it reads on its own. With every plugin on a thread
            # of its own, the engine waits a little for a full one: it reads for them all.
            patience=DETACH_AFTER if policy is Promotion.ALWAYS else 0.0,
        )
        # The shared lane: its plugins (a list replaced, never changed in place, so the
        # lane thread iterates without a copy), slow time per plugin in this batch.
        self._group: list[PluginRunner] = []
        self._slow: dict[int, float] = {}
        self._lane: Lane | None = None
        #: Lanes left to a callback taken off mid-call; a stop waits for them.
        self._left: list[Lane] = []
        #: Lane thread -> the turn of the plugin it is handing an event to (a one-item list
        #: that the lane (the call returned) or the watch (it is taken off) pops first),
        #: and when the turn started.
        self._turns: dict[int, tuple[list[PluginRunner], float]] = {}
        #: Plugins taken off in the middle of a callback: their thread starts when it returns.
        self._stuck: dict[int, PluginRunner] = {}
        # Taking a plugin off and its callback returning on the left lane meet here: the
        # lane must not look for its thread before the take-off has made it.
        self._take_off_lock = threading.Lock()
        #: The batch the lane runs now (a promoted plugin is given the rest of it).
        self._batch: list[Event] = []
        self._group_lock = threading.Lock()
        # Promoted plugins: since when, and how often (the rejoin wait doubles).
        self._promoted: dict[int, tuple[PluginRunner, float, int]] = {}
        self._promotions: dict[int, int] = {}

    # -- membership --------------------------------------------------------------

    def add(self, runner: PluginRunner) -> None:
        """A new plugin starts on the shared lane, or on its own thread with ``always``."""
        if self.policy is Promotion.ALWAYS:
            self._own.add(runner)
        else:
            self._group = [*self._group, runner]

    def remove(self, runner: PluginRunner) -> None:
        """Stop delivering to a removed plugin, wherever it runs."""
        key = id(runner)
        self._promotions.pop(key, None)
        self._promoted.pop(key, None)
        with self._take_off_lock:
            stuck = self._stuck.pop(key, None) is not None
        if stuck:
            return  # still inside its callback on a left lane: it gets no thread after it
        if not self._own.remove(runner):
            self._group = [r for r in self._group if r is not runner]

    def order(self, runners: list[PluginRunner]) -> None:
        """Run the lane's plugins in the loader's order (collections, then file names)."""
        members = {id(r) for r in self._group}
        self._group = [r for r in runners if id(r) in members]

    def on_lane(self) -> list[PluginRunner]:
        """The plugins on the shared lane now (between batches, the engine's to change)."""
        return list(self._group)

    def on_own_threads(self) -> list[PluginRunner]:
        """The plugins running on a thread of their own now."""
        return self._own.runners()

    @property
    def most_promoted(self) -> int:
        """The most plugins on threads of their own at once (benchmarks, status)."""
        return self._own.most

    # -- what the engine calls, per round ------------------------------------------

    def fetch_position(self, head: int) -> int:
        """Where the shared read continues: the slowest plugin of the lane, else the
        plugins on their own threads (their first read starts at the front runner)."""
        own = self._own.position(head)
        lane = [r.cursor.last_id for r in self._group if r.active]
        return min(lane) if lane else own

    def wait_for_room(self, stop: threading.Event, serve: Callable[[], None]) -> None:
        """Wait until every plugin on a thread of its own can take a batch (threads.py)."""
        self._own.wait_for_room(stop, serve)

    def deliver(self, batch: list[Event], *, after: int) -> bool:
        """Queue the batch (read after id ``after``) for the attached threads, then run it on
        the shared lane."""
        if not batch:
            return True
        behind = [r for r in self._group if r.active and r.cursor.last_id < after]
        if behind:
            # Switched back on or rewound since the read was placed: the ids between would
            # look like gaps to it. Not this batch; the next read starts from the slowest.
            log.info(
                "plugin %s is at event %d, behind the read after %d; reading again from it",
                behind[0].plugin.name,
                behind[0].cursor.last_id,
                after,
            )
            return False
        self._rejoin_idle(after)
        self._own.feed(batch, after)
        if not self._group:
            return True
        return self._on_lane(lambda: self._run_group(batch))

    def deliver_late(self, events: list[Event]) -> None:
        """Late events go to whoever waits for them."""
        self._own.late(events)
        if self._group:
            self._on_lane(lambda: self._run_late(events))

    def expire(self, now: datetime) -> None:
        """Expire backlogs: the lane's now, the threads' between their events."""
        try:
            for runner in self._group:
                runner.expire(now)
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
        self._own.expire()

    def save_pending(self) -> bool:
        """Retry the lane's failed state writes (threads retry their own); False while failing."""
        pending = [r for r in self._group if r.unsaved]
        try:
            for runner in pending:
                runner.save()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            return False
        if pending:
            log.warning("the state file can be written again; resuming delivery")
        return True

    def in_flight(self) -> set[int]:
        """Ids of late events queued for a thread and not handled yet (not to be read again)."""
        return self._own.in_flight()

    def drain(self, timeout: float) -> bool:
        """Wait until the threads handled all they were given and left lanes have ended."""
        deadline = self._monotonic() + timeout
        if not self._own.drain(deadline):
            return False
        self._left = [lane for lane in self._left if not lane.join(deadline - self._monotonic())]
        return not self._left

    def close(self, timeout: float) -> None:
        """Let every callback in hand finish (up to ``timeout``), persist positions, stop."""
        deadline = self._monotonic() + timeout
        if self._lane is not None:
            self._lane.stop()
            self._lane = None
        self._own.close(deadline)
        for lane in self._left:
            if not lane.join(deadline - self._monotonic()):
                log.warning(
                    "a plugin callback is still running after %.1f s; stopping anyway", timeout
                )
        self._left = []
        for runner in self._group:
            try:
                runner.flush()
            except StateWriteError as exc:
                self._hooks.on_state_trouble(exc)

    # -- the shared lane ------------------------------------------------------------

    def _on_lane(self, job: Callable[[], bool]) -> bool:
        """Run ``job`` on the lane, watching for a plugin that holds it too long."""
        self._join_left()
        lane = self._lane or self._new_lane()
        lane.submit(job)
        # Watching, the engine's thread wakes when the running callback could reach HELD.
        wait = HELD if self.policy is Promotion.WHEN_SLOW else None
        while not lane.done.wait(wait):
            taken, wait = self._take_off(lane.ident)
            if taken is not None:
                self._left.append(lane)
                lane = self._new_lane()
                lane.submit(job)
        if lane.error is not None:
            error, lane.error = lane.error, None
            raise error
        return lane.result

    def _new_lane(self) -> Lane:
        self._lane = Lane()
        return self._lane

    def _take_off(self, lane: int) -> tuple[PluginRunner | None, float]:
        """Take off the lane the plugin whose running callback brings it over ``HELD``;
        return it (or None) and the seconds until the running callback could do so."""
        entry = self._turns.get(lane)
        if entry is None:
            return None, HELD
        turn, started = entry
        try:
            runner = turn[0]
        except IndexError:
            return None, SLOW_CALL  # its turn just ended: the next one is not due before
        running = self._monotonic() - started
        due = max(SLOW_CALL, HELD - self._slow.get(id(runner), 0.0))
        if running <= due:
            return None, due - running
        work = self._registry.on_thread(lane)
        if work is None or runner.plugin is not work.plugin:
            return None, SLOW_CALL  # not in its callback yet, or done with it
        with self._take_off_lock:
            try:
                turn.pop()  # whoever takes the turn first wins: the lane when it returned first
            except IndexError:
                return None, SLOW_CALL
            self._stuck[id(runner)] = runner
            held = self._slow.pop(id(runner), 0.0) + running
            self._promote(runner, held, after=work.event_id, start=False)
        return runner, HELD

    def _run_group(self, batch: list[Event]) -> bool:
        """On the lane: each event to every plugin of the lane in order; False if cut short."""
        self._slow = {}
        self._batch = batch
        now = self._hooks.clock()
        try:
            for event in batch:
                if self._stop.is_set():
                    return False
                if not self._run_event(event, now, timed=True):
                    return False
            for runner in self._group:
                runner.flush()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
            return False
        return True

    def _run_late(self, events: list[Event]) -> bool:
        now = self._hooks.clock()
        try:
            for event in events:
                self._run_event(event, now, timed=False, late=True)
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)
        return True

    def _run_event(self, event: Event, now: datetime, *, timed: bool, late: bool = False) -> bool:
        """One event to each plugin of the lane (``late``: to those that wait for it); False
        when a stop cut it short."""
        try:
            with self._hooks.grouped():  # one write for this event's records over the lane
                return self._pass(event, now, timed, late)
        except StateWriteError:
            # The group's write failed after its records were taken: until a save goes
            # through, nothing more is handed out (``save_pending``).
            for runner in self._group:
                runner.mark_unsaved()
            raise

    def _pass(self, event: Event, now: datetime, timed: bool, late: bool) -> bool:
        runners = self._group
        if self.policy is Promotion.NEVER:
            for runner in runners:
                outcome = runner.handle(event, now, late=late)
                if outcome is Outcome.FAILED:
                    self._hooks.on_failed(runner.plugin)
                elif outcome is Outcome.INTERRUPTED:
                    return False
            return True
        lane = threading.get_ident()
        clock, turns = self._monotonic, self._turns
        started = clock()  # then each turn starts where the one before ended: one read per turn
        for runner in runners:
            if self._group is not runners and runner not in self._group:
                continue  # taken off meanwhile
            # The plugin's turn on this lane: the lane and the watch (``_take_off``) each
            # pop it, atomically; whoever gets it decides, so no lock per plugin and event.
            turn = [runner]
            turns[lane] = (turn, started)
            try:
                outcome = runner.handle(event, now, late=late)
            finally:
                try:
                    turn.pop()
                    left = False
                except IndexError:
                    left = True
                    self._resume_taken_off(runner)  # even when the callback's pass raised
            if left:
                raise LaneAbandonedError
            ended = clock()
            took, started = ended - started, ended
            if outcome is None:
                continue
            if outcome is Outcome.FAILED:
                self._hooks.on_failed(runner.plugin)
                started = clock()  # not the next plugin's time
            elif outcome is Outcome.INTERRUPTED:
                return False
            if timed and took >= SLOW_CALL:  # (only ``when slow`` has a lane to time)
                slow = self._slow.get(id(runner), 0.0) + took
                self._slow[id(runner)] = slow
                if slow > HELD and runner.active:
                    self._flush(runner)
                    self._promote(runner, slow, after=int(event["id"]))
                    started = clock()
        return True

    # -- plugins on threads of their own ------------------------------------------------

    def _promote(
        self, runner: PluginRunner, held: float, *, after: int, start: bool = True
    ) -> None:
        """Give the plugin a thread of its own, attached, with the rest of the batch in hand
        (the events after ``after``): it goes on with the shared read, not reading alone."""
        with self._group_lock:
            self._group = [r for r in self._group if r is not runner]
        count = self._promotions.get(id(runner), 0) + 1
        self._promotions[id(runner)] = count
        log.info(
            "plugin %s held the other plugins for %.2f s in one batch%s; it runs on a thread "
            "of its own so they are not held up",
            runner.plugin.name,
            held,
            "" if start else " (in a callback still running: its thread starts once it returns)",
        )
        self._promoted[id(runner)] = (runner, self._monotonic(), count)
        rest = [e for e in self._batch if int(e["id"]) > after]
        self._own.add(runner, rest=rest, after=after, start=start)

    def _resume_taken_off(self, runner: PluginRunner) -> None:
        """On a left lane, once the plugin's callback has returned: a new lane has the rest
        of the batch; the plugin's thread (fed since it was taken off) starts now, unless
        the plugin was removed meanwhile."""
        with self._take_off_lock:
            stuck = self._stuck.pop(id(runner), None) is not None
        if stuck:
            self._flush(runner)
            self._own.start(runner)

    def _flush(self, runner: PluginRunner) -> None:
        try:
            runner.flush()
        except StateWriteError as exc:
            self._hooks.on_state_trouble(exc)

    def _join_left(self) -> None:
        """Forget the lanes left to a callback that has returned since."""
        if self._left:
            self._left = [lane for lane in self._left if not lane.join(0)]

    def _rejoin_idle(self, after: int) -> None:
        """Bring back promoted plugins that are caught up, idle and were away long enough
        (and have had every id up to ``after``, where the batch in hand was read)."""
        now = self._monotonic()
        for key, (runner, since, count) in list(self._promoted.items()):
            if now - since < REJOIN_AFTER * 2 ** (count - 1) or not self._own.idle(runner):
                continue
            if runner.cursor.last_id < after:
                continue
            self._own.remove(runner)
            del self._promoted[key]
            self._group = [*self._group, runner]
            log.info("plugin %s is caught up; it shares the lane again", runner.plugin.name)
