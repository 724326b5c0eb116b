"""The daemon's one link to Celery: send tasks, collect results, notice Redis going away.

One ``CeleryHub`` per daemon serves every plugin's ``CeleryExecutor``. Its
thread polls the result keys of the tasks in flight (one ``MGET`` per round,
every few milliseconds while tasks are out, asleep when none are), hands each
result to the executor that sent it and lets executors re-send what is due.
A Redis outage is logged once when it starts and once when it ends; after
it every task in flight is sent again (Redis without persistence lost them;
workers skip what they already did).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from celery import Celery
from shotgun_events.config.celery_section import CeleryConfig
from shotgun_events.delivery.celery.app import make_app
from shotgun_events.delivery.celery.codec import (
    REJECTED,
    TASK_NAME,
    MalformedTaskError,
    TaskResult,
    decode_result,
)
from shotgun_events.delivery.celery.store import read_beacons
from shotgun_events.errors import ShotgunEventsError

log = logging.getLogger("engine.celery")

FAST_POLL = 0.002
SLOW_POLL = 0.02


class BrokerUnavailableError(ShotgunEventsError):
    """Redis (broker or result store) cannot be reached."""

    exit_code = 69  # EX_UNAVAILABLE


class Client(Protocol):
    """What the hub's executors are (the part the hub calls)."""

    def on_result(self, task_id: str, result: TaskResult) -> None:
        """A result came back."""
        ...

    def tick(self, now: float) -> None:
        """Send what is due (retries, time-outs, after an outage)."""
        ...

    def resend_all(self) -> None:
        """Redis was away: send every task in flight again."""
        ...


class CeleryHub:
    """Sending, result collection and outage handling for every Celery plugin of a daemon."""

    def __init__(
        self,
        config: CeleryConfig,
        *,
        app: Celery | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.app = app or make_app(config)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._owners: dict[str, Client] = {}
        self._clients: list[Client] = []
        self._down_since: float | None = None
        self._thread: threading.Thread | None = None

    # -- connection ------------------------------------------------------------

    @property
    def redis(self) -> Any:
        """The result store's Redis client (also our own keys)."""
        return self.app.backend.client

    def connect(self, *, attempts: int, first_wait: float, wait: Callable[[float], bool]) -> None:
        """Reach Redis, retrying with doubling waits; raise BrokerUnavailableError at the end."""
        delay = first_wait
        for attempt in range(1, attempts + 1):
            try:
                self.redis.ping()
                with self.app.connection_for_write() as conn:
                    conn.ensure_connection(max_retries=1)
            except Exception as exc:
                if attempt == 1:
                    log.error(
                        "Redis at %s unreachable (%s); retrying with backoff, %d attempts",
                        self.config.safe_broker,
                        _reason(exc),
                        attempts,
                    )
                if attempt == attempts or wait(delay):
                    raise BrokerUnavailableError(
                        f"Redis at {self.config.safe_broker} unreachable after {attempt} "
                        f"attempts ({_reason(exc)}); start Redis or fix [celery] broker_url"
                    ) from None
                delay = min(delay * 2, 60.0)
                continue
            if attempt > 1:
                log.info("Redis at %s reachable", self.config.safe_broker)
            return

    def start(self) -> None:
        """Start the collecting thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="celery-hub", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the collecting thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def add(self, client: Client) -> None:
        """Serve one more executor."""
        with self._lock:
            self._clients.append(client)

    def remove(self, client: Client) -> None:
        """Stop serving an executor."""
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
            for task_id in [t for t, c in self._owners.items() if c is client]:
                del self._owners[task_id]

    # -- tasks -----------------------------------------------------------------

    def send(self, client: Client, queue: str, body: dict[str, Any], task_id: str) -> bool:
        """Publish one task; False (and logged once per outage) when Redis is away."""
        with self._lock:
            self._owners[task_id] = client
        try:
            # Celery's lower-level publish: send_task would also subscribe to every task's
            # result channel, which we read with one MGET per round instead.
            amqp = self.app.amqp
            message = amqp.create_task_message(task_id, TASK_NAME, [body], {})
            with self.app.producer_or_acquire() as producer:
                amqp.send_task_message(producer, TASK_NAME, message, queue=queue, retry=False)
        except Exception as exc:
            with self._lock:
                self._owners.pop(task_id, None)
            self._went_down(exc)
            return False
        self._came_back()
        self._wake.set()
        return True

    def forget(self, task_id: str) -> None:
        """Stop waiting for a task's result (it was sent again under another id)."""
        with self._lock:
            self._owners.pop(task_id, None)

    @property
    def available(self) -> bool:
        """Whether Redis answered last time it was asked."""
        return self._down_since is None

    def queue_length(self, queue: str) -> int | None:
        """Tasks waiting in a queue, or None when Redis cannot be asked."""
        try:
            # Closed after use: status asks every few seconds, connections must not pile up.
            with self.app.connection_for_read() as conn:
                return int(conn.default_channel.client.llen(queue))
        except Exception:
            return None

    def workers(self) -> list[dict[str, Any]]:
        """The workers seen recently (their beacons)."""
        try:
            return read_beacons(self.redis, self.config.queue_prefix)
        except Exception:
            return []

    # -- the thread ------------------------------------------------------------

    def _loop(self) -> None:
        idle_rounds = 0
        while not self._stop.is_set():
            with self._lock:
                owners = dict(self._owners)
                clients = list(self._clients)
            got = self._collect(owners) if owners else 0
            now = self._monotonic()
            for client in clients:
                try:
                    client.tick(now)
                except Exception:
                    log.exception("celery executor tick failed")
            idle_rounds = 0 if got else idle_rounds + 1
            if not owners:
                self._wake.wait(0.5)
            else:
                self._wake.wait(FAST_POLL if idle_rounds < 10 else SLOW_POLL)
            self._wake.clear()

    def _collect(self, owners: dict[str, Client]) -> int:
        backend = self.app.backend
        ids = list(owners)
        try:
            raw = self.redis.mget([backend.get_key_for_task(t) for t in ids])
        except Exception as exc:
            self._went_down(exc)
            return 0
        self._came_back()
        found: list[tuple[str, Client, TaskResult]] = []
        for task_id, value in zip(ids, raw, strict=True):
            if value is not None:
                # Every answer is taken once, ours or not: a key left in place would be read
                # again at every round.
                found.append((task_id, owners[task_id], _read_answer(backend, value)))
        if found:
            try:
                self.redis.delete(*(backend.get_key_for_task(t) for t, _, _ in found))
            except Exception as exc:
                log.debug("result keys not deleted (they expire): %s", exc)
        for task_id, client, result in found:
            with self._lock:
                current = self._owners.pop(task_id, None)
            if current is client:
                client.on_result(task_id, result)
        return len(found)

    def _went_down(self, exc: BaseException) -> None:
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = self._monotonic()
        if first:
            log.error(
                "Redis at %s unreachable (%s); holding every plugin's position and "
                "retrying until it is back",
                self.config.safe_broker,
                _reason(exc),
            )

    def _came_back(self) -> None:
        with self._lock:
            since = self._down_since
            self._down_since = None
            clients = list(self._clients) if since is not None else []
        if since is None:
            return
        log.warning(
            "Redis at %s reachable again after %.0f s; sending the tasks in flight again",
            self.config.safe_broker,
            self._monotonic() - since,
        )
        for client in clients:
            client.resend_all()


def _read_answer(backend: Any, value: Any) -> TaskResult:
    """A worker's result, or a REJECTED one saying what came back instead."""
    meta: Any = None
    try:
        meta = backend.decode_result(value)
        return decode_result(meta.get("result"))
    except (MalformedTaskError, ValueError, TypeError, AttributeError) as exc:
        state = meta.get("status") if isinstance(meta, dict) else None
        detail = meta.get("result") if isinstance(meta, dict) else None
        if isinstance(detail, dict) and "exc_message" in detail:
            message = detail.get("exc_message")
            what = f"{detail.get('exc_type', 'error')}: {message}"
        else:
            what = str(exc)
        text = f"{state or 'an unreadable answer'} ({what})"
        return TaskResult(status=REJECTED, error=" ".join(text.split())[:500])


def _reason(exc: BaseException) -> str:
    """One line for an error, without URLs (they may carry a password)."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    if "://" in text:
        return type(exc).__name__
    return text[:200]
