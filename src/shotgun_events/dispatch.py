"""Run one event through one plugin's callbacks, each call isolated from the others.

This is the innermost tier of error isolation: a callback that raises is
logged with its traceback on its own logger; with ``stopOnError`` the whole
plugin is switched off and the event is *not* counted as handled, so the
plugin resumes from it once its file is fixed.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from .events import Event

if TYPE_CHECKING:
    from .loader import Plugin

log = logging.getLogger("engine.dispatch")


class Outcome(enum.Enum):
    """What became of one event for one plugin."""

    DONE = "done"
    #: No callback of the plugin matched: nothing ran, nothing to persist at once.
    SKIPPED = "skipped"
    #: A stopOnError callback raised: the plugin is now inactive, the event not handled.
    FAILED = "failed"


class Timing(Protocol):
    """Where a line per callback call goes when ``timing_log`` is on."""

    def record(
        self,
        *,
        event_id: int,
        created_at: datetime | None,
        callback: str,
        start: float,
        end: float,
        error: bool,
    ) -> None:
        """Write one line for one callback call."""
        ...


class Connections(Protocol):
    """Source of the ``sg`` handed to callbacks."""

    def get(self, script_name: str, script_key: str) -> Any:
        """Return a connection for these credentials."""
        ...


class Dispatcher:
    """Call a plugin's matching callbacks for one event, in registration order."""

    def __init__(
        self,
        *,
        connections: Connections,
        use_session_uuid: bool,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connections = connections
        self._use_session_uuid = use_session_uuid
        self._timing = timing
        self._clock = clock

    def run(self, plugin: Plugin, event: Event) -> Outcome:
        """Deliver ``event`` to every matching callback of ``plugin``."""
        outcome = Outcome.SKIPPED
        for callback in plugin.callbacks:
            if not callback.matches(event):
                continue
            outcome = Outcome.DONE
            sg = self._connections.get(callback.script_name, callback.script_key)
            if self._use_session_uuid:
                session_uuid = event.get("session_uuid")
                # The client keeps the uuid per connection; always set it (None
                # included) so one event's session never leaks into the next.
                sg.set_session_uuid(session_uuid)
            start = self._clock()
            failed = False
            try:
                callback.func(sg, callback.logger, event, callback.args)
            except (Exception, SystemExit) as exc:
                # SystemExit from plugin code is the plugin's bug, not a request
                # to stop the daemon.
                failed = True
                if callback.stop_on_error:
                    callback.logger.exception(
                        "%s failed on event %s; stopping plugin %s (file %s) until its "
                        "file changes; it will resume from this event",
                        callback.name,
                        event.get("id"),
                        plugin.name,
                        plugin.path,
                    )
                    plugin.deactivate(
                        f"callback {callback.name} raised {type(exc).__name__} on event "
                        f"{event.get('id')}: {exc}"
                    )
                    return Outcome.FAILED
                callback.logger.exception(
                    "%s failed on event %s; continuing (stopOnError=False)",
                    callback.name,
                    event.get("id"),
                )
            finally:
                if self._timing is not None:
                    self._timing.record(
                        event_id=int(event.get("id") or 0),
                        created_at=event.get("created_at"),
                        callback=f"{plugin.name}.{callback.name}",
                        start=start,
                        end=self._clock(),
                        error=failed,
                    )
        return outcome
