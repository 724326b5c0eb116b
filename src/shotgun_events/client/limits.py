"""The ceiling on plugins' site calls: a token bucket per plugin, and the gate their ``sg`` passes.

A plugin's ceiling is ``[plugin:NAME] max_calls_per_second`` when its section
sets it, else ``[daemon] max_calls_per_second``; 0 means none (the default).
Its bucket holds one second's worth of calls (at least one) and refills at
that rate: a plugin that has been quiet may send that many calls at once,
and after that one call per 1/rate seconds. Each API call a callback sends
through its ``sg`` (``find``, ``update``, one ``batch``, ...: one request)
takes a token; a call that finds the bucket empty waits for its turn, the
turns going in the order the calls asked, and the wait is counted per plugin
(``waited``, and the ``Telemetry`` for ``/metrics``).

The ``sg`` objects are shared by the plugins of one thread and credential,
so the gate asks the in-flight registry which plugin is running a callback
on the calling thread; calls made outside a callback (``registerCallbacks``,
the daemon's own reads, which use other connections anyway) pass freely.
Buckets are kept by plugin name for the limiter's life: a plugin reloaded
from its file keeps its bucket, a configuration reload builds a new limiter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from shotgun_api3.shotgun import Shotgun

from shotgun_events.config.model import Config
from shotgun_events.telemetry import NULL, Telemetry

#: Run before each API call a plugin's ``sg`` sends; returns when the call may go.
Gate = Callable[[], None]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class Work(Protocol):
    """What the gate needs of the work running on a thread (the in-flight registry's entry)."""

    @property
    def plugin(self) -> _Named: ...


class TokenBucket:
    """One plugin's calls: ``rate`` per second, up to one second's worth at once; thread-safe."""

    def __init__(self, rate: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        #: Calls a quiet plugin may send at once: one second's worth, and at least one.
        self.burst = max(1.0, rate)
        #: Seconds calls have been held, since the bucket was made.
        self.waited = 0.0
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = monotonic()

    def reserve(self) -> float:
        """Take the next call's turn; return the seconds the caller must wait before sending.

        Tokens go below zero while calls wait: each caller is given the turn after
        the previous one, so callers on several threads never share a turn.
        """
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            if self._tokens >= 0.0:
                return 0.0
            delay = -self._tokens / self.rate
            self.waited += delay
            return delay


class CallLimiter:
    """Every plugin's bucket, made at its first call from the configured ceilings."""

    #: Where each wait is reported (``app`` sets the metrics sink when ``[http]`` is on).
    telemetry: Telemetry = NULL

    def __init__(
        self,
        default: float,
        per_plugin: Mapping[str, float],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``default`` applies to plugins ``per_plugin`` does not name; 0 means no ceiling."""
        self._default = default
        self._per_plugin = dict(per_plugin)
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        #: Plugin name -> its bucket, or None for a plugin without a ceiling.
        self._buckets: dict[str, TokenBucket | None] = {}

    def limit(self, plugin: str) -> float | None:
        """The plugin's ceiling in calls per second; None when it has none."""
        rate = self._per_plugin.get(plugin, self._default)
        return rate if rate > 0 else None

    def waited(self, plugin: str) -> float:
        """Seconds the plugin's calls have waited so far."""
        bucket = self._buckets.get(plugin)
        return 0.0 if bucket is None else bucket.waited

    def describe(self) -> str:
        """The configured ceilings in one line, for the log."""
        parts = [
            f"{name} {f'{rate:g}/s' if rate > 0 else 'none'}"
            for name, rate in sorted(self._per_plugin.items())
        ]
        if self._default > 0:
            parts.append(f"{'every other plugin' if parts else 'every plugin'} {self._default:g}/s")
        return ", ".join(parts)

    def wait(self, plugin: str) -> float:
        """Hold the calling thread until the plugin may send one more call; return the wait."""
        try:
            bucket = self._buckets[plugin]
        except KeyError:
            bucket = self._bucket(plugin)
        if bucket is None:
            return 0.0
        delay = bucket.reserve()
        if delay > 0.0:
            self.telemetry.site_call_waited(plugin, delay)
            self._sleep(delay)
        return delay

    def gate(self, on_thread: Callable[[int], Work | None]) -> Gate:
        """The gate for plugins' ``sg``: wait for the turn of the plugin ``on_thread`` names."""

        def wait_turn() -> None:
            work = on_thread(threading.get_ident())
            if work is not None:
                self.wait(work.plugin.name)

        return wait_turn

    def _bucket(self, plugin: str) -> TokenBucket | None:
        with self._lock:
            if plugin not in self._buckets:
                rate = self.limit(plugin)
                self._buckets[plugin] = (
                    None if rate is None else TokenBucket(rate, monotonic=self._monotonic)
                )
            return self._buckets[plugin]


def limiter_for(config: Config) -> CallLimiter | None:
    """The configured ceilings; None when no plugin has one (no gate, nothing to pay)."""
    per_plugin = {
        name: section.max_calls_per_second
        for name, section in config.plugin_settings.items()
        if section.max_calls_per_second is not None
    }
    if config.max_calls_per_second <= 0 and not any(rate > 0 for rate in per_plugin.values()):
        return None
    return CallLimiter(config.max_calls_per_second, per_plugin)


class GatedShotgun(Shotgun):
    """A ``Shotgun`` that passes a gate before each API call it sends (a plugin's ``sg``).

    Each request the client sends is one ``_call_rpc`` (the ``info`` it reads
    before a credential's first call included); one it would send while building
    another goes with the outer one.
    """

    def __init__(self, *args: Any, gate: Gate | None = None, **kwargs: Any) -> None:
        self._gate = gate
        self._depth = 0
        super().__init__(*args, **kwargs)

    def _call_rpc(self, *args: Any, **kwargs: Any) -> Any:
        if self._depth == 0 and self._gate is not None:
            self._gate()
        self._depth += 1
        try:
            return super()._call_rpc(*args, **kwargs)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._call_ended()

    def _call_ended(self) -> None:
        """Called once the outermost API call returned or raised."""
