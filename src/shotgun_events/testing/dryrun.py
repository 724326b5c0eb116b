"""``shotgunEventDaemon try PLUGIN.py --from-id N``: a plugin over past events, writing nothing.

The plugin is loaded by the daemon's loader and fed the configured site's events
through the daemon's dispatcher. Its ``sg`` reads from the site; every write is
recorded and not sent (``RecordingShotgun`` with ``dry``). No state file is opened
and no position moves. A plugin that opens its own ``Shotgun`` connection is
refused (its writes would be real) unless ``allow_own_connection`` is given.
A callback that raises is reported with its traceback; where the daemon would
switch the plugin off (stopOnError) the report says so and the run goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from shotgun_events.delivery.failures import RetryPolicy
from shotgun_events.errors import ConfigError, PluginError
from shotgun_events.events import Event
from shotgun_events.testing.guard import ConnectionWatch, ours, source_connections
from shotgun_events.testing.harness import PAGE, PluginHarness, RecordingConnections
from shotgun_events.testing.recording import Write, WriteLog


@dataclass
class EventReport:
    """What one event did to the plugin."""

    event: Event
    callbacks: list[str]
    outcome: str
    writes: list[Write] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: True where the daemon would have switched the plugin off (a stopOnError failure).
    would_stop: bool = False
    #: The plugin's log lines for this event ("LEVEL message").
    logs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        e = self.event
        return {
            "id": e.get("id"),
            "event_type": e.get("event_type"),
            "attribute_name": e.get("attribute_name"),
            "entity": e.get("entity"),
            "callbacks": self.callbacks,
            "outcome": self.outcome,
            "writes": self.writes,
            "errors": self.errors,
            "would_stop_plugin": self.would_stop,
            "logs": self.logs,
        }


@dataclass
class TryReport:
    """The whole dry run."""

    plugin: str
    server: str
    from_id: int
    to_id: int
    events_read: int = 0
    events: list[EventReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        """How many writes the plugin would have made."""
        return sum(len(e.writes) for e in self.events)

    @property
    def errors(self) -> int:
        """How many callback runs failed."""
        return sum(len(e.errors) for e in self.events)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "plugin": self.plugin,
            "server": self.server,
            "from_id": self.from_id,
            "to_id": self.to_id,
            "events_read": self.events_read,
            "events_matched": len(self.events),
            "writes": self.writes,
            "errors": self.errors,
            "warnings": self.warnings,
            "events": [e.as_dict() for e in self.events],
        }


def events_between(source: Any, from_id: int, to_id: int) -> Iterator[Event]:
    """The site's events ``from_id..to_id`` in id order, read a page at a time."""
    last = from_id - 1
    while last < to_id:
        with ours():
            batch = [e for e in source.fetch_after(last, PAGE) if e["id"] <= to_id]
        if not batch:
            return
        yield from batch
        last = batch[-1]["id"]


def dry_run(
    harness: PluginHarness,
    source: Any,
    report: TryReport,
) -> TryReport:
    """Deliver the report's range of events to the harness, filling in the report."""
    for event in events_between(source, report.from_id, report.to_id):
        report.events_read += 1
        names = [cb.name for cb in harness.callbacks if cb.matches(event)]
        writes_before, errors_before = len(harness.writes_log.items), len(harness.errors)
        logs_before = len(harness.logs)
        outcome = harness.deliver(event)
        writes = harness.writes_log.items[writes_before:]
        errors = [
            {
                "callback": err.callback,
                "type": type(err.exception).__name__,
                "message": str(err.exception),
                "traceback": err.traceback,
            }
            for err in harness.errors[errors_before:]
        ]
        logs = [
            f"{r.levelname} {r.getMessage()}"
            for r in harness.logs[logs_before:]
            if r.levelno < logging.ERROR or not r.exc_info  # errors are listed with tracebacks
        ]
        stopped = not harness.active
        if stopped:
            harness.resume()  # show every event's effect, not only the first failure's
        if names or writes or errors:
            report.events.append(
                EventReport(event, names, outcome.value, list(writes), errors, stopped, logs)
            )
    return report


def run_try(
    config_path: Path,
    plugin_path: Path,
    *,
    from_id: int,
    to_id: int | None,
    as_json: bool,
    allow_own_connection: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """The ``try`` command; returns the exit code (1 when a callback failed or was refused)."""
    from shotgun_events.client.source import daemon_source
    from shotgun_events.config.load import load_config

    config = load_config(config_path)
    plugin_path = Path(plugin_path)
    if not plugin_path.is_file():
        raise PluginError(f"try: no plugin file {plugin_path}")
    own = source_connections(plugin_path)
    warnings = [
        f"{plugin_path}:{line}: the plugin opens its own Shotgun connection; its writes "
        "would be real"
        for line in own
    ]
    if own and not allow_own_connection:
        raise PluginError(
            f"try: {warnings[0]}; refused. Use the sg passed to the callback, or pass "
            "--allow-own-connection to run it anyway (its own writes are then sent)"
        )
    source = daemon_source(config)
    watch = ConnectionWatch(allow=allow_own_connection)
    try:
        with ours():
            newest = source.newest_id()
        last = newest if to_id is None else to_id
        if from_id < 1 or last < from_id:
            raise ConfigError(f"try: --from-id {from_id} --to-id {last}: not a range of events")
        report = TryReport(str(plugin_path), config.server, from_id, last, warnings=warnings)
        writes = WriteLog()
        connections = RecordingConnections(
            config.server,
            writes,
            dry=True,
            timeout=config.request_timeout,
            http_proxy=config.proxy_server,
            ca_certs=config.ca_certs,
        )
        with watch.active():
            harness = PluginHarness(
                plugin_path,
                connections,
                policy=RetryPolicy(retries=0),  # each failure once: a report, not a recovery
                use_session_uuid=config.use_session_uuid,
                writes_log=writes,
            )
            try:
                dry_run(harness, source, report)
            finally:
                harness.close()
    finally:
        source.close()
    report.warnings.extend(
        f"{where}: the plugin opened its own Shotgun connection; "
        + ("its writes were sent" if allow_own_connection else "refused")
        for where in dict.fromkeys(watch.found)
    )
    if as_json:
        json.dump(report.as_dict(), out, indent=2, default=str)
        out.write("\n")
    else:
        print_report(report, out)
    for line in report.warnings:
        print(f"shotgunEventDaemon: warning: {line}", file=err)
    refused = bool(watch.found) and not allow_own_connection
    return 1 if report.errors or refused else 0


def _link(link: Any) -> str:
    if not isinstance(link, dict):
        return "-"
    name = f" ({link.get('name')})" if link.get("name") else ""
    return f"{link.get('type')} #{link.get('id')}{name}"


def _data(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def print_report(report: TryReport, out: TextIO) -> None:
    """The report for a terminal: one block per event the plugin acted on."""
    out.write(
        f"try {report.plugin} on events {report.from_id}..{report.to_id} of "
        f"{report.server} (dry run: nothing is written, no position moves)\n"
    )
    for item in report.events:
        e = item.event
        attribute = f" {e.get('attribute_name')}" if e.get("attribute_name") else ""
        out.write(
            f"event {e.get('id')} {e.get('event_type')}{attribute} on {_link(e.get('entity'))}:"
            f" {', '.join(item.callbacks) or 'no callback'}\n"
        )
        for w in item.writes:
            target = w["entity_type"] or ""
            if w["entity_id"] is not None:
                target += f" #{w['entity_id']}"
            out.write(f"  would {w['method']} {target.strip()} {_data(w['data'])}\n")
        if not item.writes and not item.errors:
            out.write("  no writes\n")
        for line in item.logs:
            out.write(f"  log {line}\n")
        for error in item.errors:
            out.write(f"  ERROR in {error['callback']}: {error['type']}: {error['message']}\n")
            for line in error["traceback"].rstrip().splitlines():
                out.write(f"    {line}\n")
        if item.would_stop:
            out.write("  (the daemon would switch the plugin off here: stopOnError)\n")
    out.write(
        f"{report.events_read} events read, {len(report.events)} matched, "
        f"{report.writes} writes not sent, {report.errors} errors\n"
    )
