"""The Celery application both sides build from ``[celery]``: JSON only, late acks, one task name.

Settings and why:

- ``accept_content = ['json']`` (tasks and results): no pickle, so whoever can
  write to the broker cannot run code on a worker.
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged
  after it ran, so a worker dying inside a callback leaves it for another.
- ``worker_prefetch_multiplier = 1``: a worker holds no more tasks than it runs.
- a long ``visibility_timeout``: the daemon, not Redis, decides when an
  unanswered task is sent again (after ``task_timeout``); workers skip what
  they already did, so the copy Redis re-delivers later is harmless.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

from celery import Celery
from shotgun_events.config.celery_section import CeleryConfig

#: Redis re-delivers an unacknowledged task after this long at the earliest.
MIN_VISIBILITY_TIMEOUT = 3600.0


def queue_name(config: CeleryConfig, plugin: str) -> str:
    """Return the queue of one plugin's tasks."""
    return f"{config.queue_prefix}.{plugin}"


def make_app(config: CeleryConfig, *, main: str = "shotgun_events", worker: bool = False) -> Celery:
    """Return a configured Celery app (no connection is opened yet).

    A worker reconnects forever; the daemon's sends fail fast instead, so an
    outage never blocks the thread handing on events (it holds them and retries).
    """
    app = Celery(main, broker=config.broker_url, backend=config.result_backend)
    settings: dict[str, Any] = {
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "result_expires": max(config.task_timeout * 4, 3600.0),
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None if worker else 1,
        "broker_transport_options": {
            "visibility_timeout": max(config.task_timeout * 4, MIN_VISIBILITY_TIMEOUT),
            **({} if worker else {"max_retries": 1, "interval_start": 0, "interval_step": 0}),
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
        },
        "result_backend_transport_options": {"socket_timeout": 5, "socket_connect_timeout": 5},
        "redis_socket_timeout": 5,
        "redis_socket_connect_timeout": 5,
        "redis_retry_on_timeout": True,
        "task_default_queue": f"{config.queue_prefix}.default",
        "enable_utc": True,
    }
    if _needs_tls_options(config.broker_url):
        settings["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if _needs_tls_options(config.result_backend):
        settings["redis_backend_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    app.conf.update(settings)
    return app


def _needs_tls_options(url: str) -> bool:
    """A rediss:// URL without ssl_cert_reqs: verify the certificate (Celery wants a choice)."""
    parts = urlsplit(url)
    return parts.scheme == "rediss" and "ssl_cert_reqs" not in parse_qs(parts.query)
