"""Failure policy: retries with doubling waits, dead letters, cool-down of switched-off plugins."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest

from shotgun_events.client.retry import SiteRetry
from shotgun_events.delivery.dispatch import Dispatcher, Outcome
from shotgun_events.delivery.failures import DeadLetters, FailurePolicy, RetryPolicy
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.settings import Settings
from tests.unit.fakes import DISPATCH_MODES

from .fakes import (
    Clock,
    FakeCallback,
    FakeConnections,
    FakeLoader,
    FakePlugin,
    FakeSource,
    FakeStore,
    make_event,
)


def flaky_plugin(
    name: str,
    failures: int,
    *,
    stop_on_error: bool = True,
    only: set[int] | None = None,
    **retry: Any,
) -> FakePlugin:
    """A plugin whose callback fails ``failures`` times per event (or only on ``only``)."""
    plugin = FakePlugin(name)
    attempts: dict[int, int] = {}

    def callback(sg: Any, logger: logging.Logger, event: dict[str, Any], args: Any) -> None:
        attempts[event["id"]] = attempts.get(event["id"], 0) + 1
        if (only is None or event["id"] in only) and attempts[event["id"]] <= failures:
            raise RuntimeError(f"attempt {attempts[event['id']]} failed")
        plugin.received.append(event["id"])

    plugin.callbacks.append(
        FakeCallback("callback", callback, stop_on_error=stop_on_error, **retry)
    )
    return plugin


def dispatcher(store: FakeStore, waits: list[float], policy: RetryPolicy) -> Dispatcher:
    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return Dispatcher(
        connections=FakeConnections(),
        use_session_uuid=False,
        policy=FailurePolicy(policy, DeadLetters(store)),
        wait=wait,
    )


def test_waits_double_up_to_the_maximum() -> None:
    policy = RetryPolicy(retries=5, delay=2.0, max_delay=10.0)
    callback = FakeCallback("cb", lambda *a: None)
    assert [policy.wait_before(callback, n) for n in range(1, 6)] == [2, 4, 8, 10, 10]


def test_callback_keywords_override_the_config_defaults() -> None:
    policy = RetryPolicy(retries=1, delay=5.0)
    own = FakeCallback("cb", lambda *a: None, retries=4, retry_delay=0.5)
    assert policy.attempts_for(own) == 4
    assert policy.wait_before(own, 2) == 1.0


def test_plugin_failing_twice_then_succeeding_processes_the_event_once() -> None:
    # Given a callback that fails twice per event and a policy of 3 retries
    store, waits = FakeStore(), []
    plugin = flaky_plugin("flaky", failures=2)
    run = dispatcher(store, waits, RetryPolicy(retries=3, delay=1.0))
    # When an event is delivered
    outcome = run.run(plugin, make_event(7))
    # Then it succeeded on the third attempt, after waits of 1 s and 2 s, once
    assert outcome is Outcome.DONE
    assert plugin.received == [7]
    assert waits == [1.0, 2.0]
    assert plugin.active
    assert DeadLetters(store).entries() == []


def test_retries_used_up_with_stop_on_error_switch_the_plugin_off() -> None:
    store, waits = FakeStore(), []
    plugin = flaky_plugin("flaky", failures=5)
    run = dispatcher(store, waits, RetryPolicy(retries=2, delay=1.0))
    assert run.run(plugin, make_event(7)) is Outcome.FAILED
    assert not plugin.active and plugin.failed_at is not None
    assert "attempt 3 failed" in (plugin.reason or "")
    # A stopped plugin's event is not given up: it is not a dead letter
    assert DeadLetters(store).entries() == []


def test_given_up_event_goes_to_the_dead_letter_list() -> None:
    # Given stopOnError=False and retries that cannot save it
    store, waits = FakeStore(), []
    plugin = flaky_plugin("lenient", failures=5, stop_on_error=False)
    run = dispatcher(store, waits, RetryPolicy(retries=1, delay=1.0))
    # When the event fails every attempt
    outcome = run.run(plugin, make_event(9))
    # Then the plugin moves on and the event is recorded as given up
    assert outcome is Outcome.DONE
    assert plugin.active
    [letter] = DeadLetters(store).entries()
    assert letter["plugin"] == "lenient" and letter["event_id"] == 9
    assert "attempt 2 failed" in letter["error"]


def test_stop_during_a_retry_wait_leaves_the_event_unhandled_and_the_plugin_on() -> None:
    store = FakeStore()
    plugin = flaky_plugin("flaky", failures=5)
    run = Dispatcher(
        connections=FakeConnections(),
        use_session_uuid=False,
        policy=FailurePolicy(RetryPolicy(retries=3, delay=1.0), DeadLetters(store)),
        wait=lambda seconds: True,  # stop requested while waiting
    )
    assert run.run(plugin, make_event(3)) is Outcome.INTERRUPTED
    assert plugin.active
    assert run.retrying == {}


def test_replay_failure_neither_switches_off_nor_records() -> None:
    store, waits = FakeStore(), []
    plugin = flaky_plugin("flaky", failures=5)
    run = dispatcher(store, waits, RetryPolicy())
    assert run.run(plugin, make_event(3), replay=True) is Outcome.FAILED
    assert plugin.active
    assert DeadLetters(store).entries() == []


@pytest.mark.parametrize("dispatch", DISPATCH_MODES)
def test_cooled_down_plugin_is_switched_on_and_resumes_at_the_failed_event(
    dispatch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a plugin that fails once on event 3 and a cool-down of 60 s
    source = FakeSource()
    source.add(1)
    plugin = flaky_plugin("flaky", failures=1, only={3})
    stop = threading.Event()
    clock = Clock()
    engine = Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: False),
        loader=FakeLoader([plugin]),
        store=FakeStore(),
        dispatcher=Dispatcher(connections=FakeConnections(), use_session_uuid=False),
        settings=Settings(
            dispatch=dispatch, disabled_cooldown=60, backlog_timeout=timedelta(seconds=300)
        ),
        stop=stop,
        clock=clock,
        monotonic=clock.monotonic,
    )
    engine.start()
    try:
        source.add(2, 3, 4)
        engine.run_once()
        engine.drain(5)
        assert not plugin.active
        # When the cool-down has not passed, it stays off
        engine.run_once()
        assert not plugin.active
        # When it has passed
        assert plugin.failed_at is not None
        failed_at = plugin.failed_at
        monkeypatch.setattr(
            "shotgun_events.plugins.switches.time.monotonic", lambda: failed_at + 61
        )
        engine.run_once()
        engine.drain(5)
        # Then it is on again and got 3 (the failed event) and 4, each once
        assert plugin.active
        assert plugin.received == [2, 3, 4]
    finally:
        engine.close()


def test_dead_letters_keep_no_secret() -> None:
    store = FakeStore()
    letters = DeadLetters(store, scrub=lambda text: text.replace("hunter22", "***"))
    letters.record("p", 5, "login failed for password hunter22", reason="stopOnError=False")
    assert "hunter22" not in str(store.sections)
    assert letters.entries()[0]["error"] == "login failed for password ***"
