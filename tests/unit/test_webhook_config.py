"""[webhooks] and [daemon] active_fetch_interval: defaults, checks, one-line errors, secrets."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shotgun_events.config.load import load_config
from shotgun_events.errors import ConfigError

BASE = """\
[daemon]
pidFile = /run/sed/sed.pid
eventIdFile = /var/lib/sed/state.json
logFile = /var/log/sed/main.log
{daemon}

[shotgun]
server = https://studio.example.com
name = daemon
key = s3cr3t-key

[plugins]
paths = /srv/plugins

{webhooks}
"""


def config_file(tmp_path: Path, *, daemon: str = "", webhooks: str = "") -> Path:
    path = tmp_path / "sed.conf"
    path.write_text(BASE.format(daemon=daemon, webhooks=textwrap.dedent(webhooks)))
    return path


def test_defaults_adaptive_on_webhooks_off(tmp_path: Path) -> None:
    # Given a config without the new keys
    config = load_config(config_file(tmp_path), environ={})
    # Then adaptive polling uses 1 s and no receiver is configured
    assert config.active_fetch_interval == 1.0
    assert not config.webhooks.enabled


def test_an_unused_webhooks_section_needs_no_environment(tmp_path: Path) -> None:
    # Given the shipped-style section with listen empty and the secret's variable unset
    path = config_file(
        tmp_path, webhooks="[webhooks]\nlisten =\nsecret = %(SG_ED_WEBHOOK_SECRET)s\n"
    )
    # Then the config loads, with webhooks off
    assert not load_config(path, environ={}).webhooks.enabled


def test_listen_secret_and_path_are_read(tmp_path: Path) -> None:
    # Given a receiver on loopback with its secret in the environment
    path = config_file(
        tmp_path,
        daemon="active_fetch_interval = 0.5",
        webhooks="""\
        [webhooks]
        listen = 127.0.0.1:8090
        secret = %(SG_ED_WEBHOOK_SECRET)s
        path = /sg-hook
        """,
    )
    config = load_config(path, environ={"SG_ED_WEBHOOK_SECRET": "tok%en"})
    # Then every value is taken, and the secret is one of the values logs must scrub
    hooks = config.webhooks
    assert (hooks.host, hooks.port, hooks.secret, hooks.path) == (
        "127.0.0.1",
        8090,
        "tok%en",
        "/sg-hook",
    )
    assert config.active_fetch_interval == 0.5
    assert "tok%en" in config.secrets
    assert "tok%en" not in repr(config)


def test_ipv6_listen(tmp_path: Path) -> None:
    path = config_file(tmp_path, webhooks="[webhooks]\nlisten = [::1]:9000\nsecret = x\n")
    assert load_config(path, environ={}).webhooks.host == "::1"


@pytest.mark.parametrize(
    ("webhooks", "daemon", "names"),
    [
        ("[webhooks]\nlisten = 127.0.0.1:8090\n", "", "[webhooks] secret"),
        (
            "[webhooks]\nlisten = 127.0.0.1:8090\nsecret = %(SG_ED_WEBHOOK_SECRET)s\n",
            "",
            "SG_ED_WEBHOOK_SECRET",
        ),
        ("[webhooks]\nlisten = 8090\nsecret = x\n", "", "[webhooks] listen"),
        ("[webhooks]\nlisten = host:99999\nsecret = x\n", "", "[webhooks] listen"),
        ("[webhooks]\nlisten = host:0\nsecret = x\n", "", "[webhooks] listen"),
        ("[webhooks]\nlisten = h:1\nsecret = x\npath = hook\n", "", "[webhooks] path"),
        ("", "active_fetch_interval = 0", "[daemon] active_fetch_interval"),
        ("", "active_fetch_interval = soon", "[daemon] active_fetch_interval"),
    ],
)
def test_bad_values_are_one_line_config_errors(
    tmp_path: Path, webhooks: str, daemon: str, names: str
) -> None:
    # Given a wrong [webhooks] or active_fetch_interval value
    path = config_file(tmp_path, daemon=daemon, webhooks=webhooks)
    # When the config is loaded
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    # Then one line names the file and the key, and the daemon exits 78
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and names in message
    assert caught.value.exit_code == 78


def test_a_secret_value_is_never_shown_in_an_error(tmp_path: Path) -> None:
    # Given a secret given with an unknown reference near a bad path
    path = config_file(
        tmp_path, webhooks="[webhooks]\nlisten = h:1\nsecret = hunter2-%(X\npath = /\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "hunter2" not in str(caught.value)
