"""Lane: a thread that runs the shared group's batches for the engine's thread.

The engine's thread hands each job to the lane and watches it, so a callback
that never returns holds only its lane: the engine can leave that lane to it
and start a new one for the others (auto.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class LaneAbandonedError(Exception):
    """Raised on a lane left to a stuck callback, once that callback has returned."""


class Lane:
    """A thread that runs the group's work, one job at a time, for the engine's thread."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], bool]] = queue.SimpleQueue()
        self.done = threading.Event()
        self.result = True
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shotgun-events-shared", daemon=True)
        self._thread.start()
        self.ident = self._thread.ident or 0

    def submit(self, job: Callable[[], bool]) -> None:
        """Run ``job`` on the lane; ``done`` is set when it has returned."""
        self.done.clear()
        self._jobs.put(job)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True if it has."""
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Let the thread end once its current job is over."""
        self._jobs.put(_stop_lane)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _stop_lane:
                return
            try:
                self.result = job()
            except LaneAbandonedError:
                return  # the engine has moved on to a new lane
            except BaseException as exc:  # handed to the engine's thread, raised there
                self.error = exc
            self.done.set()


def _stop_lane() -> bool:
    return False
