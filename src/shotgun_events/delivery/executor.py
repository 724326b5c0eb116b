"""How one plugin's events are run: the ``Executor`` protocol and the inline variant.

A ``PluginRunner`` hands each event it wants run to its plugin's executor and
hears back, through the ``on_done`` callback given at construction, when the
event is finished and how. The runner alone keeps the cursor (a watermark
when events can finish out of order). Variants: ``InlineExecutor`` (here:
the dispatcher in the calling thread, strict id order, the default),
``KeyedExecutor`` (keyed.py: a thread pool with order kept per ordering key)
and the Celery executor (``delivery/celery/``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shotgun_events.delivery.dispatch import Dispatcher, Outcome
from shotgun_events.events import Event

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

#: Called once per submitted event when it is finished (from any thread).
OnDone = Callable[[Event, Outcome], None]


class Executor(Protocol):
    """Runs one plugin's events and reports each one finished, in any order across keys."""

    def submit(self, event: Event) -> None:
        """Start (or queue) one event; events arrive in id order (late ones aside)."""
        ...

    def has_room(self) -> bool:
        """Whether another event may be submitted now (back-pressure to the runner)."""
        ...

    def in_flight(self) -> set[int]:
        """Ids of events submitted and not finished yet (started or queued)."""
        ...

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False on timeout (reload, stop, operator commands)."""
        ...

    def close(self, timeout: float) -> None:
        """Finish the events started, drop those only queued, release threads."""
        ...


@dataclass(frozen=True)
class ExecutorSpec:
    """What a plugin asks for: how many events at once and the key that keeps order."""

    concurrency: int = 1
    order_by: str = "entity"
    #: ``local`` (threads in the daemon) or ``celery`` (issue 15).
    kind: str = "local"

    @property
    def concurrent(self) -> bool:
        """Whether events may finish out of id order."""
        return self.concurrency > 1 or self.kind != "local"


#: Builds the executor for a plugin: (plugin, spec, on_done) -> Executor.
ExecutorFactory = Callable[["Plugin", ExecutorSpec, OnDone], Executor]


class InlineExecutor:
    """Run each event to its end in the submitting thread: today's strict order, no threads."""

    def __init__(self, plugin: Plugin, dispatcher: Dispatcher, on_done: OnDone) -> None:
        self._plugin = plugin
        self._dispatcher = dispatcher
        self._on_done = on_done

    def submit(self, event: Event) -> None:
        """Dispatch the event now and report it before returning."""
        self._on_done(event, self._dispatcher.run(self._plugin, event))

    def has_room(self) -> bool:
        """Always: nothing is ever left in flight."""
        return True

    def in_flight(self) -> set[int]:
        """Nothing: ``submit`` returns when the event is finished."""
        return set()

    def drain(self, timeout: float) -> bool:
        """Nothing to wait for."""
        return True

    def close(self, timeout: float) -> None:
        """Nothing to release."""
