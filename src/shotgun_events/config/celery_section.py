"""The ``[celery]`` section: where plugin callbacks run when they run on Celery workers.

Read only when some plugin runs on Celery (``[daemon] executor = celery`` or
``[plugin:NAME] executor = celery``) or when a worker starts, so a config
without Celery keeps working without the section. Broker and result URLs may
hold a password (``%(REDIS_PASSWORD)s``); they are secrets: never logged,
shown by ``status`` or put in an error message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from shotgun_events.config.ini import IniReader
from shotgun_events.config.table import DefaultsTable

SECTION = "celery"
#: Defaults of the section, merged into the one DEFAULTS table.
CELERY_DEFAULTS: dict[tuple[str, str], str] = {
    (SECTION, "broker_url"): "redis://127.0.0.1:6379/0",
    (SECTION, "result_backend"): "",
    (SECTION, "queue_prefix"): "shotgun_events",
    (SECTION, "task_timeout"): "300",
    (SECTION, "task_batch"): "20",
    (SECTION, "done_ttl"): "604800",
}
_DEFAULTS = DefaultsTable(CELERY_DEFAULTS)
_SCHEMES = ("redis", "rediss")
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


@dataclass(frozen=True)
class CeleryConfig:
    """The ``[celery]`` section, checked."""

    broker_url: str = field(default=_DEFAULTS.text(SECTION, "broker_url"), repr=False)
    #: Where workers put results; the broker when not set.
    result_backend: str = field(default=_DEFAULTS.text(SECTION, "broker_url"), repr=False)
    #: Queues are ``<prefix>.<plugin>``, Redis keys of ours ``<prefix>:...``.
    queue_prefix: str = _DEFAULTS.text(SECTION, "queue_prefix")
    #: Seconds before a task whose result has not come back is sent again.
    task_timeout: float = _DEFAULTS.number(SECTION, "task_timeout")
    #: Most consecutive events of one ordering key carried by one task.
    task_batch: int = _DEFAULTS.integer(SECTION, "task_batch")
    #: Seconds a worker remembers an event it completed (so a re-sent task skips it).
    done_ttl: float = _DEFAULTS.number(SECTION, "done_ttl")

    @property
    def secrets(self) -> tuple[str, ...]:
        """The passwords (and user:password parts) inside the URLs."""
        found: list[str] = []
        for url in (self.broker_url, self.result_backend):
            found.extend(url_secrets(url))
        return tuple(dict.fromkeys(found))

    @property
    def safe_broker(self) -> str:
        """The broker URL with any password masked, for logs and status."""
        return mask_url(self.broker_url)


def url_secrets(url: str) -> list[str]:
    """Return the credentials of a URL (user:password, password, its unquoted form)."""
    userinfo = url.split("://", 1)[-1].partition("/")[0].rpartition("@")[0]
    if not userinfo:
        return []
    password = userinfo.partition(":")[2] or userinfo
    return [s for s in (userinfo, password, unquote(password)) if s]


def mask_url(url: str) -> str:
    """Return ``url`` with its password (or lone token) replaced by ``***``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0] if ":" in userinfo else ""
    netloc = f"{user}:***@{host}" if user else f":***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def read_celery_section(ini: IniReader) -> CeleryConfig:
    """Read and check ``[celery]``; bad values raise a one-line ConfigError (secrets hidden)."""
    broker = _url(ini, "broker_url", ini.text(SECTION, "broker_url"))
    backend_raw = ini.text(SECTION, "result_backend")
    backend = _url(ini, "result_backend", backend_raw) if backend_raw else broker
    prefix = ini.text(SECTION, "queue_prefix")
    if not prefix or not set(prefix) <= _PREFIX_CHARS:
        raise ini.fail(
            SECTION,
            "queue_prefix",
            "letters, digits, '_', '-' or '.'",
            prefix,
            "write e.g. 'queue_prefix = shotgun_events'",
        )
    return CeleryConfig(
        broker_url=broker,
        result_backend=backend,
        queue_prefix=prefix,
        task_timeout=ini.seconds(SECTION, "task_timeout", positive=True),
        task_batch=ini.integer(SECTION, "task_batch", 1, 1000),
        done_ttl=ini.seconds(SECTION, "done_ttl", positive=True),
    )


def _url(ini: IniReader, key: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ini.fail(
            SECTION,
            key,
            "a redis:// or rediss:// URL",
            value,
            "write e.g. 'redis://:%(REDIS_PASSWORD)s@redis.studio.lan:6379/0'",
        )
    return value
