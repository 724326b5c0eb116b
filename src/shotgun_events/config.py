"""INI configuration -> one frozen ``Config``: the defaults table, file lookup, validation."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

from shotgun_events.config_checks import permission_warnings, validate_paths
from shotgun_events.config_ini import IniReader, parse_file
from shotgun_events.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEFAULTS",
    "REQUIRED",
    "Config",
    "EmailConfig",
    "find_config_path",
    "load_config",
    "load_config_with_warnings",
    "permission_warnings",
    "validate_paths",
]

#: Environment variable naming the config file (after ``-c/--config``).
CONFIG_ENV = "SHOTGUN_EVENTS_CONFIG"
CONFIG_NAME = "shotgunEventDaemon.conf"

#: The one defaults table: every optional key and its default, as written in a file.
DEFAULTS: Mapping[tuple[str, str], str] = MappingProxyType(
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
        ("daemon", "dispatch"): "parallel",
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
SECRET_KEYS = frozenset({"key", "password", "proxy_server"})
_REQUIRED_SECTIONS = ("daemon", "shotgun", "plugins")
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
    callback_retries: int = 0
    callback_retry_delay: float = 5.0
    callback_retry_max_delay: float = 300.0
    disabled_cooldown: float = 0.0
    prefilter: bool = False
    plugin_watch: str = "auto"
    plugin_helper_paths: tuple[Path, ...] = ()
    reload_debounce: float = 0.3
    plugin_poll_interval: float = 1.0
    #: The operator control socket; None means ``<pidFile>.sock``.
    control_socket: Path | None = None

    @property
    def control_socket_path(self) -> Path:
        """Where the running daemon listens for operator commands."""
        return self.control_socket or self.pid_file.with_name(f"{self.pid_file.name}.sock")

    @property
    def log_file_path(self) -> Path:
        """The main log file: ``logPath/logFile``, or ``logFile`` alone (relative to the config)."""
        return (self.log_path or self.path.parent) / self.log_file

    @property
    def log_dir(self) -> Path:
        """The folder of the main log file, where per-plugin and timing logs go too."""
        return self.log_file_path.parent

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line: script key, SMTP password, proxy credentials."""
        found = [self.script_key, self.email.password or ""]
        found.extend(_proxy_credentials(self.proxy_server or ""))
        return tuple(dict.fromkeys(s for s in found if s))


def _proxy_credentials(proxy: str) -> list[str]:
    """Return the ``user:password`` part of a proxy address and the password alone."""
    rest = proxy.split("://", 1)[-1]
    userinfo = rest.rpartition("@")[0]
    if not userinfo:
        return []
    password = userinfo.partition(":")[2]
    return [userinfo, password, unquote(password)]


def find_config_path(
    explicit: str | None,
    environ: Mapping[str, str],
    *,
    argv0: str | None = None,
    etc_dir: Path = Path("/etc"),
) -> Path:
    """Return the config file: ``-c PATH``, then $SHOTGUN_EVENTS_CONFIG, then the original's places.

    The original looks next to the running script, then in /etc. A path given
    explicitly (option or variable) must exist: falling back to another file
    would run the daemon against a configuration nobody asked for.
    """
    for given, how in ((explicit, "-c/--config"), (environ.get(CONFIG_ENV), CONFIG_ENV)):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                found = "a folder" if path.is_dir() else "no such file"
                raise ConfigError(
                    f"{path}: expected a config file (given by {how}), got {found}; "
                    "fix the path or create the file from conf/shotgunEventDaemon.conf"
                )
            return path
    places: list[Path] = []
    script = sys.argv[0] if argv0 is None else argv0
    if script and script != "-c":
        places.append(Path(os.path.realpath(script)).parent / CONFIG_NAME)
    places.append(etc_dir / CONFIG_NAME)
    for place in places:
        if place.is_file():
            return place
    tried = ", ".join(str(p) for p in places)
    raise ConfigError(
        f"no {CONFIG_NAME} found (tried {tried}); "
        f"pass -c PATH, set {CONFIG_ENV}, or install the file in {etc_dir}"
    )


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and check ``path``; raise ``ConfigError`` with a one-line message."""
    return load_config_with_warnings(path, environ)[0]


def load_config_with_warnings(
    path: Path, environ: Mapping[str, str] | None = None
) -> tuple[Config, list[str]]:
    """Like ``load_config``, plus one-line warnings (unknown keys, ignored settings) to log."""
    path = Path(path).absolute()
    parser = parse_file(path, os.environ if environ is None else environ, SECRET_KEYS)
    ini = IniReader(path, parser, DEFAULTS, KNOWN_KEYS, SECRET_KEYS)
    return _build(ini), ini.warnings


def _build(ini: IniReader) -> Config:
    """Turn the file into a ``Config``, checking each key as it is read."""
    for section in _REQUIRED_SECTIONS:
        ini.require_section(section, ", ".join(k for s, k in REQUIRED if s == section))
    log_mode = ini.integer("daemon", "logMode", 0, 1)
    log_path = ini.text("daemon", "logPath")
    server = ini.text("shotgun", "server")
    url = urlsplit(server)
    if url.scheme not in ("http", "https") or not url.hostname:
        fix = "write the site address, e.g. https://mystudio.shotgunstudio.com"
        raise ini.fail("shotgun", "server", "an http(s):// site URL", server, fix)
    ca_certs = ini.text("shotgun", "ca_certs")
    start_from = ini.text("daemon", "start_from_id")
    return Config(
        path=ini.source,
        pid_file=ini.path("daemon", "pidFile"),
        event_id_file=ini.path("daemon", "eventIdFile"),
        log_mode=log_mode,
        log_path=ini.relative(log_path) if log_path else None,
        log_file=ini.text("daemon", "logFile"),
        log_level=_log_level(ini),
        timing_log=ini.boolean("daemon", "timing_log"),
        conn_retry_sleep=ini.seconds("daemon", "conn_retry_sleep"),
        max_conn_retries=ini.integer("daemon", "max_conn_retries", 1),
        fetch_interval=ini.seconds("daemon", "fetch_interval"),
        max_event_batch_size=ini.integer("daemon", "max_event_batch_size", 1, 5000),
        backlog_timeout=ini.seconds("daemon", "backlog_timeout"),
        backlog_poll_interval=ini.seconds("daemon", "backlog_poll_interval", positive=True),
        request_timeout=ini.seconds("shotgun", "timeout_secs", positive=True),
        start_from_id=ini.integer("daemon", "start_from_id") if start_from else None,
        dispatch=ini.choice("daemon", "dispatch", ("parallel", "serial")),
        stop_timeout=ini.seconds("daemon", "stop_timeout", positive=True),
        callback_timeout=ini.seconds("daemon", "callback_timeout"),
        state_fsync=ini.choice("daemon", "state_fsync", ("always", "interval", "never")),
        server=server.rstrip("/"),
        script_name=ini.text("shotgun", "name"),
        script_key=ini.text("shotgun", "key"),
        proxy_server=ini.text("shotgun", "proxy_server") or None,
        ca_certs=str(ini.relative(ca_certs)) if ca_certs else None,
        use_session_uuid=ini.boolean("shotgun", "use_session_uuid"),
        plugin_paths=_plugin_paths(ini),
        email=_email(ini),
        strict_permissions=ini.boolean("daemon", "strict_permissions"),
        callback_retries=ini.integer("daemon", "callback_retries", 0, 100),
        callback_retry_delay=ini.seconds("daemon", "callback_retry_delay"),
        callback_retry_max_delay=ini.seconds("daemon", "callback_retry_max_delay"),
        disabled_cooldown=ini.seconds("daemon", "disabled_cooldown"),
        prefilter=ini.boolean("daemon", "prefilter"),
        plugin_watch=ini.choice("plugins", "watch", ("auto", "polling", "off")),
        plugin_helper_paths=_folders(ini, "helper_paths"),
        reload_debounce=ini.seconds("plugins", "reload_debounce"),
        plugin_poll_interval=ini.seconds("plugins", "poll_interval", positive=True),
        control_socket=_control_socket(ini),
    )


def _control_socket(ini: IniReader) -> Path | None:
    """Read [daemon] control_socket; check the socket path (given or derived) fits a socket."""
    raw = ini.text("daemon", "control_socket")
    path = ini.relative(raw) if raw else None
    pid_file = ini.path("daemon", "pidFile")
    effective = path or pid_file.with_name(f"{pid_file.name}.sock")
    if len(os.fsencode(effective)) > SOCKET_PATH_LIMIT:
        raise ini.fail(
            "daemon",
            "control_socket",
            f"a socket path of at most {SOCKET_PATH_LIMIT} bytes",
            str(effective),
            "set control_socket to a shorter path (empty means the pidFile path + .sock)",
        )
    return path


def _log_level(ini: IniReader) -> int:
    # Level names (INFO, DEBUG) are a convenience of ours; the original took numbers only.
    named = logging.getLevelNamesMapping().get(ini.text("daemon", "logging").upper())
    return named if named is not None else ini.integer("daemon", "logging")


def _plugin_paths(ini: IniReader) -> tuple[Path, ...]:
    raw = ini.text("plugins", "paths")
    paths: list[Path] = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        folder = ini.relative(part)
        if folder in paths:
            ini.warnings.append(f"{ini.source}: [plugins] paths: {folder} listed twice; used once")
        else:
            paths.append(folder)
    if not paths:
        raise ini.fail(
            "plugins", "paths", "one or more plugin folders", raw, "list them, comma-separated"
        )
    return tuple(paths)


def _folders(ini: IniReader, key: str) -> tuple[Path, ...]:
    """Read an optional comma-separated list of folders from [plugins]."""
    raw = ini.text("plugins", key)
    return tuple(dict.fromkeys(ini.relative(p.strip()) for p in raw.split(",") if p.strip()))


def _email(ini: IniReader) -> EmailConfig:
    """Read [emails]; an absent key reads as its default, a disabled section as all defaults."""
    if not ini.boolean("emails", "enabled"):
        if ini.raw("emails", "to") and not ini.has("emails", "enabled"):
            # Configs older than the enabled key mailed whenever [emails] was filled in.
            ini.warnings.append(
                f"{ini.source}: [emails] enabled: missing, so error emails are off although "
                "to is set; add 'enabled = True' to send them"
            )
        # Unused settings must not stop the daemon (e.g. an unset %(SG_ED_EMAIL_PASSWORD)s).
        ini.ignore("emails")
    use_ssl = ini.boolean("emails", "useSSL")
    use_tls = ini.boolean("emails", "useTLS")
    enabled = ini.boolean("emails", "enabled")
    if enabled:
        _check_email(ini, use_ssl and use_tls)
    port = ini.integer("emails", "port", 1, 65535)
    return EmailConfig(
        enabled=enabled,
        server=ini.text("emails", "server"),
        port=SMTPS_PORT if use_ssl and not ini.raw("emails", "port") else port,
        use_tls=use_tls,
        use_ssl=use_ssl,
        username=ini.text("emails", "username") or None,
        password=ini.text("emails", "password") or None,
        sender=ini.text("emails", "from"),
        to=tuple(filter(None, (a.strip() for a in ini.text("emails", "to").split(",")))),
        subject=ini.text("emails", "subject"),
        digest_seconds=ini.seconds("emails", "digest_interval"),
        timeout=ini.seconds("emails", "timeout", positive=True),
        ca_certs=str(ini.relative(ca)) if (ca := ini.text("emails", "ca_certs")) else None,
    )


def _check_email(ini: IniReader, both_tls: bool) -> None:
    if both_tls:
        fix = "useSSL is implicit TLS (port 465), useTLS is STARTTLS (port 587): keep one"
        raise ini.fail("emails", "useSSL", "useSSL or useTLS, not both", "True", fix)
    needed = (("server", "an SMTP host"), ("from", "a sender address"), ("to", "an address"))
    for key, what in needed:
        if not ini.text("emails", key):
            fix = f"set {key} or set enabled = False"
            raise ini.fail("emails", key, f"{what} because enabled = True", None, fix)
