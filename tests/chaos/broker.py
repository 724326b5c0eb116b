"""The Celery plugin's task messages in Redis, as the chaos run finds one and garbles it.

kombu's Redis transport keeps each waiting task message as JSON in a list
named after the queue (pushed on the left, taken from the right), its body
the task's arguments in base64. A garbled message keeps its task id, so the
daemon waits for its answer, but its body says a wire version no worker
speaks: the worker that takes it rejects the task, and the daemon reads back
an answer that is not a result.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

#: A wire version no worker speaks (they speak codec.WIRE_VERSION).
FOREIGN_VERSION = 99
#: Seconds a worker's BRPOP blocks (kombu's ``brpop_timeout``). Redis hands a message pushed
#: meanwhile to the blocked worker even if it is stopped: it reaches the list after this.
BRPOP_TIMEOUT = 1.0

#: Replace the element at an index only if it is still the one read (compare and set).
_SWAP = """
if redis.call('LINDEX', KEYS[1], ARGV[1]) == ARGV[2] then
    redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
    return 1
end
return 0
"""


def _body(message: dict[str, Any]) -> list[Any]:
    """A message's body: [args, kwargs, embed]; args[0] is our task (codec.encode_task)."""
    body: list[Any] = json.loads(base64.b64decode(message["body"]))
    return body


def _event_ids(message: dict[str, Any]) -> list[int]:
    return [int(e["id"]) for e in _body(message)[0][0].get("events", [])]


def garbled(raw: str | bytes) -> str:
    """The same message, its task's argument in a foreign wire version."""
    message = json.loads(raw)
    body = _body(message)
    body[0][0]["v"] = FOREIGN_VERSION
    message["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps(message)


def garble_event(client: redis.Redis, queue: str, event_id: int) -> str | None:
    """Garble the waiting message whose task carries ``event_id`` alone; its task id.

    None while no such message waits in ``queue``. Atomic against the daemon
    pushing and workers taking messages meanwhile.
    """
    while True:
        # Counted from the right: messages pushed meanwhile on the left do not move it.
        found = [
            (index, raw)
            for index, raw in enumerate(reversed(client.lrange(queue, 0, -1)), start=1)
            if _event_ids(json.loads(raw)) == [event_id]
        ]
        if not found:
            return None
        index, raw = found[0]
        if client.eval(_SWAP, 1, queue, -index, raw, garbled(raw)) == 1:
            task_id: str = json.loads(raw)["headers"]["id"]
            return task_id
