"""The site as an event source: forward reads by id, reads of missing ids, the newest id.

Every failure of the transport or of the site is translated into ``SiteError``
(retryable) or ``SiteAuthError`` (needs the operator), so the engine handles
one category of error and never a ``shotgun_api3`` or socket exception.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import xmlrpc.client
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, cast

from shotgun_api3.lib import httplib2
from shotgun_api3.shotgun import AuthenticationFault, Fault, Shotgun, ShotgunError

from shotgun_events.client.connections import factory_for
from shotgun_events.config.model import Config
from shotgun_events.errors import SiteAuthError, SiteError
from shotgun_events.events import EVENT_FIELDS, Event
from shotgun_events.telemetry import NULL, Telemetry

log = logging.getLogger("engine.source")

#: The largest ``in`` list sent in one read of missing ids (one page of results).
MAX_IDS_PER_READ = 500


class EventSource(Protocol):
    """What the engine needs from a site."""

    def fetch_after(
        self, last_id: int, limit: int, event_types: Collection[str] | None = None
    ) -> list[Event]:
        """Return up to ``limit`` events with ``id > last_id`` (of these types), ascending."""
        ...

    def fetch_ids(self, ids: Sequence[int]) -> list[Event]:
        """Return the events among ``ids`` that exist now, ascending."""
        ...

    def newest_id(self) -> int:
        """Return the id of the newest event, 0 when the log is empty."""
        ...

    def oldest_id(self) -> int:
        """Return the id of the oldest event the site still keeps, 0 when the log is empty."""
        ...

    def close(self) -> None:
        """Release the connection (a source made for a plugin's own reads)."""
        ...


class ShotgunEventSource:
    """Read EventLogEntry rows through one ``shotgun_api3`` connection."""

    telemetry: Telemetry = NULL

    def __init__(self, connect: Callable[[], Shotgun]) -> None:
        self._connect = connect
        self._sg: Shotgun | None = None
        self.reads = 0

    def fetch_after(
        self, last_id: int, limit: int, event_types: Collection[str] | None = None
    ) -> list[Event]:
        """Return up to ``limit`` events with ``id > last_id`` (of these types), ascending."""
        filters: list[list[object]] = [["id", "greater_than", last_id]]
        if event_types is not None:
            filters.append(["event_type", "in", sorted(event_types)])
        return self._find(filters, limit, "after")

    def fetch_window(
        self, after: int, upto: int, limit: int, event_types: Collection[str] | None = None
    ) -> list[Event]:
        """Return up to ``limit`` events with ``after < id <= upto`` (of these types), ascending."""
        filters: list[list[object]] = [
            ["id", "greater_than", after],
            ["id", "less_than", upto + 1],
        ]
        if event_types is not None:
            filters.append(["event_type", "in", sorted(event_types)])
        return self._find(filters, limit, "after")

    def fetch_ids(self, ids: Sequence[int]) -> list[Event]:
        """Return the events among ``ids`` that exist now, ascending."""
        found: list[Event] = []
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), MAX_IDS_PER_READ):
            chunk = wanted[start : start + MAX_IDS_PER_READ]
            found.extend(self._find([["id", "in", chunk]], len(chunk), "ids"))
        return found

    def newest_id(self) -> int:
        """Return the id of the newest event, 0 when the log is empty."""
        with self._translated("newest"):
            newest = self._connection().find_one(
                "EventLogEntry", [], ["id"], order=[{"field_name": "id", "direction": "desc"}]
            )
        self.reads += 1
        return int(newest["id"]) if newest else 0

    def oldest_id(self) -> int:
        """Return the id of the oldest event the site still keeps (hosted sites keep months)."""
        with self._translated("oldest"):
            oldest = self._connection().find_one(
                "EventLogEntry", [], ["id"], order=[{"field_name": "id", "direction": "asc"}]
            )
        self.reads += 1
        return int(oldest["id"]) if oldest else 0

    def close(self) -> None:
        """Drop the connection; the next call opens a new one."""
        if self._sg is not None:
            self._sg.close()
            self._sg = None
            self.telemetry.connection_opened(-1)

    def _find(self, filters: list[list[object]], limit: int, kind: str) -> list[Event]:
        with self._translated(kind) as counted:
            # A fresh order list each call: the client rewrites the dicts in place.
            events = self._connection().find(
                "EventLogEntry",
                filters,
                list(EVENT_FIELDS),
                order=[{"field_name": "id", "direction": "asc"}],
                limit=limit,
            )
            counted.append(len(events))
        self.reads += 1
        return cast(list[Event], events)

    def _connection(self) -> Shotgun:
        if self._sg is None:
            self._sg = self._connect()
            self.telemetry.connection_opened(1)
        return self._sg

    @contextmanager
    def _translated(self, kind: str) -> Iterator[list[int]]:
        """Turn every way a site call can fail into SiteError or SiteAuthError; report the read.

        The caller appends the number of events read to the yielded list.
        """
        started = time.perf_counter()
        counted: list[int] = []
        try:
            yield counted
        except AuthenticationFault as exc:
            self.telemetry.site_read(kind, time.perf_counter() - started, 0, "auth")
            raise SiteAuthError(f"the site rejected the script credentials: {exc}") from exc
        except (
            xmlrpc.client.ProtocolError,
            Fault,
            ShotgunError,
            OSError,
            http.client.HTTPException,
            httplib2.HttpLib2Error,
            json.JSONDecodeError,
            ValueError,
            KeyError,
            TypeError,
        ) as exc:
            self.telemetry.site_read(kind, time.perf_counter() - started, 0, _error_kind(exc))
            # A hung or half-closed connection is not worth reusing: start afresh.
            self.close()
            raise SiteError(f"{type(exc).__name__}: {_one_line(exc)}") from exc
        self.telemetry.site_read(kind, time.perf_counter() - started, sum(counted), None)


def daemon_source(config: Config) -> ShotgunEventSource:
    """An event source connected with the daemon's own script credentials."""
    factory = factory_for(config)
    return ShotgunEventSource(
        lambda: factory.create(config.script_name, config.script_key, fast_decode=True)
    )


def _error_kind(exc: BaseException) -> str:
    """A short, bounded label for a failed read (timeout, connection, protocol, ...)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return "connection"
    if isinstance(exc, xmlrpc.client.ProtocolError | http.client.HTTPException):
        return "protocol"
    if isinstance(exc, Fault | ShotgunError):
        return "site"
    return "reply"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
