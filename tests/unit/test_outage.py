"""Site outages: which errors are the site's, the outage's life, and events held, not failed."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from typing import Any
from xmlrpc.client import ProtocolError

import pytest
from shotgun_api3 import Fault

from shotgun_events.client.outage import Outage, is_unavailable
from shotgun_events.client.retry import SiteRetry
from shotgun_events.delivery.dispatch import Dispatcher, Outcome
from shotgun_events.delivery.failures import DeadLetters, FailurePolicy, RetryPolicy
from shotgun_events.engine.loop import Engine
from shotgun_events.engine.settings import Settings
from tests.unit.fakes import (
    FakeCallback,
    FakeConnections,
    FakeLoader,
    FakePlugin,
    FakeSource,
    FakeStore,
    make_event,
)


def http(status: int) -> ProtocolError:
    return ProtocolError("site.example.com", status, "answer", {})


@pytest.mark.parametrize(
    "error",
    [
        http(503),
        http(502),
        http(500),
        http(429),
        ConnectionRefusedError("refused"),
        ConnectionResetError("reset"),
        TimeoutError("timed out"),
        socket.gaierror("no such host"),
    ],
    ids=lambda e: type(e).__name__ + str(getattr(e, "errcode", "")),
)
def test_the_sites_own_failures_are_outages(error: BaseException) -> None:
    assert is_unavailable(error)


def _engine(source: FakeSource, plugin: FakePlugin, outage: Outage, **settings: Any) -> Engine:
    """An engine whose one plugin's site calls report to ``outage``."""
    return Engine(
        source=source,
        retry=SiteRetry(max_attempts=1, burst_sleep=0, wait=lambda s: False, outage=outage),
        loader=FakeLoader([plugin]),
        store=FakeStore(),
        dispatcher=Dispatcher(connections=FakeConnections(), use_session_uuid=False, outage=outage),
        settings=Settings(**settings),
        stop=threading.Event(),
    )


def test_a_refused_request_and_the_plugins_own_errors_are_not() -> None:
    # Given a Fault (the site answered: the request is wrong), a 4xx, and a plugin's bug
    assert not is_unavailable(Fault("API read() Shot.sg_nope doesn't exist"))
    assert not is_unavailable(http(404))
    assert not is_unavailable(ValueError("the plugin's own bug"))
    # And a plugin error raised while handling a site failure is the site's after all
    try:
        try:
            raise http(503)
        except ProtocolError as exc:
            raise RuntimeError("could not update the shot") from exc
    except RuntimeError as wrapped:
        assert is_unavailable(wrapped)


def test_an_outage_is_reported_once_probed_with_growing_waits_and_ended_by_an_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a site that fails its first two probes
    answers = [ConnectionRefusedError("refused"), http(503), None]
    probes: list[float] = []

    def probe() -> None:
        probes.append(time.monotonic())
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    outage = Outage(probe, first_wait=0.05, max_wait=0.5)
    # When three failures are reported (a read, two plugins)
    for _ in range(3):
        outage.report(http(503), held=True)
    # Then one outage is on, logged once at ERROR, and waits end when a probe is answered
    assert outage.down and outage.count == 1 and outage.held == 3
    assert outage.wait(lambda s: threading.Event().wait(s) and False)
    assert not outage.down and len(probes) == 3
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert gaps[1] > gaps[0]  # the waits grow
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unavailable" in errors[0].getMessage()
    outage.close()


def _plugin(calls: list[int], *, fail: list[BaseException | None]) -> FakePlugin:
    plugin = FakePlugin("reader")

    def callback(sg: Any, logger: Any, event: Any, args: Any) -> None:
        calls.append(event["id"])
        error = fail.pop(0) if fail else None
        if error is not None:
            raise error

    plugin.callbacks.append(FakeCallback("read", callback, stop_on_error=True))
    return plugin


def test_a_callback_meeting_an_outage_holds_its_event_with_no_retry_used() -> None:
    # Given a stopOnError plugin with no retries whose site call fails with 503
    calls: list[int] = []
    plugin = _plugin(calls, fail=[http(503)])
    store = FakeStore()
    outage = Outage(lambda: None, first_wait=0.05)
    dispatcher = Dispatcher(
        connections=FakeConnections(),
        use_session_uuid=False,
        policy=FailurePolicy(RetryPolicy(retries=0), DeadLetters(store)),
        outage=outage,
    )
    # When the event is dispatched
    outcome = dispatcher.run(plugin, make_event(7))  # type: ignore[arg-type]
    # Then it is held: not handled, no retry, no dead letter, the plugin stays on
    assert outcome is Outcome.HELD and calls == [7]
    assert plugin.active and DeadLetters(store).entries() == []
    assert outage.count == 1 and outage.held == 1
    outage.close()


def test_a_held_event_is_read_again_once_the_site_answers_and_handled_once() -> None:
    # Given an engine with a plugin whose site call fails with 503 on event 3, once
    calls: list[int] = []
    plugin = _plugin(calls, fail=[None, http(503)])
    source = FakeSource()
    source.add(1)
    answered = threading.Event()
    outage = Outage(lambda: answered.wait(10), first_wait=0.01)
    engine = _engine(source, plugin, outage)
    assert engine.start()
    source.add(2, 3, 4)
    # When the engine runs: the outage starts at event 3, nothing more is handed out
    engine.run_once()
    assert engine.drain(5) and calls == [2, 3] and outage.down
    # And once the site answers, reading goes on from event 3
    answered.set()
    engine.run_once()
    engine.run_once()
    assert engine.drain(5)
    assert calls == [2, 3, 3, 4] and plugin.active and not outage.down
    engine.close()
    outage.close()


def test_the_plugins_own_exception_during_an_outage_still_follows_the_policy() -> None:
    # Given an outage on, and a plugin whose callback raises its own error
    calls: list[int] = []
    plugin = _plugin(calls, fail=[KeyError("sg_status_list")])
    outage = Outage(lambda: None)
    outage.report(http(503))
    store = FakeStore()
    dispatcher = Dispatcher(
        connections=FakeConnections(),
        use_session_uuid=False,
        policy=FailurePolicy(RetryPolicy(retries=0), DeadLetters(store)),
        outage=outage,
    )
    # Then it is switched off, as before (stopOnError)
    assert dispatcher.run(plugin, make_event(9)) is Outcome.FAILED  # type: ignore[arg-type]
    assert not plugin.active
    outage.close()


def test_a_plugin_on_its_own_thread_held_by_an_outage_drops_the_batches_queued_for_it() -> None:
    # Given a plugin on a thread of its own (dispatch = parallel), batches of two events, and
    # a site call that fails with 503 on event 3, once, while the engine has read ahead
    calls: list[int] = []
    gate = threading.Event()
    fail: list[BaseException | None] = [None, http(503)]
    plugin = FakePlugin("reader")

    def callback(sg: Any, logger: Any, event: Any, args: Any) -> None:
        if event["id"] == 3 and fail:
            gate.wait(5)  # the engine queues later batches meanwhile
        calls.append(event["id"])
        error = fail.pop(0) if fail else None
        if error is not None:
            raise error

    plugin.callbacks.append(FakeCallback("read", callback, stop_on_error=True))
    source = FakeSource()
    source.add(1)
    answered = threading.Event()
    outage = Outage(lambda: answered.wait(10), first_wait=0.01)
    engine = _engine(source, plugin, outage, batch_size=2, dispatch="parallel")
    assert engine.start()
    source.add(*range(2, 11))
    # When the engine reads on while event 3 is in its callback, then the site fails it
    for _ in range(3):
        engine.run_once()
    gate.set()
    deadline = time.monotonic() + 5
    while not outage.down and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    answered.set()
    deadline = time.monotonic() + 10
    while max(calls, default=0) < 10 and time.monotonic() < deadline:
        engine.run_once()
        time.sleep(0.02)
    engine.drain(5)
    engine.close()
    outage.close()
    # Then every event ran once, in id order, after the held one ran again: nothing read past
    # the hold was handled before it, and nothing became a "late" event to run twice
    assert calls == [2, 3, 3, 4, 5, 6, 7, 8, 9, 10], str(calls)


def test_a_plugin_held_on_a_slow_call_and_given_a_thread_reads_on_from_the_held_event() -> None:
    # Given the default dispatch and a plugin whose call on event 3 takes 50 ms and then
    # meets a 503, once: slow enough to be given a thread of its own in that very batch
    calls: list[int] = []
    failed: list[int] = []
    plugin = FakePlugin("reader")

    def callback(sg: Any, logger: Any, event: Any, args: Any) -> None:
        calls.append(event["id"])
        if event["id"] == 3 and not failed:
            failed.append(3)
            time.sleep(0.05)
            raise http(503)

    plugin.callbacks.append(FakeCallback("read", callback, stop_on_error=True))
    source = FakeSource()
    source.add(1)
    outage = Outage(lambda: None, first_wait=0.05)
    engine = _engine(source, plugin, outage)
    assert engine.start()
    source.add(*range(2, 12))
    # When the engine runs until the site answers again and everything is read
    deadline = time.monotonic() + 10
    while calls.count(11) < 1 and time.monotonic() < deadline:
        engine.run_once()
        time.sleep(0.01)
    engine.drain(5)
    engine.close()
    outage.close()
    # Then the events after the held one ran after it, each once: none was handed on past
    # the position the hold rewound to
    assert calls == [2, 3, 3, *range(4, 12)], str(calls)
