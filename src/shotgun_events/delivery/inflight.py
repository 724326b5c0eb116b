"""What runs now: one registry of the work in progress, and the watch that reports stuck callbacks.

``InFlight`` maps a thread (a callback or timer running in the daemon) or a
Celery task to the plugin, the event (or timer) and the time it started. It is written where
work starts and ends, and nowhere else: the dispatcher around each event's
callbacks, the Celery executor around each task. Everything that asks "what
is running now" reads it: the callback watch, the shared lane's watch for a
callback that holds the other plugins, ``status``, ``/metrics`` and the page.

The shared lane times callbacks on ``busy_clock``, which leaves garbage collections out:
a collection holds every thread, so it is no callback's time.

Python cannot safely kill a thread, so a stuck callback is not interrupted:
``CallbackWatch`` logs an ERROR with its thread's stack, once per stuck
event, from a thread of its own (a callback stuck in the engine's own lane
could not report itself).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Hashable
from threading import get_ident
from time import monotonic
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine.watch")

#: Seconds spent in garbage collections so far, and when the running one started.
_collecting = [0.0, 0.0]


def _count_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _collecting[1] = time.perf_counter()
    else:
        _collecting[0] += time.perf_counter() - _collecting[1]


def busy_clock() -> float:
    """``time.monotonic()`` less the seconds spent collecting garbage so far.

    A collection (tens of milliseconds on a large heap) holds every thread;
    timed on this clock, it does not count against the callback it lands in.
    """
    return monotonic() - _collecting[0]


gc.callbacks.append(_count_collection)


class Running(NamedTuple):
    """One piece of work in progress (a tuple: one is made per event, on the hot path)."""

    plugin: Plugin
    event_id: int
    #: ``time.monotonic()`` when it started.
    since: float
    #: The thread running the callback, or None for a Celery task (it runs elsewhere).
    thread: int | None
    #: The timer's name when this is a timer's run (its ``event_id`` is then 0).
    timer: str = ""


class InFlight:
    """Thread or task -> what it runs; written where work starts and ends."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        # Plain dict operations are atomic: no lock on the hot path (one set, one pop).
        self._now: dict[Hashable, tuple[Any, ...]] = {}

    def start(
        self, plugin: Plugin, event_id: int, *, task: Hashable = None, timer: str = ""
    ) -> Hashable:
        """Record work starting (in the calling thread, or as ``task``); return its key."""
        # A plain tuple (``Running``'s fields): a named tuple costs a Python call per event.
        if task is None:
            thread = get_ident()
            self._now[thread] = (plugin, event_id, self.monotonic(), thread, timer)
            return thread
        self._now[task] = (plugin, event_id, self.monotonic(), None, timer)
        return task

    def end(self, key: Hashable) -> None:
        """Record the work under ``key`` finished."""
        self._now.pop(key, None)

    def on_thread(self, thread: int) -> Running | None:
        """What the thread is running now, if anything."""
        work = self._now.get(thread)
        return None if work is None else Running(*work)

    def running(self) -> list[Running]:
        """Everything in progress now."""
        for _ in range(5):
            try:
                return [Running(*work) for work in list(self._now.values())]
            except RuntimeError:  # changed while copied: copy again
                continue
        return []

    def count(self, plugin_name: str) -> int:
        """How many callbacks or tasks of a plugin run now."""
        return sum(1 for r in self.running() if r.plugin.name == plugin_name)


class CallbackWatch:
    """Log the stack of any callback running longer than ``limit`` seconds, once per event."""

    def __init__(self, registry: InFlight, limit: float, *, holds_others: bool = False) -> None:
        self._registry = registry
        self._limit = limit
        #: Whether a stuck callback holds up the other plugins (dispatch = serial).
        self._holds_others = holds_others
        self._reported: set[tuple[int, int, float]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callback-watch", daemon=True)

    def start(self) -> None:
        """Check every second, from a thread of its own (nothing to do without a limit)."""
        if self._limit > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop checking."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.check()

    def check(self) -> list[str]:
        """Report callbacks over the limit (once per stuck event); return their plugins."""
        if self._limit <= 0:
            return []
        now = self._registry.monotonic()
        reported = []
        current: set[tuple[int, int, float]] = set()
        for work in self._registry.running():
            if work.thread is None or now - work.since < self._limit:
                continue
            key = (work.thread, work.event_id, work.since)
            current.add(key)
            if key in self._reported:
                continue
            frame = sys._current_frames().get(work.thread)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)"
            others = (
                "every other plugin waits for it (dispatch = serial)"
                if self._holds_others and not work.timer
                else "the other plugins are not held up"
            )
            log.error(
                "plugin %s has been %s for %.0f s (callback_timeout %.0f s); "
                "it keeps running and %s. Its stack:\n%s",
                work.plugin.name,
                f"running timer {work.timer}"
                if work.timer
                else f"handling one event ({work.event_id})",
                now - work.since,
                self._limit,
                others,
                stack,
            )
            reported.append(work.plugin.name)
        # A stuck event is reported once; a new one (or the same id again later) can be.
        self._reported = current
        return reported
