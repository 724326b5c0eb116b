"""The configuration model: the defaults table, the known keys and the frozen ``Config``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote

from shotgun_events.config.celery_section import CELERY_DEFAULTS, CeleryConfig
from shotgun_events.config.http_section import HTTP_DEFAULTS, HttpSettings
from shotgun_events.config.plugin_sections import PluginSettings
from shotgun_events.config.table import DefaultsTable

__all__ = [
    "DEFAULTS",
    "KNOWN_KEYS",
    "REQUIRED",
    "SECRET_KEYS",
    "Config",
    "EmailConfig",
    "WebhookConfig",
]

#: The one defaults table: every optional key and its default, as written in a file.
DEFAULTS = DefaultsTable(
    {
        ("daemon", "logMode"): "1",
        ("daemon", "logPath"): "",
        ("daemon", "logging"): "20",
        ("daemon", "timing_log"): "off",
        ("daemon", "conn_retry_sleep"): "60",
        ("daemon", "max_conn_retries"): "5",
        ("daemon", "fetch_interval"): "5",
        ("daemon", "max_event_batch_size"): "500",
        ("daemon", "backlog_timeout"): "300",
        ("daemon", "backlog_poll_interval"): "5",
        ("daemon", "start_from_id"): "",
        ("daemon", "dispatch"): "auto",
        ("daemon", "executor"): "local",
        ("daemon", "stop_timeout"): "30",
        ("daemon", "callback_timeout"): "0",
        ("daemon", "state_fsync"): "interval",
        ("daemon", "strict_permissions"): "False",
        ("daemon", "callback_retries"): "0",
        ("daemon", "callback_retry_delay"): "5",
        ("daemon", "callback_retry_max_delay"): "300",
        ("daemon", "disabled_cooldown"): "0",
        ("daemon", "prefilter"): "False",
        ("daemon", "control_socket"): "",
        # issue 12: connection pool per credential, read-ahead during catch-up
        ("daemon", "max_connections_per_script"): "8",
        ("daemon", "read_ahead"): "4",
        # issue 25: a ceiling on each plugin's site calls (0: none)
        ("daemon", "max_calls_per_second"): "0",
        ("shotgun", "proxy_server"): "",
        ("shotgun", "use_session_uuid"): "True",
        ("shotgun", "timeout_secs"): "60",
        ("shotgun", "ca_certs"): "",
        ("emails", "enabled"): "False",
        ("emails", "server"): "",
        ("emails", "port"): "25",
        ("emails", "useTLS"): "False",
        ("emails", "useSSL"): "False",
        ("emails", "username"): "",
        ("emails", "password"): "",
        ("emails", "from"): "",
        ("emails", "to"): "",
        ("emails", "subject"): "[shotgunEvents]",
        ("emails", "digest_interval"): "300",
        ("emails", "timeout"): "30",
        ("emails", "ca_certs"): "",
        ("plugins", "watch"): "auto",
        ("plugins", "helper_paths"): "",
        ("plugins", "reload_debounce"): "0.3",
        ("plugins", "poll_interval"): "1",
        ("plugins", "config_dir_on_path"): "True",
        **HTTP_DEFAULTS,
        # Adaptive polling and webhook wake-ups (issue 18).
        ("daemon", "active_fetch_interval"): "1",
        ("webhooks", "listen"): "",
        ("webhooks", "secret"): "",
        ("webhooks", "path"): "/",
        # [celery]: read only when some plugin runs on Celery workers (celery_section.py).
        **CELERY_DEFAULTS,
    }
)
#: Keys without a default; the daemon cannot start without them.
REQUIRED: tuple[tuple[str, str], ...] = (
    ("daemon", "pidFile"),
    ("daemon", "eventIdFile"),
    ("daemon", "logFile"),
    ("shotgun", "server"),
    ("shotgun", "name"),
    ("shotgun", "key"),
    ("plugins", "paths"),
)
KNOWN_KEYS = frozenset(DEFAULTS) | frozenset(REQUIRED)
SECRET_KEYS = frozenset(
    {"key", "password", "proxy_server", "token", "secret", "broker_url", "result_backend"}
)
SMTPS_PORT = 465
#: Longest path a Unix domain socket can be bound to (sun_path is 108 bytes on Linux, with NUL).
SOCKET_PATH_LIMIT = 107


@dataclass(frozen=True)
class EmailConfig:
    """The [emails] section: where ERROR records are mailed."""

    enabled: bool
    server: str
    port: int
    use_tls: bool
    use_ssl: bool
    username: str | None
    password: str | None = field(repr=False)
    sender: str
    to: tuple[str, ...]
    subject: str
    digest_seconds: float
    timeout: float
    ca_certs: str | None = None


@dataclass(frozen=True)
class WebhookConfig:
    """The [webhooks] section: the receiver of the site's webhook deliveries (off when no host)."""

    host: str | None = None
    port: int = 0
    secret: str = field(default="", repr=False)
    path: str = DEFAULTS.text("webhooks", "path")

    @property
    def enabled(self) -> bool:
        """Whether ``listen`` is set."""
        return self.host is not None


@dataclass(frozen=True)
class Config:
    """Every setting of the daemon, parsed and checked once; paths are absolute."""

    path: Path
    pid_file: Path
    event_id_file: Path
    log_mode: int
    log_path: Path | None
    log_file: str
    log_level: int
    timing_log: bool
    conn_retry_sleep: float
    max_conn_retries: int
    fetch_interval: float
    max_event_batch_size: int
    backlog_timeout: float
    backlog_poll_interval: float
    request_timeout: float
    start_from_id: int | None
    dispatch: str
    stop_timeout: float
    callback_timeout: float
    state_fsync: str
    server: str
    script_name: str
    script_key: str = field(repr=False)
    proxy_server: str | None = field(repr=False)
    ca_certs: str | None
    use_session_uuid: bool
    plugin_paths: tuple[Path, ...]
    email: EmailConfig
    strict_permissions: bool
    callback_retries: int = DEFAULTS.integer("daemon", "callback_retries")
    callback_retry_delay: float = DEFAULTS.number("daemon", "callback_retry_delay")
    callback_retry_max_delay: float = DEFAULTS.number("daemon", "callback_retry_max_delay")
    disabled_cooldown: float = DEFAULTS.number("daemon", "disabled_cooldown")
    prefilter: bool = DEFAULTS.flag("daemon", "prefilter")
    plugin_watch: str = DEFAULTS.text("plugins", "watch")
    plugin_helper_paths: tuple[Path, ...] = ()
    reload_debounce: float = DEFAULTS.number("plugins", "reload_debounce")
    plugin_poll_interval: float = DEFAULTS.number("plugins", "poll_interval")
    #: Put the config file's folder on the plugins' import path, after plugin folders and helpers.
    plugin_config_dir_on_path: bool = DEFAULTS.flag("plugins", "config_dir_on_path")
    #: The operator control socket; None means ``<pidFile>.sock``.
    control_socket: Path | None = None
    #: Most HTTP connections open at once per script credential (plugins' ``sg``).
    max_connections_per_script: int = DEFAULTS.integer("daemon", "max_connections_per_script")
    #: Most id windows read concurrently during catch-up (1 = one read at a time).
    read_ahead: int = DEFAULTS.integer("daemon", "read_ahead")
    #: ``[plugin:NAME]`` sections by plugin name (scope, concurrency, executor).
    plugin_settings: Mapping[str, PluginSettings] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: The ``[http]`` section: metrics, health probes, status page (off by default).
    http: HttpSettings = field(default_factory=HttpSettings)
    #: Seconds between reads while events keep arriving (adaptive polling).
    active_fetch_interval: float = DEFAULTS.number("daemon", "active_fetch_interval")
    #: The [webhooks] section: where deliveries from the site wake the poll loop.
    webhooks: WebhookConfig = field(default_factory=lambda: WebhookConfig())
    #: The ``[celery]`` section (defaults when no plugin runs on Celery).
    celery: CeleryConfig = field(default_factory=CeleryConfig)
    #: Where plugins' events run unless their section says: ``local`` or ``celery``.
    executor: str = DEFAULTS.text("daemon", "executor")
    #: Site calls per second a plugin's callbacks may send, unless its section says; 0: no limit.
    max_calls_per_second: float = DEFAULTS.number("daemon", "max_calls_per_second")

    @property
    def uses_celery(self) -> bool:
        """Whether any plugin may run on Celery workers."""
        return self.executor == "celery" or any(
            s.executor == "celery" for s in self.plugin_settings.values()
        )

    @property
    def control_socket_path(self) -> Path:
        """Where the running daemon listens for operator commands."""
        return self.control_socket or self.pid_file.with_name(f"{self.pid_file.name}.sock")

    @property
    def plugin_import_paths(self) -> tuple[Path, ...]:
        """Folders plugins import helpers from: ``helper_paths``, then the config's folder."""
        if not self.plugin_config_dir_on_path:
            return self.plugin_helper_paths
        return tuple(dict.fromkeys((*self.plugin_helper_paths, self.path.parent)))

    @property
    def log_file_path(self) -> Path:
        """The main log file: ``logPath/logFile``, or ``logFile`` alone (relative to the config)."""
        return (self.log_path or self.path.parent) / self.log_file

    @property
    def log_dir(self) -> Path:
        """The folder of the main log file, where per-plugin and timing logs go too."""
        return self.log_file_path.parent

    @property
    def output_folders(self) -> tuple[Path, ...]:
        """Folders the daemon (or a worker of it) writes into: state, logs, pid file, socket.

        The plugin watcher never watches these natively: each write there would wake it.
        """
        folders = (
            self.event_id_file.parent,
            self.log_dir,
            self.log_dir / "workers",
            self.pid_file.parent,
            self.control_socket_path.parent,
        )
        return tuple(dict.fromkeys(Path(os.path.abspath(f)) for f in folders))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line: script key, SMTP password, proxy credentials."""
        found = [
            self.script_key,
            self.email.password or "",
            self.http.token or "",
            self.webhooks.secret,
        ]
        found.extend(_proxy_credentials(self.proxy_server or ""))
        found.extend(self.celery.secrets)
        return tuple(dict.fromkeys(s for s in found if s))


def _proxy_credentials(proxy: str) -> list[str]:
    """Return the ``user:password`` part of a proxy address and the password alone."""
    rest = proxy.split("://", 1)[-1]
    userinfo = rest.rpartition("@")[0]
    if not userinfo:
        return []
    password = userinfo.partition(":")[2]
    return [userinfo, password, unquote(password)]
