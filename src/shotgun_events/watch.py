"""Notice callbacks that run too long and log where they are stuck.

Python cannot safely kill a thread, so a stuck callback is not interrupted:
its plugin's worker stays busy (the other plugins keep going in parallel
mode) and an ERROR with the worker's current stack tells the operator where
it hangs, once per stuck event.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import PluginRunner

log = logging.getLogger("engine.watch")


class CallbackWatch:
    """Log the stack of any plugin whose current event takes longer than the limit."""

    def __init__(self, limit: float) -> None:
        self._limit = limit
        self._reported: dict[int, float] = {}

    def check(self, busy: Iterable[tuple[PluginRunner, float, int | None]]) -> list[str]:
        """Report plugins over the limit (once per stuck event); return their names."""
        if self._limit <= 0:
            return []
        reported = []
        still_busy: dict[int, float] = {}
        for runner, seconds, thread_id in busy:
            key = id(runner)
            still_busy[key] = seconds
            if seconds < self._limit or self._reported.get(key, float("inf")) <= seconds:
                continue
            frame = sys._current_frames().get(thread_id) if thread_id is not None else None
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)"
            log.error(
                "plugin %s has been handling one event for %.0f s (callback_timeout %.0f s); "
                "it keeps running, other plugins are not held up. Its stack:\n%s",
                runner.plugin.name,
                seconds,
                self._limit,
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
