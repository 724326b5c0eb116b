"""Finding and reading the config file into one ``Config``, checking each key as it is read."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from shotgun_events.config.celery_section import CeleryConfig, read_celery_section
from shotgun_events.config.http_section import read_http
from shotgun_events.config.ini import IniReader, parse_file
from shotgun_events.config.model import (
    DEFAULTS,
    KNOWN_KEYS,
    REQUIRED,
    SECRET_KEYS,
    SMTPS_PORT,
    SOCKET_PATH_LIMIT,
    Config,
    EmailConfig,
)
from shotgun_events.config.plugin_sections import (
    EXECUTORS,
    PluginSettings,
    known_plugin_keys,
    read_plugin_sections,
)
from shotgun_events.config.webhooks import read_active_interval, read_webhooks
from shotgun_events.errors import ConfigError

__all__ = ["CONFIG_ENV", "find_config_path", "load_config", "load_config_with_warnings"]

#: Environment variable naming the config file (after ``-c/--config``).
CONFIG_ENV = "SHOTGUN_EVENTS_CONFIG"
CONFIG_NAME = "shotgunEventDaemon.conf"
_REQUIRED_SECTIONS = ("daemon", "shotgun", "plugins")


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
    known = KNOWN_KEYS | known_plugin_keys(parser.sections())
    ini = IniReader(path, parser, DEFAULTS, known, SECRET_KEYS)
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
    dispatch, executor = _dispatch_and_executor(ini)
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
        dispatch=dispatch,
        executor=executor,
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
        plugin_config_dir_on_path=ini.boolean("plugins", "config_dir_on_path"),
        control_socket=_control_socket(ini),
        max_connections_per_script=ini.integer("daemon", "max_connections_per_script", 1, 256),
        read_ahead=ini.integer("daemon", "read_ahead", 1, 32),
        max_calls_per_second=ini.per_second("daemon", "max_calls_per_second"),
        plugin_settings=(plugin_settings := read_plugin_sections(ini)),
        http=read_http(ini),
        active_fetch_interval=read_active_interval(ini),
        webhooks=read_webhooks(ini),
        celery=_celery(ini, plugin_settings),
    )


def _dispatch_and_executor(ini: IniReader) -> tuple[str, str]:
    """``[daemon] dispatch`` and ``executor``; the old ``dispatch = celery`` is executor celery."""
    dispatch = ini.choice("daemon", "dispatch", ("auto", "parallel", "serial", "celery"))
    executor = ini.choice("daemon", "executor", EXECUTORS)
    if dispatch == "celery":
        ini.warnings.append(
            f"[daemon] dispatch = celery in {ini.source} is deprecated: write executor = celery "
            "(and leave dispatch at auto); it is read as that"
        )
        return "auto", "celery"
    return dispatch, executor


def _celery(ini: IniReader, plugin_settings: Mapping[str, PluginSettings]) -> CeleryConfig:
    """Read [celery] when it is there or some plugin runs on Celery; else ignore it."""
    used = ini.raw("daemon", "dispatch").strip().lower() == "celery"
    used = used or ini.raw("daemon", "executor").strip().lower() == "celery"
    used = used or any(s.executor == "celery" for s in plugin_settings.values())
    if not used and not ini.parser.has_section("celery"):
        return CeleryConfig()
    return read_celery_section(ini)


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
