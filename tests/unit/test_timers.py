"""Timers: registration, the grid, the failure policy, one run at a time, reload and stop."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.client.outage import Outage
from shotgun_events.delivery.celery.codec import (
    MalformedTaskError,
    TaskSpec,
    decode_task,
    encode_task,
)
from shotgun_events.delivery.dispatch import Dispatcher, TimerFailure
from shotgun_events.delivery.failures import FailurePolicy, RetryPolicy
from shotgun_events.engine.timers import TimerLoop, TimerSchedule, next_due
from shotgun_events.errors import PluginError
from shotgun_events.plugins.loader import PluginLoader
from shotgun_events.plugins.registrar import Registrar, Timer
from tests.unit.fakes import FakePlugin

HASH = "a" * 40


def nothing(sg: Any, logger: Any, args: Any) -> None:
    """A timer that does nothing."""


@pytest.fixture
def reg(tmp_path: Path) -> Registrar:
    return Registrar("jobs", tmp_path / "jobs.py", logging.getLogger("plugin.jobs"))


def make_timer(func: Any = nothing, *, every: float = 1.0, **kw: Any) -> Timer:
    fields: dict[str, Any] = {
        "plugin_name": "jobs",
        "name": getattr(func, "__name__", "timer"),
        "func": func,
        "every": every,
        "args": None,
        "stop_on_error": True,
        "script_name": "script",
        "script_key": "key",
        "logger": logging.getLogger("plugin.jobs.timer"),
    }
    fields.update(kw)
    return Timer(**fields)


class Runner:
    """A plugin's runner as the schedule sees it: runs the timer in the calling thread."""

    def __init__(self, plugin: FakePlugin, failures: list[TimerFailure | None] | None = None):
        self.plugin = plugin
        self.failures = list(failures or [])
        self.calls = 0

    def run_timer(self, timer: Timer) -> TimerFailure | None:
        self.calls += 1
        timer.func(None, timer.logger, timer.args)
        return self.failures.pop(0) if self.failures else None


# -- registration -------------------------------------------------------------------


def test_register_timer_keeps_what_the_plugin_gave(reg: Registrar) -> None:
    reg.registerTimer(nothing, every=600, args={"days": 3}, stopOnError=False, retries=2)
    [timer] = reg.timers
    assert (timer.name, timer.every, timer.args, timer.stop_on_error) == (
        "nothing",
        600.0,
        {"days": 3},
        False,
    )
    assert timer.retries == 2 and timer.logger.name == "plugin.jobs.nothing"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.registerTimer("nothing", every=60), "must be a function"),
        (lambda r: r.registerTimer(nothing, every=0.5), "every must be a number of seconds >= 1"),
        (lambda r: r.registerTimer(nothing, every=True), "every must be a number"),
        (lambda r: r.registerTimer(nothing, every="60"), "every must be a number"),
        (
            lambda r: r.registerTimer(lambda sg, logger, event, args: None, every=60),
            "cannot be called as <lambda>(sg, logger, args)",
        ),
        (lambda r: r.registerTimer(nothing, every=60, sgScriptName="s"), "give both"),
        (lambda r: r.registerTimer(nothing, every=60, retries=-1), "retries must be an int"),
    ],
)
def test_register_timer_refuses_mistakes_naming_the_plugin_file(
    reg: Registrar, call: Any, message: str
) -> None:
    with pytest.raises(PluginError) as caught:
        call(reg)
    assert message in str(caught.value) and "jobs.py: registerTimer" in str(caught.value)


def test_two_timers_of_one_name_are_refused(reg: Registrar) -> None:
    reg.registerTimer(nothing, every=60)
    with pytest.raises(PluginError, match="a timer named nothing is already registered"):
        reg.registerTimer(nothing, every=120)


def test_timers_take_the_first_callbacks_credentials_else_the_daemons(tmp_path: Path) -> None:
    # Given one plugin with a callback and a timer, and one with a timer only
    (tmp_path / "withcb.py").write_text(
        "def registerCallbacks(reg):\n"
        "    reg.registerCallback('cbscript', 'cbkey', cb)\n"
        "    reg.registerTimer(tick, every=60)\n"
        "def cb(sg, logger, event, args): pass\n"
        "def tick(sg, logger, args): pass\n"
    )
    (tmp_path / "alone.py").write_text(
        "def registerCallbacks(reg):\n"
        "    reg.registerTimer(tick, every=60)\n"
        "def tick(sg, logger, args): pass\n"
    )
    loader = PluginLoader(paths=[tmp_path])
    loader.scan()
    plugins = {p.name: p for p in loader.plugins}
    assert plugins["withcb"].timers[0].script_name == "cbscript"
    # When the lone timer runs, the dispatcher connects with the daemon's own credentials
    asked: list[tuple[str, str]] = []

    class Connections:
        def get(self, name: str, key: str) -> Any:
            asked.append((name, key))
            return None

    dispatcher = Dispatcher(
        connections=Connections(), use_session_uuid=False, own_credentials=("daemon", "dkey")
    )
    assert plugins["alone"].active
    assert dispatcher.attempt_timer(plugins["alone"], plugins["alone"].timers[0]) is None  # type: ignore[arg-type]
    assert asked == [("daemon", "dkey")]


def test_a_failed_reload_leaves_no_timer(tmp_path: Path) -> None:
    path = tmp_path / "jobs.py"
    path.write_text(
        "def registerCallbacks(reg):\n    reg.registerTimer(tick, every=60)\n"
        "def tick(sg, logger, args): pass\n"
    )
    loader = PluginLoader(paths=[tmp_path])
    loader.scan()
    [plugin] = loader.plugins
    assert [t.name for t in plugin.timers] == ["tick"]
    path.write_text("def registerCallbacks(reg):\n    raise RuntimeError('broken edit')\n")
    loader.scan(changed=[path])
    assert not plugin.active and plugin.timers == []


# -- the grid ------------------------------------------------------------------------


def test_due_times_are_multiples_of_every_strictly_after_now() -> None:
    assert next_due(1000.0, 600) == 1200.0
    assert next_due(1199.999, 600) == 1200.0
    assert next_due(1200.0, 600) == 1800.0  # now is due: the next one is the following
    assert next_due(86399.0, 86400) == 86400.0  # daily: midnight UTC


# -- the policy ----------------------------------------------------------------------


def loop_for(runner: Runner, timer: Timer, **kw: Any) -> TimerLoop:
    policy = kw.pop("policy", FailurePolicy(RetryPolicy(retries=0, delay=0)))
    outage = kw.pop("outage", None)
    return TimerLoop(runner, timer, policy=policy, outage=outage, clock=time.time)  # type: ignore[arg-type]


def test_a_raising_timer_is_retried_then_switches_its_plugin_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a timer that fails three times, with 2 retries and stopOnError
    plugin = FakePlugin("jobs")
    error = RuntimeError("report failed")
    runner = Runner(plugin, [TimerFailure(error)] * 3)
    timer = make_timer(retries=2, retry_delay=0)
    plugin.timers.append(timer)
    # When it runs
    with caplog.at_level(logging.WARNING):
        ran = loop_for(runner, timer).run_now(plugin)  # type: ignore[arg-type]
    # Then it was tried three times, and the plugin is off, as for a callback
    assert not ran and runner.calls == 3
    assert (
        not plugin.active and plugin.reason == "timer nothing failed: RuntimeError: report failed"
    )
    levels = [(r.levelname, r.name) for r in caplog.records if r.name == "plugin.jobs.timer"]
    assert levels == [("WARNING", "plugin.jobs.timer")] * 2 + [("CRITICAL", "plugin.jobs.timer")]
    assert "until its file changes" in caplog.records[-1].getMessage()


def test_a_timer_without_stop_on_error_gives_the_run_up_and_keeps_its_plugin_on() -> None:
    plugin = FakePlugin("jobs")
    runner = Runner(plugin, [TimerFailure(RuntimeError("flaky"))])
    timer = make_timer(stop_on_error=False)
    store_sections: dict[str, Any] = {}

    class Letters:
        def record(self, *args: Any, **kw: Any) -> None:
            store_sections["dead"] = args

    policy = FailurePolicy(RetryPolicy(retries=0), dead_letters=Letters())  # type: ignore[arg-type]
    loop = loop_for(runner, timer, policy=policy)
    assert not loop.run_now(plugin)  # type: ignore[arg-type]
    assert plugin.active and loop.errors == 1 and loop.runs == 0
    assert store_sections == {}, "a timer's run is no event: nothing for the dead letters"


def test_a_run_that_meets_a_site_outage_is_skipped_without_blame() -> None:
    plugin = FakePlugin("jobs")
    runner = Runner(plugin, [TimerFailure(ConnectionRefusedError(111, "refused"), True)])
    outage = Outage(lambda: None, first_wait=60)
    try:
        loop = loop_for(runner, make_timer(), outage=outage)
        assert not loop.run_now(plugin)  # type: ignore[arg-type]
        assert plugin.active and loop.errors == 0 and loop.skipped == 1
        assert outage.down
    finally:
        outage.close()


def test_a_run_no_worker_took_is_skipped_without_blame() -> None:
    plugin = FakePlugin("jobs")
    runner = Runner(plugin, [TimerFailure("no worker answered", not_run=True)])
    loop = loop_for(runner, make_timer())
    assert not loop.run_now(plugin)  # type: ignore[arg-type]
    assert plugin.active and (loop.errors, loop.skipped) == (0, 1)


# -- the schedule (real time: every = 1 s) ---------------------------------------------


def test_one_run_at_a_time_a_reload_waits_for_the_old_run_and_stop_waits_too() -> None:
    # Given a timer whose run blocks until released
    plugin = FakePlugin("jobs")
    release = threading.Event()
    started: list[str] = []

    def old(sg: Any, logger: Any, args: Any) -> None:
        started.append("old")
        release.wait(10)

    def new(sg: Any, logger: Any, args: Any) -> None:
        started.append("new")

    plugin.timers = [make_timer(old, name="job")]
    runner = Runner(plugin)
    schedule = TimerSchedule(policy=FailurePolicy(RetryPolicy(retries=0)))
    schedule.sync([runner])  # type: ignore[list-item]
    try:
        deadline = time.monotonic() + 5
        while not started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started == ["old"]
        # When the plugin is reloaded with a new timer of the same name while the old runs
        plugin.timers = [make_timer(new, name="job")]
        schedule.sync([runner])  # type: ignore[list-item]
        time.sleep(2.2)
        # Then the new code waited: the old run still holds it, and the old did not start again
        assert started == ["old"]
        [shown] = schedule.describe(plugin)  # type: ignore[arg-type]
        assert shown["runs"] == 0 and shown["name"] == "job"
        release.set()
        deadline = time.monotonic() + 5
        while "new" not in started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started[:2] == ["old", "new"] and started.count("old") == 1
        # And a switched-off plugin's timer does not run
        plugin.active = False
        count = len(started)
        time.sleep(1.5)
        assert len(started) == count
    finally:
        release.set()
        schedule.close(5)


def test_close_waits_for_a_run_in_progress() -> None:
    plugin = FakePlugin("jobs")
    ended: list[float] = []

    def slow(sg: Any, logger: Any, args: Any) -> None:
        time.sleep(0.8)
        ended.append(time.monotonic())

    plugin.timers = [make_timer(slow)]
    schedule = TimerSchedule(policy=FailurePolicy(RetryPolicy(retries=0)))
    schedule.sync([Runner(plugin)])  # type: ignore[list-item]
    deadline = time.monotonic() + 3
    while schedule.running() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert schedule.running() == 1
    schedule.close(5)
    assert len(ended) == 1 and schedule.running() == 0


# -- a timer's run on Celery: the wire format ----------------------------------------


def test_a_timer_task_round_trips_and_forged_ones_are_refused() -> None:
    spec = TaskSpec("jobs", HASH, (), timer="nightly")
    body = encode_task(spec)
    assert set(body) == {"v", "plugin", "hash", "timer"}
    assert decode_task([body], {}) == spec
    for bad in ("", 7, "x" * 201):
        with pytest.raises(MalformedTaskError, match="bad timer name"):
            decode_task([{**body, "timer": bad}], {})
    with pytest.raises(MalformedTaskError, match="unexpected fields"):
        decode_task([{**body, "events": []}], {})
