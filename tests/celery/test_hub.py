"""The daemon's link to Redis when Redis is not there, and the package without Celery installed."""

from __future__ import annotations

import logging
import sys

import pytest

from shotgun_events.config.celery_section import CeleryConfig
from shotgun_events.delivery.celery import require_celery
from shotgun_events.delivery.celery.hub import BrokerUnavailableError, CeleryHub
from shotgun_events.errors import ConfigError
from tests.celery.conftest import free_port


def test_redis_unreachable_at_start_is_one_line_then_backoff_then_a_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a broker URL with a password on a port where nothing listens
    url = f"redis://:sup3r-secret@127.0.0.1:{free_port()}/0"
    hub = CeleryHub(CeleryConfig(broker_url=url, result_backend=url))
    waits: list[float] = []
    # When the daemon connects with three attempts
    with (
        caplog.at_level(logging.INFO, logger="engine.celery"),
        pytest.raises(BrokerUnavailableError) as caught,
    ):
        hub.connect(attempts=3, first_wait=0.5, wait=lambda s: waits.append(s) is not None)
    # Then one error line, doubling waits, a message naming the fix, and no password anywhere
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unreachable" in errors[0].getMessage()
    assert waits == [0.5, 1.0]
    assert "broker_url" in str(caught.value) and caught.value.exit_code == 69
    assert "sup3r-secret" not in caplog.text + str(caught.value)


def test_without_celery_installed_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given celery cannot be imported
    monkeypatch.setitem(sys.modules, "celery", None)
    # When something needs it / Then one line naming the package and the pip command
    with pytest.raises(ConfigError) as caught:
        require_celery("dispatch = celery")
    message = str(caught.value)
    assert "'celery'" in message and "pip install 'shotgun-events[celery]'" in message
    assert "\n" not in message
