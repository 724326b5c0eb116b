"""Captured events as test data: ``shotgunEventDaemon capture`` and ``load_events``.

A capture is JSON Lines, one EventLogEntry per line with the fields the daemon
reads, datetimes as the site sends them (``YYYY-MM-DDTHH:MM:SSZ``). Loading turns
every such string back into an aware datetime, as ``shotgun_api3`` does with a
reply, so a replayed event is the dict the daemon delivered. Secrets are removed and
nothing else: the configured secrets (script key, SMTP password, proxy credentials)
wherever they appear, and the values of password fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from shotgun_events.errors import ConfigError
from shotgun_events.events import Event
from shotgun_events.notify.logs import MASK
from shotgun_events.operator.status import mask_secrets

#: Fields whose values are credentials; their events keep everything but the values.
SECRET_FIELDS = frozenset(
    {"password", "password_proxy", "salted_password", "api_key", "script_key", "session_token"}
)
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
PAGE = 500


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime(_STAMP_FORMAT)
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, str) and _STAMP.match(value):
        return datetime.strptime(value, _STAMP_FORMAT).replace(tzinfo=UTC)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def scrub_event(event: Event, secrets: Iterable[str] = ()) -> Event:
    """A copy of ``event`` with secrets masked (and nothing else changed)."""
    found = [s for s in secrets if s]
    attribute = event.get("attribute_name")
    meta = event.get("meta")
    if attribute in SECRET_FIELDS and isinstance(meta, dict):
        for key in ("old_value", "new_value"):
            old = meta.get(key)
            if isinstance(old, str) and old:
                found.append(old)
        meta = {**meta, **{k: MASK for k in ("old_value", "new_value") if meta.get(k)}}
        event = {**event, "meta": meta}
    ordered = tuple(sorted(set(found), key=len, reverse=True))
    return dict(mask_secrets(event, ordered)) if ordered else dict(event)


def dump_event(event: Event) -> str:
    """One line of a capture (no newline)."""
    return json.dumps(_encode(event), sort_keys=True, separators=(",", ":"))


def load_events(source: str | Path | TextIO) -> list[Event]:
    """The events of a capture file, in file order, as the daemon delivered them."""
    name = str(source) if isinstance(source, str | Path) else getattr(source, "name", "<stream>")
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as f:
            return list(_parse(f, name))
    return list(_parse(source, name))


def _parse(lines: Iterable[str], name: str) -> Iterator[Event]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{name}:{n}: not a JSON event ({exc.msg}); a capture has one event per line"
            ) from None
        if not isinstance(event, dict) or not isinstance(event.get("id"), int):
            raise ConfigError(f"{name}:{n}: not an event (an object with an integer id)")
        yield _decode(event)


def capture(source: Any, from_id: int, to_id: int, out: TextIO, secrets: Iterable[str] = ()) -> int:
    """Write events ``from_id..to_id`` of ``source`` to ``out``; returns how many."""
    if to_id < from_id:
        raise ConfigError(f"--to-id {to_id} is before --from-id {from_id}")
    kept = tuple(secrets)
    count = 0
    last = from_id - 1
    while last < to_id:
        batch = [e for e in source.fetch_after(last, PAGE) if e["id"] <= to_id]
        for event in batch:
            out.write(dump_event(scrub_event(event, kept)) + "\n")
            count += 1
        if not batch:
            break
        last = batch[-1]["id"]
    out.flush()
    return count


def run_capture(config_path: Path, from_id: int, to_id: int, out: TextIO, err: TextIO) -> int:
    """The ``capture`` command: events of the configured site to ``out``; returns the exit code."""
    from shotgun_events.client.source import daemon_source
    from shotgun_events.config.load import load_config

    config = load_config(config_path)
    source = daemon_source(config)
    try:
        count = capture(source, from_id, to_id, out, config.secrets)
    finally:
        source.close()
    print(f"captured {count} events ({from_id}..{to_id}) from {config.server}", file=err)
    return 0
