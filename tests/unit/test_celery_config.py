"""The [celery] section: read when used, checked, secrets kept out of errors and logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from shotgun_events.config.celery_section import mask_url
from shotgun_events.config.load import load_config
from shotgun_events.errors import ConfigError
from tests.unit.test_config import MINIMAL, write


def test_a_config_without_celery_gets_the_defaults_and_runs_locally(tmp_path: Path) -> None:
    # Given a config that never mentions Celery
    config = load_config(write(tmp_path, MINIMAL), environ={})
    # Then every plugin runs locally and the section has its defaults
    assert not config.uses_celery
    assert config.executor == "local"
    assert config.celery.queue_prefix == "shotgun_events"


def test_executor_celery_reads_the_section_with_password_from_the_environment(
    tmp_path: Path,
) -> None:
    # Given executor = celery and a broker password from the environment
    text = MINIMAL.replace("[daemon]\n", "[daemon]\nexecutor = celery\n") + (
        "\n[celery]\nbroker_url = rediss://:%(REDIS_PASSWORD)s@redis.lan:6380/2\n"
        "queue_prefix = studio.events\ntask_timeout = 45\n"
    )
    config = load_config(write(tmp_path, text), environ={"REDIS_PASSWORD": "hunter2-redis"})
    # Then the URL is used, the backend defaults to it and the password is a secret
    assert config.executor == "celery" and config.uses_celery
    assert config.celery.broker_url == "rediss://:hunter2-redis@redis.lan:6380/2"
    assert config.celery.result_backend == config.celery.broker_url
    assert config.celery.task_timeout == 45
    assert "hunter2-redis" in config.secrets
    assert "hunter2-redis" not in config.celery.safe_broker
    assert "hunter2-redis" not in repr(config)


def test_a_plugin_section_can_put_one_plugin_on_celery(tmp_path: Path) -> None:
    text = MINIMAL + "\n[plugin:transcode]\nexecutor = celery\n"
    config = load_config(write(tmp_path, text), environ={})
    assert config.uses_celery
    assert config.plugin_settings["transcode"].executor == "celery"
    assert config.executor == "local" and config.uses_celery


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("broker_url", "amqp://user:t0p-secret@host//"),
        ("result_backend", "http://user:t0p-secret@host/"),
        ("queue_prefix", "bad prefix!"),
        ("task_timeout", "0"),
    ],
)
def test_bad_values_give_one_line_without_the_secret(tmp_path: Path, key: str, value: str) -> None:
    # Given a bad [celery] value / When loaded / Then one line naming file and key, no secret
    text = MINIMAL.replace("[daemon]\n", "[daemon]\nexecutor = celery\n") + (
        f"\n[celery]\n{key} = {value}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={})
    message = str(caught.value)
    assert "\n" not in message and f"[celery] {key}" in message and "sed.conf" in message
    assert "t0p-secret" not in message


def test_urls_are_masked_for_logs() -> None:
    assert mask_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("rediss://user:pw@h/0") == "rediss://user:***@h/0"
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"
