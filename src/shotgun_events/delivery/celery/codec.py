"""The JSON wire format of tasks and results, checked strictly on both sides.

Events travel as JSON only (no pickle: whoever can write to the broker must
not be able to run code on a worker). JSON has no datetime, so a datetime is
sent as ``{"$dt": "<ISO 8601 with offset>"}`` and turned back into an aware
datetime on the worker; a dict of the event's own that could be read as such
a tag (one key, ``$dt`` or ``$dict``) travels wrapped as ``{"$dict": {...}}``;
everything else (nested ``meta``, entity dicts, lists) is plain JSON
already. A task that does not have exactly this shape raises
``MalformedTaskError``: the worker logs one line and drops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shotgun_events.events import Event

#: Version of the task layout; a worker refuses any other.
WIRE_VERSION = 1
#: The one Celery task name both sides use.
TASK_NAME = "shotgun_events.run_events"
_DT = "$dt"
_DICT = "$dict"
_MAX_EVENTS = 1000

#: Result statuses a worker answers with.
DONE = "done"  # every event handled (ran, skipped as already done, or matched nothing)
FAILED = "failed"  # events before ``failed_id`` handled; that one raised; the rest untouched
WRONG_VERSION = "wrong_version"  # the worker's copy of the plugin differs from the task's hash
UNAVAILABLE = "unavailable"  # the worker has no such plugin, or it is switched off there
BUSY = "busy"  # ``failed_id`` is being run by another copy of this task right now
STATUSES = (DONE, FAILED, WRONG_VERSION, UNAVAILABLE, BUSY)
#: Made by the daemon, never sent by a worker: the task came back without a result of ours
#: (the worker rejected it, it raised outside our code, it was revoked, or the answer is
#: unreadable). Nothing ran.
REJECTED = "rejected"


class MalformedTaskError(ValueError):
    """A task or result that is not in the wire format (forged, truncated, other version)."""


@dataclass(frozen=True)
class TaskSpec:
    """One task: consecutive events of one ordering key, or one timer's run, of a plugin version."""

    plugin: str
    #: sha1 of the plugin file the daemon runs (``Plugin.fingerprint[2]``).
    plugin_hash: str
    events: tuple[Event, ...]
    #: The name of the timer to run once (then ``events`` is empty).
    timer: str = ""


@dataclass(frozen=True)
class TaskResult:
    """What a worker answers for one task."""

    status: str
    #: Ids handled, in order; with DONE every event of the task.
    handled: tuple[int, ...] = ()
    #: Ids of ``handled`` whose callbacks actually ran (not skipped, not already done).
    ran: tuple[int, ...] = ()
    failed_id: int | None = None
    error: str = ""
    #: The failing callback had stopOnError (the daemon switches the plugin off).
    stop_on_error: bool = False
    worker: str = ""
    worker_hash: str = ""
    #: Name of the callback that failed, and its place among the plugin's callbacks (the
    #: daemon's copy of the same version has it there; names of callable objects differ).
    callback: str = ""
    callback_index: int | None = None
    #: The failure was the site's, not the plugin's: it could not answer (client/outage.py).
    unavailable: bool = False


def encode_value(value: Any) -> Any:
    """Return ``value`` as plain JSON data, datetimes tagged."""
    if isinstance(value, datetime):
        return {_DT: value.isoformat()}
    if isinstance(value, dict):
        encoded = {str(k): encode_value(v) for k, v in value.items()}
        if len(encoded) == 1 and (_DT in encoded or _DICT in encoded):
            return {_DICT: encoded}  # the event's own dict, not a tag of ours
        return encoded
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    """Undo ``encode_value``; a bad datetime tag raises MalformedTaskError."""
    if isinstance(value, dict):
        if len(value) == 1 and _DICT in value:
            inner = value[_DICT]
            if not isinstance(inner, dict):
                raise MalformedTaskError("a wrapped dict that is not an object")
            return {k: decode_value(v) for k, v in inner.items()}
        if len(value) == 1 and _DT in value:
            raw = value[_DT]
            if not isinstance(raw, str):
                raise MalformedTaskError("datetime tag without an ISO string")
            try:
                parsed = datetime.fromisoformat(raw)
            except ValueError:
                raise MalformedTaskError(f"bad datetime {raw[:40]!r}") from None
            if parsed.tzinfo is None:
                raise MalformedTaskError(f"datetime without a time zone {raw[:40]!r}")
            return parsed
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def encode_task(spec: TaskSpec) -> dict[str, Any]:
    """Return the task's one JSON argument."""
    body: dict[str, Any] = {"v": WIRE_VERSION, "plugin": spec.plugin, "hash": spec.plugin_hash}
    if spec.timer:
        body["timer"] = spec.timer
    else:
        body["events"] = [encode_value(e) for e in spec.events]
    return body


def decode_task(args: Any, kwargs: Any) -> TaskSpec:
    """Check and decode a task's arguments; anything else raises MalformedTaskError."""
    if kwargs:
        raise MalformedTaskError("unexpected keyword arguments")
    if not isinstance(args, (list, tuple)) or len(args) != 1 or not isinstance(args[0], dict):
        raise MalformedTaskError("expected one JSON object argument")
    body = args[0]
    if set(body) not in ({"v", "plugin", "hash", "events"}, {"v", "plugin", "hash", "timer"}):
        raise MalformedTaskError(f"unexpected fields {sorted(map(str, body))[:8]}")
    if body["v"] != WIRE_VERSION:
        raise MalformedTaskError(f"wire version {body['v']!r}, this worker speaks {WIRE_VERSION}")
    plugin, digest = body["plugin"], body["hash"]
    if not isinstance(plugin, str) or not plugin or "/" in plugin or len(plugin) > 200:
        raise MalformedTaskError("bad plugin name")
    if not isinstance(digest, str) or len(digest) != 40:
        raise MalformedTaskError("bad plugin hash")
    if "timer" in body:
        timer = body["timer"]
        if not isinstance(timer, str) or not timer or len(timer) > 200:
            raise MalformedTaskError("bad timer name")
        return TaskSpec(plugin=plugin, plugin_hash=digest, events=(), timer=timer)
    events = body["events"]
    if not isinstance(events, list) or not 0 < len(events) <= _MAX_EVENTS:
        raise MalformedTaskError("expected 1 to 1000 events")
    decoded: list[Event] = []
    for raw in events:
        if not isinstance(raw, dict):
            raise MalformedTaskError("an event is not an object")
        event = decode_value(raw)
        event_id = event.get("id")
        if not isinstance(event_id, int) or isinstance(event_id, bool) or event_id <= 0:
            raise MalformedTaskError("an event without a positive integer id")
        if decoded and event_id <= int(decoded[-1]["id"]):
            raise MalformedTaskError("events not in increasing id order")
        decoded.append(event)
    return TaskSpec(plugin=plugin, plugin_hash=digest, events=tuple(decoded))


def encode_result(result: TaskResult) -> dict[str, Any]:
    """Return the result as the task's JSON return value."""
    return {
        "status": result.status,
        "handled": list(result.handled),
        "ran": list(result.ran),
        "failed_id": result.failed_id,
        "error": result.error,
        "stop_on_error": result.stop_on_error,
        "worker": result.worker,
        "worker_hash": result.worker_hash,
        "callback": result.callback,
        "callback_index": result.callback_index,
        "unavailable": result.unavailable,
    }


def decode_result(value: Any) -> TaskResult:
    """Check a result read back from the result store."""
    if not isinstance(value, dict) or value.get("status") not in STATUSES:
        raise MalformedTaskError("not a result of ours")
    try:
        handled = tuple(int(i) for i in value.get("handled", []))
        ran = tuple(int(i) for i in value.get("ran", []))
        failed = value.get("failed_id")
        index = value.get("callback_index")
        return TaskResult(
            status=str(value["status"]),
            handled=handled,
            ran=ran,
            failed_id=None if failed is None else int(failed),
            error=str(value.get("error", ""))[:2000],
            stop_on_error=bool(value.get("stop_on_error", False)),
            worker=str(value.get("worker", ""))[:200],
            worker_hash=str(value.get("worker_hash", ""))[:40],
            callback=str(value.get("callback", ""))[:200],
            callback_index=None if index is None else int(index),
            unavailable=bool(value.get("unavailable", False)),
        )
    except (TypeError, ValueError):
        raise MalformedTaskError("bad ids in a result") from None
