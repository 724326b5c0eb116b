"""The local site's webhook sender: POSTs a signed delivery for each committed event.

Like a real site, it sends from a background thread after the event is
committed (an API call never waits for it), one delivery per request or,
batched, up to 50 pending deliveries per request, each signed with
``X-SG-SIGNATURE: sha1=<hex>`` (HMAC-SHA1 of the raw body with the secret
token). Test controls act on the next deliveries: delay them, send them
twice or more, drop them, or sign them with a wrong secret.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from .store import EVENT_TABLE, Store, q

LOG = logging.getLogger("shotgun_events.site.webhooks")
#: Most deliveries in one batched request (as on a real site).
MAX_BATCH = 50
#: Events waiting to be sent at most; beyond it they are dropped (counted), like throttling.
MAX_PENDING = 100_000
#: Seconds the site waits for an answer (a real site gives 6 s).
ANSWER_TIMEOUT = 6.0
FAULT_KINDS = ("delay", "duplicate", "drop", "missign")
_OPERATIONS = {
    "new_entity": "create",
    "attribute_change": "update",
    "entity_retirement": "delete",
    "entity_revival": "revive",
}
_ROW = (
    "id, event_type, attribute_name, meta, entity__json, user__json, project__json,"
    " session_uuid, created_at"
)


@dataclass
class _Fault:
    kind: str
    remaining: int
    seconds: float = 0.0
    copies: int = 2


@dataclass
class SenderStats:
    """What the sender did: deliveries (events) and requests, by outcome."""

    queued: int = 0
    sent: int = 0
    requests: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    missigned: int = 0
    overflow: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class WebhookSender:
    """Sends webhook deliveries for committed events to one URL, from its own thread."""

    def __init__(self, store: Callable[[], Store | None]) -> None:
        """``store`` gives the site's open store (None when stopped)."""
        self._store = store
        self._cond = threading.Condition()
        self._pending: deque[range] = deque()
        self._pending_count = 0
        #: (due monotonic time, order, event ids, wrong signature) of deliveries held back.
        self._later: list[tuple[float, int, list[int], bool]] = []
        self._order = itertools.count()
        self._faults: list[_Fault] = []
        self._url: str | None = None
        self._secret = b""
        self._batch = False
        self._stopping = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._delivery_ids = itertools.count(1)
        self.stats = SenderStats()

    # -- configuration and controls --------------------------------------------

    def configure(self, url: str | None, secret: str = "", batch: bool = False) -> None:
        """Send to ``url`` (None: stop sending) with this secret token, batched or not."""
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"webhook URL must be http://HOST:PORT/PATH, got {url!r}")
        with self._cond:
            self._url, self._secret, self._batch = url, secret.encode(), batch
            self._close_conn()

    def fault(self, kind: str, count: int = 1, *, seconds: float = 0.0, copies: int = 2) -> None:
        """Act on the next ``count`` deliveries: delay, duplicate (copies), drop or missign."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown webhook fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if count < 1 or seconds < 0 or copies < 2:
            raise ValueError("count must be >= 1, seconds >= 0, copies >= 2")
        with self._cond:
            self._faults.append(_Fault(kind, count, seconds, copies))

    def clear_faults(self) -> None:
        """Forget queued webhook faults."""
        with self._cond:
            self._faults.clear()

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain data, plus how many deliveries still wait."""
        with self._cond:
            out = dict(self.stats.__dict__)
            out["statuses"] = dict(self.stats.statuses)
            out["pending"] = self._pending_count + sum(len(x[2]) for x in self._later)
        return out

    def idle(self) -> bool:
        """True when nothing waits to be sent (held-back deliveries included)."""
        with self._cond:
            return not self._pending_count and not self._later and not self._busy

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the sending thread."""
        with self._cond:
            self._stopping = False
            self._busy = False
        self._thread = threading.Thread(target=self._run, name="local-site-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending (pending deliveries are dropped) and close the connection."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close_conn()

    def committed(self, ids: list[range]) -> None:
        """Queue deliveries for events just committed (called by the store, lock held)."""
        with self._cond:
            if self._url is None:
                return
            for block in ids:
                room = MAX_PENDING - self._pending_count
                if len(block) > room:
                    self.stats.overflow += len(block) - max(room, 0)
                    block = block[: max(room, 0)]
                if block:
                    self._pending.append(block)
                    self._pending_count += len(block)
                    self.stats.queued += len(block)
            self._cond.notify_all()

    # -- the sending thread ------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                job = None
                while not self._stopping:
                    job = self._next_job()
                    if job is not None:
                        break
                    if not self._pending_count or self._url is None:
                        self._cond.wait(self._wait_time())
                if self._stopping or job is None:
                    return
                self._busy = True
            try:
                self._send(job[0], job[1])
            except Exception:  # the sender keeps going whatever one delivery does
                LOG.exception("webhook delivery failed")
            finally:
                with self._cond:
                    self._busy = False

    def _wait_time(self) -> float | None:
        if not self._later:
            return None
        return max(0.0, self._later[0][0] - time.monotonic())

    def _next_job(self) -> tuple[list[int], bool] | None:
        """Take the next request's event ids (held-back ones when due); lock held."""
        if self._later and self._later[0][0] <= time.monotonic():
            _, _, held, wrong = heapq.heappop(self._later)
            return held, wrong
        if not self._pending_count or self._url is None:
            return None
        ids: list[int] = []
        limit = MAX_BATCH if self._batch else 1
        while self._pending and len(ids) < limit:
            block = self._pending.popleft()
            take = limit - len(ids)
            ids.extend(block[:take])
            if len(block) > take:
                self._pending.appendleft(block[take:])
        self._pending_count -= len(ids)
        return self._apply_faults(ids)

    def _apply_faults(self, ids: list[int]) -> tuple[list[int], bool] | None:
        """Act out the first queued fault on this request; lock held."""
        if not self._faults:
            return ids, False
        fault = self._faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._faults.pop(0)
        if fault.kind == "drop":
            self.stats.dropped += len(ids)
            return None
        if fault.kind == "delay":
            self.stats.delayed += len(ids)
            due = time.monotonic() + fault.seconds
            heapq.heappush(self._later, (due, next(self._order), ids, False))
            return None
        if fault.kind == "duplicate":
            self.stats.duplicated += len(ids) * (fault.copies - 1)
            for _ in range(fault.copies - 1):
                heapq.heappush(self._later, (0.0, next(self._order), ids, False))
            return ids, False
        self.stats.missigned += len(ids)
        return ids, True

    def _send(self, ids: list[int], wrong_signature: bool) -> None:
        with self._cond:
            url, secret, batch = self._url, self._secret, self._batch
        if url is None:
            return
        body = json.dumps(self._payload(ids, batch)).encode()
        key = secret + b"-wrong" if wrong_signature else secret
        signature = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
        status = self._post(url, body, signature)
        with self._cond:
            self.stats.requests += 1
            if status is None:
                self.stats.failed += len(ids)
            else:
                self.stats.sent += len(ids)
                self.stats.statuses[str(status)] = self.stats.statuses.get(str(status), 0) + 1

    def _post(self, url: str, body: bytes, signature: str) -> int | None:
        """POST once (reconnecting once after a stale keep-alive); the status or None."""
        parts = urlsplit(url)
        headers = {
            "Content-Type": "application/json",
            "X-SG-SIGNATURE": signature,
            "User-Agent": "SG-Webhook (local site)",
        }
        for attempt in range(2):
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(
                        parts.hostname or "127.0.0.1", parts.port or 80, timeout=ANSWER_TIMEOUT
                    )
                self._conn.request("POST", parts.path or "/", body, headers)
                reply = self._conn.getresponse()
                reply.read()
                if reply.will_close:
                    self._close_conn()
                return reply.status
            except (OSError, http.client.HTTPException) as exc:
                self._close_conn()
                if attempt:
                    LOG.debug("webhook delivery to %s failed: %s", url, exc)
        return None

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _payload(self, ids: list[int], batch: bool) -> dict[str, Any]:
        rows = self._rows(ids)
        deliveries = [self._delivery(event_id, rows.get(event_id)) for event_id in ids]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if batch:
            return {"data": {"deliveries": deliveries}, "timestamp": stamp}
        return {"data": deliveries[0], "timestamp": stamp}

    def _rows(self, ids: list[int]) -> dict[int, tuple[Any, ...]]:
        store = self._store()
        if store is None:
            return {}
        marks = ", ".join("?" for _ in ids)
        with store.lock:
            found = store.conn.execute(
                f"SELECT {_ROW} FROM {q(EVENT_TABLE)} WHERE id IN ({marks})", ids
            ).fetchall()
        return {int(row[0]): row for row in found}

    def _delivery(self, event_id: int, row: tuple[Any, ...] | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": f"{next(self._delivery_ids)}.{event_id}.0",
            "event_log_entry_id": event_id,
        }
        if row is None:
            return data
        meta = json.loads(row[3]) if row[3] else {}
        data.update(
            event_type=row[1],
            operation=_OPERATIONS.get(str(meta.get("type")), "update"),
            user=_slim(row[5]),
            entity=_slim(row[4]),
            project=_slim(row[6]),
            meta=meta,
            created_at=row[8],
            attribute_name=row[2],
            session_uuid=row[7],
        )
        return data


def _slim(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    link = json.loads(text)
    return {"type": link.get("type"), "id": link.get("id")}
