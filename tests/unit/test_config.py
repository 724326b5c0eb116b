"""Configuration: defaults, every key, interpolation, one-line errors, lookup, permissions."""

from __future__ import annotations

import inspect
import os
import re
import textwrap
from dataclasses import MISSING, fields, replace
from pathlib import Path

import pytest

from shotgun_events import wiring
from shotgun_events.client.connections import ConnectionPool
from shotgun_events.client.pool import CredentialPool
from shotgun_events.config.celery_section import CeleryConfig
from shotgun_events.config.checks import permission_warnings, validate_paths
from shotgun_events.config.load import (
    CONFIG_ENV,
    find_config_path,
    load_config,
    load_config_with_warnings,
)
from shotgun_events.config.model import DEFAULTS, REQUIRED, Config, WebhookConfig
from shotgun_events.config.reference import render
from shotgun_events.delivery.failures import RetryPolicy
from shotgun_events.engine.settings import Settings
from shotgun_events.errors import ConfigError
from shotgun_events.notify.mailer import EmailNotifier
from shotgun_events.plugins.watcher import PluginWatcher
from shotgun_events.state.store import StateStore
from tests.unit.fakes import DISPATCH_MODES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "conf" / "shotgunEventDaemon.conf"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

MINIMAL = """\
[daemon]
pidFile = /run/sed/sed.pid
eventIdFile = /var/lib/sed/state.json
logFile = /var/log/sed/main.log

[shotgun]
server = https://studio.example.com
name = daemon
key = s3cr3t-key

[plugins]
paths = /srv/plugins
"""


def write(folder: Path, text: str, name: str = "sed.conf") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def replace_key(text: str, section: str, key: str, value: str | None) -> str:
    """Return ``text`` with ``key`` in ``section`` set to ``value`` (None: removed)."""
    lines, current, done = [], "", False
    for line in text.splitlines():
        if line.startswith("["):
            if current == section and not done and value is not None:
                lines.append(f"{key} = {value}")
                done = True
            current = line.strip("[]")
        elif current == section and line.split("=")[0].strip() == key:
            done = True
            if value is not None:
                lines.append(f"{key} = {value}")
            continue
        lines.append(line)
    if current == section and not done and value is not None:
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def load_with(tmp_path: Path, section: str, key: str, value: str | None) -> Config:
    return load_config(write(tmp_path, replace_key(MINIMAL, section, key, value)), environ={})


# --- defaults and parsing ---------------------------------------------------


def test_structures_built_from_the_config_default_to_the_shipped_values(tmp_path: Path) -> None:
    # Given a file with only the required keys, loaded
    config = load_config(write(tmp_path, MINIMAL), environ={})
    # Then every field of Config with a default has the loaded (shipped) value
    for f in fields(Config):
        if f.default is not MISSING:
            assert getattr(config, f.name) == f.default, f.name
    assert config.celery == CeleryConfig()
    assert config.webhooks == WebhookConfig()
    # And what the daemon builds from it equals what code gets that names no value:
    # the engine runs the shipped mode, the retry policy the shipped retries
    assert wiring.engine_settings(config, None) == Settings()
    assert Settings().dispatch == DEFAULTS["daemon", "dispatch"] == DISPATCH_MODES[0]
    assert Settings().read_ahead == int(DEFAULTS["daemon", "read_ahead"]) > 1
    assert RetryPolicy() == RetryPolicy(
        retries=config.callback_retries,
        delay=config.callback_retry_delay,
        max_delay=config.callback_retry_max_delay,
    )
    for cls, argument, value in (
        (PluginWatcher, "debounce", config.reload_debounce),
        (PluginWatcher, "poll_interval", config.plugin_poll_interval),
        (ConnectionPool, "max_per_script", config.max_connections_per_script),
        (CredentialPool, "max_size", config.max_connections_per_script),
        (StateStore, "fsync", config.state_fsync),
        (EmailNotifier, "digest_seconds", config.email.digest_seconds),
        (EmailNotifier, "timeout", config.email.timeout),
    ):
        default = inspect.signature(cls).parameters[argument].default
        assert default == value, f"{cls.__name__}({argument}=...)"


def test_minimal_file_gets_every_default(tmp_path: Path) -> None:
    # Given a file with only the required keys
    path = write(tmp_path, MINIMAL)
    # When it is loaded
    config, warnings = load_config_with_warnings(path, environ={})
    # Then every optional setting has its documented default and nothing is warned about
    assert warnings == []
    assert (config.log_mode, config.log_path, config.log_level) == (1, None, 20)
    assert (config.timing_log, config.conn_retry_sleep, config.max_conn_retries) == (False, 60, 5)
    assert (config.fetch_interval, config.max_event_batch_size) == (5, 500)
    assert (config.backlog_timeout, config.backlog_poll_interval) == (300, 5)
    assert (config.request_timeout, config.start_from_id, config.dispatch) == (60, None, "auto")
    assert (config.max_connections_per_script, config.read_ahead) == (8, 4)
    assert config.max_calls_per_second == 0  # no ceiling on plugins' site calls
    assert (config.stop_timeout, config.callback_timeout) == (30, 0)
    assert (config.state_fsync, config.strict_permissions) == ("interval", False)
    assert (config.proxy_server, config.ca_certs, config.use_session_uuid) == (None, None, True)
    email = config.email
    assert (email.enabled, email.port, email.use_tls, email.use_ssl) == (False, 25, False, False)
    assert (email.subject, email.digest_seconds, email.timeout) == ("[shotgunEvents]", 300, 30)
    assert (email.username, email.password, email.to) == (None, None, ())
    # And the file's folder-independent paths are kept as written
    assert config.path == path
    assert config.log_file_path == Path("/var/log/sed/main.log")


def test_defaults_table_matches_the_parsed_defaults(tmp_path: Path) -> None:
    # Given the defaults table and a minimal file
    config = load_config(write(tmp_path, MINIMAL), environ={})
    # Then the numbers in the table are the ones the loader used (one source of truth)
    assert float(DEFAULTS[("daemon", "backlog_timeout")]) == config.backlog_timeout
    assert int(DEFAULTS[("daemon", "max_event_batch_size")]) == config.max_event_batch_size
    assert float(DEFAULTS[("emails", "digest_interval")]) == config.email.digest_seconds
    assert DEFAULTS[("emails", "subject")] == config.email.subject


FULL = """\
[daemon]
pidFile: /run/sed/sed.pid
eventIdFile: /var/lib/sed/state.json
logMode: 0
logPath: /var/log/sed
logFile: engine
logging: 10
timing_log: on
conn_retry_sleep = 2.5
max_conn_retries = 3
fetch_interval = 0.5
max_event_batch_size = 1000
backlog_timeout = 120
backlog_poll_interval = 1.5
start_from_id = 42
dispatch = Serial
stop_timeout = 10
callback_timeout = 90
max_calls_per_second = 12.5
state_fsync = always
strict_permissions = yes

[shotgun]
server = https://studio.example.com/
name = daemon
key = s3cr3t-key
proxy_server = bob:pr0xy-pass@proxy.example.com:3128
use_session_uuid = False
timeout_secs = 15
ca_certs = /etc/ssl/site.pem

[plugins]
paths = /srv/a, /srv/b ,/srv/c

[emails]
enabled = True
server = smtp.example.com
port = 587
useTLS = True
username = mailer
password = m@il-pass
from = daemon@example.com
to = a@example.com, b@example.com
subject = [SG]
digest_interval = 60
timeout = 5
"""


def test_every_key_is_parsed(tmp_path: Path) -> None:
    # Given a file that sets every key to a non-default value
    config, warnings = load_config_with_warnings(write(tmp_path, FULL), environ={})
    # Then each value lands in its field, typed
    assert warnings == []
    assert config.pid_file == Path("/run/sed/sed.pid")
    assert config.event_id_file == Path("/var/lib/sed/state.json")
    assert (config.log_mode, config.log_path, config.log_file) == (
        0,
        Path("/var/log/sed"),
        "engine",
    )
    assert config.log_file_path == Path("/var/log/sed/engine")
    assert (config.log_level, config.timing_log) == (10, True)
    assert (config.conn_retry_sleep, config.max_conn_retries, config.fetch_interval) == (
        2.5,
        3,
        0.5,
    )
    assert (config.max_event_batch_size, config.backlog_timeout) == (1000, 120)
    assert (config.backlog_poll_interval, config.start_from_id) == (1.5, 42)
    assert (config.dispatch, config.stop_timeout, config.callback_timeout) == ("serial", 10, 90)
    assert (config.state_fsync, config.strict_permissions) == ("always", True)
    assert config.max_calls_per_second == 12.5
    assert (config.server, config.script_name, config.script_key) == (
        "https://studio.example.com",
        "daemon",
        "s3cr3t-key",
    )
    assert config.proxy_server == "bob:pr0xy-pass@proxy.example.com:3128"
    assert (config.use_session_uuid, config.request_timeout) == (False, 15)
    assert config.ca_certs == "/etc/ssl/site.pem"
    assert config.plugin_paths == (Path("/srv/a"), Path("/srv/b"), Path("/srv/c"))
    email = config.email
    assert (email.enabled, email.server, email.port) == (True, "smtp.example.com", 587)
    assert (email.use_tls, email.use_ssl) == (True, False)
    assert (email.username, email.password) == ("mailer", "m@il-pass")
    assert (email.sender, email.to) == ("daemon@example.com", ("a@example.com", "b@example.com"))
    assert (email.subject, email.digest_seconds, email.timeout) == ("[SG]", 60, 5)


def test_use_ssl_defaults_the_port_to_465_unless_written(tmp_path: Path) -> None:
    # Given email over SMTPS without a port, then with one
    text = FULL.replace("useTLS = True", "useSSL = True").replace("port = 587\n", "")
    # When loaded
    implicit = load_config(write(tmp_path, text), environ={})
    explicit = load_config(write(tmp_path, text + "port = 2465\n"), environ={})
    # Then the SMTPS port is the default, and a written port wins
    assert (implicit.email.use_ssl, implicit.email.port) == (True, 465)
    assert explicit.email.port == 2465


def test_log_level_accepts_names(tmp_path: Path) -> None:
    # Given logging written as a level name
    config = load_with(tmp_path, "daemon", "logging", "warning")
    # Then it is the matching number
    assert config.log_level == 30


def test_keys_match_ignoring_case_like_the_original(tmp_path: Path) -> None:
    # Given keys spelled in another case (the original lower-cased every key)
    text = MINIMAL.replace("pidFile", "pidfile").replace("logFile", "LOGFILE")
    # When loaded
    config, warnings = load_config_with_warnings(write(tmp_path, text), environ={})
    # Then they are read as the known keys, without warnings
    assert config.pid_file == Path("/run/sed/sed.pid")
    assert config.log_file == "/var/log/sed/main.log"
    assert warnings == []


def test_unknown_keys_and_sections_are_warnings_not_errors(tmp_path: Path) -> None:
    # Given an old config with extra keys and a [proxy] section
    text = MINIMAL + "[proxy]\nhttp_proxy = x\n"
    text = replace_key(text, "daemon", "plugin_backlog_alert_threshold", "1000")
    # When loaded
    config, warnings = load_config_with_warnings(write(tmp_path, text), environ={})
    # Then it loads, and each extra is named in one warning line
    assert config.script_name == "daemon"
    assert warnings == [
        f"{tmp_path / 'sed.conf'}: [daemon] plugin_backlog_alert_threshold: unknown key, ignored",
        f"{tmp_path / 'sed.conf'}: [proxy]: unknown section, ignored",
    ]


def test_filled_emails_section_without_enabled_warns_that_mail_is_off(tmp_path: Path) -> None:
    # Given an [emails] section from before the enabled key existed
    text = MINIMAL + "[emails]\nserver = smtp.example.com\nfrom = d@x.com\nto = a@x.com\n"
    # When loaded
    config, warnings = load_config_with_warnings(write(tmp_path, text), environ={})
    # Then emails are off and the operator is told how to turn them on
    assert config.email.enabled is False
    assert warnings == [
        f"{tmp_path / 'sed.conf'}: [emails] enabled: missing, so error emails are off "
        "although to is set; add 'enabled = True' to send them"
    ]


def test_disabled_emails_section_is_ignored_even_with_unset_variables(tmp_path: Path) -> None:
    # Given emails switched off, with credentials taken from variables that are not set
    text = MINIMAL + "[emails]\nenabled = False\npassword = %(SG_ED_EMAIL_PASSWORD)s\nport = x\n"
    # When loaded
    config = load_config(write(tmp_path, text), environ={})
    # Then nothing of the section is required or checked
    assert config.email.enabled is False
    assert config.email.password is None


# --- interpolation ----------------------------------------------------------


def test_values_interpolate_from_the_environment(tmp_path: Path) -> None:
    # Given the original's %(NAME)s references
    text = (
        MINIMAL.replace("https://studio.example.com", "%(SG_ED_SITE_URL)s")
        .replace("name = daemon", "name = %(SG_ED_SCRIPT_NAME)s")
        .replace("s3cr3t-key", "%(SG_ED_API_KEY)s")
    )
    env = {
        "SG_ED_SITE_URL": "https://env.example.com",
        "SG_ED_SCRIPT_NAME": "env-script",
        "SG_ED_API_KEY": "abc%def",
    }
    # When loaded with those variables set
    config = load_config(write(tmp_path, text), environ=env)
    # Then the values come from the environment, a % in a variable taken literally
    assert (config.server, config.script_name) == ("https://env.example.com", "env-script")
    assert config.script_key == "abc%def"


def test_same_section_keys_win_over_the_environment_and_double_percent_is_literal(
    tmp_path: Path,
) -> None:
    # Given a value built from another key of the section, and a password with %%
    text = replace_key(MINIMAL, "daemon", "logPath", "/var/log/sed")
    text = replace_key(text, "daemon", "eventIdFile", "%(logPath)s/state.json")
    text = replace_key(text, "shotgun", "key", "100%%-secret")
    # When loaded with an environment variable of the same name as the key
    config = load_config(write(tmp_path, text), environ={"logPath": "/wrong"})
    # Then the section's own key is used, and %% is one %
    assert config.event_id_file == Path("/var/log/sed/state.json")
    assert config.script_key == "100%-secret"


def test_missing_variable_is_an_error_naming_file_section_key_and_variable(
    tmp_path: Path,
) -> None:
    # Given a reference to a variable that is not set
    path = write(tmp_path, replace_key(MINIMAL, "shotgun", "key", "%(SG_ED_API_KEY)s"))
    # When loaded
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"OTHER": "x"})
    # Then the one-line message says which variable to set, and where
    assert str(caught.value) == (
        f"{path}: [shotgun] key: expected environment variable SG_ED_API_KEY to be set, "
        "got nothing; set SG_ED_API_KEY in the environment or write the value in the file"
    )


def test_environment_variables_do_not_become_config_keys(tmp_path: Path) -> None:
    # Given an environment with variables named like config keys
    env = {"pidFile": "/tmp/from-env.pid", "logMode": "0", "dispatch": "serial"}
    # When a file without those keys is loaded
    config = load_config(write(tmp_path, MINIMAL), environ=env)
    with pytest.raises(ConfigError, match=r"\[daemon\] pidFile: expected a value"):
        load_with(tmp_path, "daemon", "pidFile", None)
    # Then the environment did not fill them in (the original's defaults would have)
    assert (config.log_mode, config.dispatch) == (1, "auto")


def test_a_lone_percent_in_a_secret_is_an_error_that_hides_the_value(tmp_path: Path) -> None:
    # Given a key with a single % (must be written %%)
    path = write(tmp_path, replace_key(MINIMAL, "shotgun", "key", "ab%cd"))
    # When loaded
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    # Then the error explains %% and does not show the secret
    assert str(caught.value) == (
        f"{path}: [shotgun] key: expected '%%' or '%(NAME)s' at every '%', got a value "
        "that is not shown because it is secret; write a literal % as %%"
    )
    assert "ab%cd" not in str(caught.value)


# --- one-line validation errors ---------------------------------------------

URL_FIX = "write the site address, e.g. https://mystudio.shotgunstudio.com"
WHOLE, SECONDS = "a whole number", "a number of seconds"
RATE = "a number of calls per second >= 0 (0: no limit)"


@pytest.mark.parametrize(("section", "key"), REQUIRED)
def test_each_missing_required_key_gives_one_exact_line(
    tmp_path: Path, section: str, key: str
) -> None:
    # Given a minimal file without one required key
    path = write(tmp_path, replace_key(MINIMAL, section, key, None))
    # When it is loaded
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    # Then the error names file, section and key, and how to add it
    assert str(caught.value) == (
        f"{path}: [{section}] {key}: expected a value, got nothing; "
        f"add '{key} = ...' to the [{section}] section"
    )
    assert caught.value.exit_code == 78


@pytest.mark.parametrize(
    ("section", "key", "value", "expected", "fix"),
    [
        ("daemon", "logMode", "2", f"{WHOLE} between 0 and 1", "the default is 1"),
        ("daemon", "max_conn_retries", "three", f"{WHOLE} >= 1", "the default is 5"),
        ("daemon", "max_event_batch_size", "0", f"{WHOLE} between 1 and 5000",
         "the default is 500"),
        ("daemon", "start_from_id", "-3", f"{WHOLE} >= 0", "fix start_from_id in [daemon]"),
        ("daemon", "logging", "loud", f"{WHOLE} >= 0", "the default is 20"),
        ("daemon", "fetch_interval", "-1", f"{SECONDS} >= 0", "the default is 5"),
        ("daemon", "conn_retry_sleep", "nan", f"{SECONDS} >= 0", "the default is 60"),
        ("shotgun", "timeout_secs", "0", f"{SECONDS} > 0", "the default is 60"),
        ("daemon", "max_calls_per_second", "-2", RATE, "the default is 0"),
        ("daemon", "max_calls_per_second", "10/s", RATE, "the default is 0"),
        ("daemon", "max_calls_per_second", "inf", RATE, "the default is 0"),
        (
            "daemon",
            "dispatch",
            "threads",
            "'auto' or 'parallel' or 'serial' or 'celery'",
            "the default is auto",
        ),
        ("daemon", "state_fsync", "sometimes", "'always' or 'interval' or 'never'",
         "the default is interval"),
        ("daemon", "timing_log", "maybe", "true or false (or yes/no, on/off, 1/0)",
         "the default is off"),
        ("shotgun", "server", "studio.example.com", "an http(s):// site URL", URL_FIX),
        ("shotgun", "server", "ftp://studio.example.com", "an http(s):// site URL", URL_FIX),
        ("shotgun", "server", "$SHOTGUN_URL$", "an http(s):// site URL", URL_FIX),
        ("plugins", "paths", ",", "one or more plugin folders", "list them, comma-separated"),
    ],
)  # fmt: skip
def test_each_bad_value_gives_one_exact_line(
    tmp_path: Path, section: str, key: str, value: str, expected: str, fix: str
) -> None:
    # Given a minimal file with one wrong value
    path = write(tmp_path, replace_key(MINIMAL, section, key, value))
    # When it is loaded
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    # Then the error is exactly one line naming file, section, key, the value and the fix
    assert (
        str(caught.value) == f"{path}: [{section}] {key}: expected {expected}, got '{value}'; {fix}"
    )
    assert caught.value.exit_code == 78


@pytest.mark.parametrize("section", ["daemon", "shotgun", "plugins"])
def test_missing_section(tmp_path: Path, section: str) -> None:
    # Given a file without one of the required sections
    text = re.sub(rf"\[{section}\]\n(.+\n)+", "", MINIMAL)
    path = write(tmp_path, text)
    # When loaded
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    # Then the error names the section and the keys it needs
    keys = ", ".join(k for s, k in REQUIRED if s == section)
    assert str(caught.value) == (
        f"{path}: [{section}]: expected this section, got nothing; "
        f"add a [{section}] section with {keys}"
    )


@pytest.mark.parametrize(
    ("remove", "what"),
    [("server", "an SMTP host"), ("to", "an address"), ("from", "a sender address")],
)
def test_enabled_emails_need_server_from_and_to(tmp_path: Path, remove: str, what: str) -> None:
    # Given emails enabled with one of the needed keys missing
    path = write(tmp_path, replace_key(FULL, "emails", remove, None))
    # When loaded
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    # Then the message names the key and both ways out
    assert str(caught.value) == (
        f"{path}: [emails] {remove}: expected {what} because enabled = True, got nothing; "
        f"set {remove} or set enabled = False"
    )


def test_enabled_emails_with_both_tls_modes_is_an_error(tmp_path: Path) -> None:
    # Given STARTTLS and implicit TLS both switched on
    path = write(tmp_path, replace_key(FULL, "emails", "useSSL", "True"))
    # When loaded
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    # Then the error explains the two modes
    assert str(caught.value) == (
        f"{path}: [emails] useSSL: expected useSSL or useTLS, not both, got 'True'; "
        "useSSL is implicit TLS (port 465), useTLS is STARTTLS (port 587): keep one"
    )


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    # Given a path with no file, and a folder instead of a file
    missing = tmp_path / "nope.conf"
    # When loaded / Then the error names the path and the reason on one line
    with pytest.raises(ConfigError) as caught:
        load_config(missing, environ={})
    assert str(caught.value) == (
        f"{missing}: expected a readable config file, got 'No such file or directory'; "
        "check the path and that the daemon's user may read it"
    )
    with pytest.raises(ConfigError, match=r"got 'Is a directory'"):
        load_config(tmp_path, environ={})


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their mode")
def test_file_without_read_permission(tmp_path: Path) -> None:
    # Given a config the daemon's user may not read
    path = write(tmp_path, MINIMAL)
    path.chmod(0)
    # When loaded / Then the error says so
    with pytest.raises(ConfigError, match=r"got 'Permission denied'"):
        load_config(path, environ={})


def test_file_that_is_not_ini(tmp_path: Path) -> None:
    # Given a JSON file, a file with a broken line holding a secret, and binary data
    json_file = write(tmp_path, '{"daemon": {}}\n', "a.conf")
    broken = write(tmp_path, MINIMAL + "hunter2-password-line\n", "b.conf")
    binary = tmp_path / "c.conf"
    binary.write_bytes(b"\xff\xfe\x00binary")
    # When each is loaded / Then the error is one line and never quotes the line's text
    with pytest.raises(ConfigError) as caught:
        load_config(json_file, environ={})
    assert str(caught.value) == (
        f"{json_file}: line 1: expected a '[section]' header first, got a line outside any "
        "section; start the file with [daemon] (is this an INI file?)"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(broken, environ={})
    assert str(caught.value) == (
        f"{broken}: line 13: expected '[section]' or 'key = value', got neither; "
        "fix the line or comment it out with #"
    )
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(binary, environ={})


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    # Given the same key twice, once in another case, and a file with an exact repeat
    other_case = write(tmp_path, MINIMAL.replace("[shotgun]", "PIDFILE = /x\n\n[shotgun]"))
    repeated = write(tmp_path, MINIMAL.replace("[shotgun]", "pidFile = /x\n\n[shotgun]"), "r.conf")
    # When loaded / Then the key and the repeat are named
    with pytest.raises(ConfigError) as caught:
        load_config(other_case, environ={})
    assert str(caught.value) == (
        f"{other_case}: [daemon] pidFile: expected once, got it again as PIDFILE; "
        "remove one of them"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(repeated, environ={})
    assert str(caught.value) == (
        f"{repeated}: [daemon] pidFile: expected once, got it again at line 6; remove one of them"
    )


# --- paths ------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given relative paths, and a current directory elsewhere (a daemon's is /)
    text = (
        MINIMAL.replace("/run/sed/sed.pid", "run/sed.pid")
        .replace("/var/lib/sed/state.json", "../state.json")
        .replace("logFile = /var/log/sed/main.log", "logFile = main.log\nlogPath = logs")
        .replace("/srv/plugins", "plugins, ~/more")
    )
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    monkeypatch.chdir("/")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # When loaded
    config = load_config(write(conf_dir, text), environ={})
    # Then they resolve against the file's folder (and ~ against HOME)
    assert config.pid_file == conf_dir / "run" / "sed.pid"
    assert config.event_id_file == tmp_path / "state.json"
    assert config.log_file_path == conf_dir / "logs" / "main.log"
    assert config.plugin_paths == (conf_dir / "plugins", tmp_path / "home" / "more")


def test_log_file_without_log_path_is_relative_to_the_config(tmp_path: Path) -> None:
    # Given only a bare log file name
    config = load_with(tmp_path, "daemon", "logFile", "daemon.log")
    # Then it sits next to the config, and so do per-plugin logs
    assert config.log_file_path == tmp_path / "daemon.log"
    assert config.log_dir == tmp_path


def test_duplicate_plugin_paths_are_used_once_with_a_warning(tmp_path: Path) -> None:
    # Given the same folder listed twice
    text = replace_key(MINIMAL, "plugins", "paths", "/srv/a, /srv/b, /srv/a/")
    config, warnings = load_config_with_warnings(write(tmp_path, text), environ={})
    # Then order is kept, the duplicate dropped and reported
    assert config.plugin_paths == (Path("/srv/a"), Path("/srv/b"))
    assert warnings == [f"{tmp_path / 'sed.conf'}: [plugins] paths: /srv/a listed twice; used once"]


def usable_config(tmp_path: Path) -> Config:
    (tmp_path / "plugins").mkdir()
    text = (
        MINIMAL.replace("/run/sed/sed.pid", "sed.pid")
        .replace("/var/lib/sed/state.json", "state.json")
        .replace("logFile = /var/log/sed/main.log", "logFile = main.log\nlogPath = logs/deep")
        .replace("/srv/plugins", "plugins")
    )
    return load_config(write(tmp_path, text), environ={})


def test_validate_paths_creates_the_log_folder(tmp_path: Path) -> None:
    # Given usable paths and a log folder that does not exist yet
    config = usable_config(tmp_path)
    # When the paths are checked
    validate_paths(config)
    # Then the log folder exists
    assert (tmp_path / "logs" / "deep").is_dir()


def test_validate_paths_rejects_a_missing_plugin_folder(tmp_path: Path) -> None:
    # Given a plugin folder that does not exist
    config = usable_config(tmp_path)
    (tmp_path / "plugins").rmdir()
    # When checked / Then the error names the key, the folder and the fix
    with pytest.raises(ConfigError) as caught:
        validate_paths(config)
    assert str(caught.value) == (
        f"{config.path}: [plugins] paths: expected readable plugin folders, got "
        f"'{tmp_path / 'plugins'}'; create the folder, fix the path, or remove it from the "
        "comma-separated list"
    )


def test_validate_paths_rejects_a_missing_state_folder_and_a_folder_as_file(
    tmp_path: Path,
) -> None:
    # Given a state file in a folder that does not exist
    config = usable_config(tmp_path)
    moved = replace(config, event_id_file=tmp_path / "no" / "state.json")
    with pytest.raises(ConfigError, match=r"\[daemon\] eventIdFile: expected a file in a writable"):
        validate_paths(moved)
    # And a pid file path that is a folder
    (tmp_path / "sed.pid").mkdir()
    with pytest.raises(ConfigError, match=r"\[daemon\] pidFile: expected a writable file"):
        validate_paths(config)


def test_validate_paths_rejects_a_missing_ca_bundle(tmp_path: Path) -> None:
    # Given a CA bundle path with no file
    config = usable_config(tmp_path)
    config = replace(config, ca_certs=str(tmp_path / "ca.pem"))
    with pytest.raises(ConfigError, match=r"\[shotgun\] ca_certs: expected a readable CA bundle"):
        validate_paths(config)


# --- finding the file -------------------------------------------------------


def test_find_config_path_order(tmp_path: Path) -> None:
    # Given a config in each place
    explicit = write(tmp_path, MINIMAL, "explicit.conf")
    from_env = write(tmp_path, MINIMAL, "env.conf")
    script_dir, etc = tmp_path / "bin", tmp_path / "etc"
    script_dir.mkdir()
    etc.mkdir()
    beside = write(script_dir, MINIMAL, "shotgunEventDaemon.conf")
    in_etc = write(etc, MINIMAL, "shotgunEventDaemon.conf")
    script = str(script_dir / "shotgunEventDaemon")
    env = {CONFIG_ENV: str(from_env)}
    # When looked up with fewer and fewer hints / Then the first place found wins
    assert find_config_path(str(explicit), env, argv0=script, etc_dir=etc) == explicit
    assert find_config_path(None, env, argv0=script, etc_dir=etc) == from_env
    assert find_config_path(None, {}, argv0=script, etc_dir=etc) == beside
    beside.unlink()
    assert find_config_path(None, {}, argv0=script, etc_dir=etc) == in_etc
    in_etc.unlink()
    with pytest.raises(ConfigError) as caught:
        find_config_path(None, {}, argv0=script, etc_dir=etc)
    assert str(caught.value) == (
        f"no shotgunEventDaemon.conf found (tried {script_dir / 'shotgunEventDaemon.conf'}, "
        f"{etc / 'shotgunEventDaemon.conf'}); pass -c PATH, set {CONFIG_ENV}, "
        f"or install the file in {etc}"
    )


def test_an_explicit_path_that_does_not_exist_never_falls_back(tmp_path: Path) -> None:
    # Given a config in /etc but a wrong explicit path
    write(tmp_path, MINIMAL, "shotgunEventDaemon.conf")
    wrong = tmp_path / "typo.conf"
    # When looked up by option, then by variable / Then it is an error, not the /etc file
    with pytest.raises(ConfigError, match=r"given by -c/--config\), got no such file"):
        find_config_path(str(wrong), {}, argv0="", etc_dir=tmp_path)
    with pytest.raises(ConfigError, match=rf"given by {CONFIG_ENV}\), got no such file"):
        find_config_path(None, {CONFIG_ENV: str(wrong)}, argv0="", etc_dir=tmp_path)


# --- the shipped file -------------------------------------------------------

SHIPPED_ENV = {
    "SG_ED_SITE_URL": "https://studio.example.com",
    "SG_ED_SCRIPT_NAME": "shotgunEventDaemon",
    "SG_ED_API_KEY": "0123456789abcdef",
}


def test_shipped_config_loads_with_the_documented_variables() -> None:
    # Given the three site variables the shipped file refers to
    config, warnings = load_config_with_warnings(SHIPPED, environ=SHIPPED_ENV)
    # Then it loads as a service install, every value at its default
    assert warnings == []
    assert config.server == "https://studio.example.com"
    assert config.script_key == "0123456789abcdef"
    assert config.pid_file == Path("/run/shotgunEventDaemon/shotgunEventDaemon.pid")
    assert config.event_id_file == Path("/var/lib/shotgunEventDaemon/state.json")
    assert config.log_file_path == Path("/var/log/shotgunEventDaemon/shotgunEventDaemon")
    assert config.plugin_paths == (Path("/usr/local/shotgun/plugins"),)


def test_shipped_config_without_the_variables_names_the_first_missing_one() -> None:
    with pytest.raises(ConfigError, match="set SG_ED_SITE_URL in the environment"):
        load_config(SHIPPED, environ={})


def test_shipped_config_email_credentials_work_when_uncommented(tmp_path: Path) -> None:
    # Given the shipped file with emails on and the credential lines uncommented
    text = SHIPPED.read_text(encoding="utf-8")
    text = text.replace("enabled = False", "enabled = True")
    text = text.replace("#username =", "username =").replace("#password =", "password =")
    env = {**SHIPPED_ENV, "SG_ED_EMAIL_USERNAME": "mailer", "SG_ED_EMAIL_PASSWORD": "p%ss"}
    # When loaded
    config = load_config(write(tmp_path, text), environ=env)
    # Then the credentials come from the environment
    assert (config.email.username, config.email.password) == ("mailer", "p%ss")


@pytest.mark.parametrize("document", ["shipped config", "reference page"])
def test_every_key_is_documented(document: str) -> None:
    # Given the shipped file, and the reference page the documentation site is built with
    text = SHIPPED.read_text(encoding="utf-8") if document == "shipped config" else render()
    # Then each known key appears in it, as a (commented) line or as a row of a table
    for _section, key in [*REQUIRED, *DEFAULTS]:
        assert re.search(rf"(^#?{key} =|\| `{key}` \|)", text, re.M), key


# --- permissions and secrets ------------------------------------------------


def test_permission_warnings(tmp_path: Path) -> None:
    # Given a config holding its key in clear, and plugins, all open to other users
    config = usable_config(tmp_path)
    plugin = tmp_path / "plugins" / "hook.py"
    plugin.write_text("")
    (tmp_path / "plugins" / "_private.py").write_text("")
    config.path.chmod(0o666)
    (tmp_path / "plugins").chmod(0o777)
    plugin.chmod(0o666)
    (tmp_path / "plugins" / "_private.py").chmod(0o666)
    # When checked
    found = permission_warnings(config)
    # Then each risk is one line naming the path and the fix (skipped files are not checked)
    assert [line.split(";")[0] for line in found] == [
        f"{config.path}: writable by other users, who could point the daemon at their own plugins",
        f"{config.path}: readable by other users and holds a secret in clear",
        f"{tmp_path / 'plugins'}: plugin folder writable by other users, who could add code "
        "the daemon runs",
        f"{plugin}: plugin writable by other users, who could change code the daemon runs",
    ]
    # And once tightened, nothing is reported
    config.path.chmod(0o600)
    (tmp_path / "plugins").chmod(0o755)
    plugin.chmod(0o644)
    assert permission_warnings(config) == []


def test_readable_config_without_literal_secrets_is_fine(tmp_path: Path) -> None:
    # Given a world-readable config whose key comes from the environment
    text = replace_key(MINIMAL, "shotgun", "key", "%(SG_ED_API_KEY)s")
    path = write(tmp_path, text)
    path.chmod(0o644)
    config = load_config(path, environ={"SG_ED_API_KEY": "from-env"})
    # Then there is nothing to warn about
    assert permission_warnings(config) == []


def test_secrets_stay_out_of_repr_and_are_listed_for_scrubbing(tmp_path: Path) -> None:
    # Given a config with a script key, SMTP password and proxy credentials
    config = load_config(write(tmp_path, FULL), environ={})
    # When it is printed (as in a debug log)
    shown = repr(config)
    # Then no secret appears, and all of them are listed for log scrubbing
    for secret in ("s3cr3t-key", "m@il-pass", "pr0xy-pass"):
        assert secret not in shown
        assert secret in config.secrets
    assert "bob:pr0xy-pass" in config.secrets
