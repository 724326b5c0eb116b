"""The operator-action queue: actions ``submit``-ted from any thread, run in the engine's thread."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

log = logging.getLogger("engine")

T = TypeVar("T")


class Requests(Generic[T]):
    """Actions waiting for the engine's next safe point, each with the future of its result."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[T], Any], Future[Any]]] = queue.SimpleQueue()

    def submit(self, action: Callable[[T], Any]) -> Future[Any]:
        """Queue ``action``; the future gets its result (or error) once it has run."""
        future: Future[Any] = Future()
        self._queue.put((action, future))
        return future

    def serve(self, target: T) -> None:
        """Run every queued action on ``target`` (in the calling thread: the engine's)."""
        while True:
            try:
                action, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(action(target))
            except Exception as exc:
                log.warning("operator request failed: %s", exc)
                future.set_exception(exc)
