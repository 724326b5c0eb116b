"""Test controls kept by the HTTP layer: injected faults and call/connection counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

FAULT_KINDS = ("status", "hang", "drop", "reset", "garbage")


@dataclass
class Fault:
    """One injected fault, applied to the next ``remaining`` matching API calls."""

    kind: str
    remaining: int
    status: int = 503
    seconds: float | None = None
    method: str | None = None


class Faults:
    """The queue of injected faults; thread-safe."""

    def __init__(self) -> None:
        """Start with no faults."""
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._release = threading.Event()

    def inject(
        self,
        kind: str,
        count: int = 1,
        *,
        status: int | None = None,
        seconds: float | None = None,
        method: str | None = None,
    ) -> None:
        """Queue a fault for the next ``count`` API calls (only calls of ``method`` if given)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        if count < 1:
            raise ValueError("count must be >= 1")
        if kind == "status" and status is not None and not 300 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, got {status}")
        with self._lock:
            self._faults.append(Fault(kind, count, status or 503, seconds, method))

    def clear(self) -> None:
        """Drop every queued fault and wake calls that are hanging."""
        with self._lock:
            self._faults.clear()
            release, self._release = self._release, threading.Event()
        release.set()

    def take(self, method: str) -> Fault | None:
        """The fault to apply to this call (consuming one use of it), or None."""
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def hang(self, seconds: float | None, stop: threading.Event) -> None:
        """Wait ``seconds`` (forever if None) unless faults are cleared or the site stops."""
        release = self._release
        deadline = None if seconds is None else time.monotonic() + seconds
        # short waits so a site stop is noticed even when nobody clears the faults
        while not stop.is_set():
            step = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if step <= 0 or release.wait(step):
                return


class Counters:
    """API calls by method name and TCP connections accepted; thread-safe."""

    def __init__(self) -> None:
        """Start at zero."""
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._connections = 0

    def call(self, method: str) -> None:
        """Count one API call."""
        with self._lock:
            self._calls[method] += 1

    def connection(self) -> None:
        """Count one accepted connection."""
        with self._lock:
            self._connections += 1

    def calls(self) -> dict[str, int]:
        """API calls by method name since the last reset."""
        with self._lock:
            return dict(self._calls)

    def connections(self) -> int:
        """Connections accepted since the last reset."""
        with self._lock:
            return self._connections

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._calls.clear()
            self._connections = 0


class Latency:
    """A delay applied to every API call before it is served (models a distant site); thread-safe.

    The server is threaded, so calls waiting out their latency never hold
    other connections' requests: N concurrent calls take one latency, not N.
    """

    def __init__(self, ms: float = 0.0) -> None:
        """Start with ``ms`` milliseconds (0 = answer at once)."""
        self._lock = threading.Lock()
        self._seconds = 0.0
        self.set(ms)

    def set(self, ms: float) -> None:
        """Set the delay in milliseconds (0 turns it off)."""
        value = float(ms)
        if not 0.0 <= value <= 600_000.0:
            raise ValueError(f"latency must be between 0 and 600000 ms, got {ms!r}")
        with self._lock:
            self._seconds = value / 1000.0

    @property
    def ms(self) -> float:
        """The current delay in milliseconds."""
        with self._lock:
            return self._seconds * 1000.0

    def wait(self, stop: threading.Event) -> None:
        """Wait out the delay, returning early when the site stops."""
        with self._lock:
            seconds = self._seconds
        if seconds > 0:
            stop.wait(seconds)
