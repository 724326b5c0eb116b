"""Notice callbacks that run too long and log where they are stuck.

Python cannot safely kill a thread, so a stuck callback is not interrupted:
its plugin's worker stays busy (the other plugins keep going in parallel
mode) and an ERROR with the worker's current stack tells the operator where
it hangs, once per stuck event.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shotgun_events.delivery.runner import PluginRunner

#: (runner, seconds in its current event, thread id)
Busy = tuple["PluginRunner", float, int | None]

log = logging.getLogger("engine.watch")


class WatchThread:
    """Check for stuck callbacks every second, from a thread of its own.

    A thread of its own, because in serial mode the stuck callback holds the
    engine's thread, which therefore cannot notice it.
    """

    def __init__(self, watch: CallbackWatch, busy: Callable[[], Iterable[Busy]]) -> None:
        self._watch = watch
        self._busy = busy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callback-watch", daemon=True)

    def start(self) -> None:
        """Start checking (nothing to do when no limit is set)."""
        if self._watch.enabled:
            self._thread.start()

    def stop(self) -> None:
        """Stop checking."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._watch.check(self._busy())


class CallbackWatch:
    """Log the stack of any plugin whose current event takes longer than the limit."""

    def __init__(self, limit: float, *, serial: bool = False) -> None:
        self._limit = limit
        self._serial = serial
        self._reported: dict[tuple[int, int | None], float] = {}

    @property
    def enabled(self) -> bool:
        """Whether a time limit is set."""
        return self._limit > 0

    def check(self, busy: Iterable[Busy]) -> list[str]:
        """Report plugins over the limit (once per stuck event); return their names."""
        if self._limit <= 0:
            return []
        reported = []
        still_busy: dict[tuple[int, int | None], float] = {}
        for runner, seconds, thread_id in busy:
            # Per thread too: a concurrent plugin has several events running at once.
            key = (id(runner), thread_id)
            still_busy[key] = seconds
            if seconds < self._limit or self._reported.get(key, float("inf")) <= seconds:
                continue
            frame = sys._current_frames().get(thread_id) if thread_id is not None else None
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)"
            others = (
                "every other plugin waits for it (dispatch = serial)"
                if self._serial
                else "the other plugins are not held up"
            )
            log.error(
                "plugin %s has been handling one event for %.0f s (callback_timeout %.0f s); "
                "it keeps running and %s. Its stack:\n%s",
                runner.plugin.name,
                seconds,
                self._limit,
                others,
                stack,
            )
            reported.append(runner.plugin.name)
        # Keep the time we first reported a still-busy plugin, so the same event is
        # reported once; a new event starts counting from zero and can be reported again.
        self._reported = {
            key: self._reported.get(key, seconds)
            for key, seconds in still_busy.items()
            if seconds >= self._limit
        }
        return reported
