"""The telemetry seam: what the daemon's parts report as they work, and a sink that ignores it.

The engine, delivery, state, client, plugin and mail code call one method of
a ``Telemetry`` at the moment something happens (a callback returned, a read
failed, a state write went through). They know nothing of who listens: the
default ``NULL`` does nothing, and ``observe/`` installs a sink that keeps
counters for ``/metrics`` when ``[http]`` is on. Each object holds its sink
in a ``telemetry`` attribute (class default ``NULL``), set by ``app.py``, so
no state is global and the hot path pays one method call.
"""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    """What the daemon's parts report; every method must be cheap and never raise."""

    def callback_ran(self, plugin: str, ok: bool, seconds: float) -> None:
        """One callback call finished (``ok`` False when it raised)."""

    def callback_retried(self, plugin: str) -> None:
        """A failed callback call is about to be tried again."""

    def timer_ran(self, plugin: str, timer: str, outcome: str) -> None:
        """A timer's time came: ``outcome`` is ``ok``, ``error`` or ``skipped`` (did not run)."""

    def dead_lettered(self, plugin: str) -> None:
        """An event was given up for a plugin and put on the dead-letter list."""

    def site_call_waited(self, plugin: str, seconds: float) -> None:
        """A site call of the plugin's callback waits ``seconds`` for its max_calls_per_second."""

    def site_read(self, kind: str, seconds: float, events: int, error: str | None) -> None:
        """One read of the event log (``kind``: after, ids, newest); ``error``: its kind or None."""

    def connection_opened(self, delta: int) -> None:
        """The daemon's own site connections changed by ``delta`` (+1 opened, -1 closed)."""

    def state_written(self, error: str | None) -> None:
        """One write to the state file (journal line or snapshot); ``error`` when it failed."""

    def plugin_loaded(self, plugin: str, error: str | None) -> None:
        """A plugin file was (re)loaded; ``error`` is the one-line reason when it failed."""

    def email(self, outcome: str) -> None:
        """A mail was ``sent`` or ``failed``, or a record ``suppressed`` (digest, no recipient)."""


class NullTelemetry:
    """The default sink: reports go nowhere."""

    def callback_ran(self, plugin: str, ok: bool, seconds: float) -> None:
        """Ignore."""

    def callback_retried(self, plugin: str) -> None:
        """Ignore."""

    def timer_ran(self, plugin: str, timer: str, outcome: str) -> None:
        """Ignore."""

    def dead_lettered(self, plugin: str) -> None:
        """Ignore."""

    def site_call_waited(self, plugin: str, seconds: float) -> None:
        """Ignore."""

    def site_read(self, kind: str, seconds: float, events: int, error: str | None) -> None:
        """Ignore."""

    def connection_opened(self, delta: int) -> None:
        """Ignore."""

    def state_written(self, error: str | None) -> None:
        """Ignore."""

    def plugin_loaded(self, plugin: str, error: str | None) -> None:
        """Ignore."""

    def email(self, outcome: str) -> None:
        """Ignore."""


#: The sink every part starts with.
NULL: Telemetry = NullTelemetry()
