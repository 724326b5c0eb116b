"""What workers keep in Redis: events done per (plugin, event id), running claims, worker beacons.

Keys (all under ``<queue_prefix>:``):

- ``done:<plugin>:<id>``: the worker finished this event's callbacks; kept
  ``done_ttl`` seconds, written *before* the task answers, so a task the
  daemon sends again (timeout, daemon restart) does not run a callback twice.
- ``run:<plugin>:<id>``: a worker is running it now (expires after
  ``task_timeout``), so two copies of one task never run at the same time.
- ``worker:<hostname>``: a worker's beacon, refreshed every few seconds, read
  by ``status``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import redis

BEACON_TTL = 30


class DoneStore:
    """Per (plugin, event id) completion records and running claims."""

    def __init__(self, client: redis.Redis, prefix: str, *, ttl: float, claim_ttl: float) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = max(1, int(ttl))
        self._claim_ms = max(1000, int(claim_ttl * 1000))

    def _key(self, kind: str, plugin: str, event_id: int) -> str:
        return f"{self._prefix}:{kind}:{plugin}:{event_id}"

    def done_among(self, plugin: str, ids: Iterable[int]) -> set[int]:
        """Return the ids of ``ids`` already recorded as done."""
        wanted = list(ids)
        if not wanted:
            return set()
        found = self._client.mget([self._key("done", plugin, i) for i in wanted])
        return {i for i, value in zip(wanted, found, strict=True) if value is not None}

    def claim(self, plugin: str, event_id: int, owner: str) -> bool:
        """Take the running claim of one event; False when another run holds it."""
        return bool(
            self._client.set(self._key("run", plugin, event_id), owner, nx=True, px=self._claim_ms)
        )

    def release(self, plugin: str, event_id: int) -> None:
        """Drop the running claim (the callback failed; the daemon decides what next)."""
        self._client.delete(self._key("run", plugin, event_id))

    def claim_all(self, plugin: str, ids: list[int], owner: str) -> tuple[set[int], set[int]]:
        """Claim every id in one round trip; return (claimed, already done)."""
        pipe = self._client.pipeline(transaction=False)
        for event_id in ids:
            pipe.set(self._key("run", plugin, event_id), owner, nx=True, px=self._claim_ms)
        pipe.mget([self._key("done", plugin, i) for i in ids])
        replies = pipe.execute()
        claimed = {i for i, ok in zip(ids, replies[:-1], strict=True) if ok}
        done = {i for i, value in zip(ids, replies[-1], strict=True) if value is not None}
        return claimed, done

    def settle(self, plugin: str, done: list[int], release: list[int]) -> None:
        """Record ``done`` done and drop the claims of ``done`` and ``release``, in one trip."""
        if not done and not release:
            return
        pipe = self._client.pipeline(transaction=True)
        for event_id in done:
            pipe.set(self._key("done", plugin, event_id), "1", ex=self._ttl)
        keys = [self._key("run", plugin, i) for i in (*done, *release)]
        pipe.delete(*keys)
        pipe.execute()

    def mark_done(self, plugin: str, event_id: int) -> None:
        """Record the event done and drop its claim, in one round trip."""
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._key("done", plugin, event_id), "1", ex=self._ttl)
        pipe.delete(self._key("run", plugin, event_id))
        pipe.execute()


def write_beacon(client: redis.Redis, prefix: str, hostname: str, info: dict[str, Any]) -> None:
    """Say this worker is alive and what it runs (expires unless refreshed)."""
    body = json.dumps({**info, "hostname": hostname, "seen": time.time()})
    client.set(f"{prefix}:worker:{hostname}", body, ex=BEACON_TTL)


def read_beacons(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    """Return the beacons of workers seen within the last BEACON_TTL seconds."""
    keys = sorted(client.scan_iter(match=f"{prefix}:worker:*", count=100))
    found: list[dict[str, Any]] = []
    for raw in client.mget(keys) if keys else []:
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found
