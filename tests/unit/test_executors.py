"""Which executor each plugin gets (``choose``: config over code) and what builds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from shotgun_events.config.load import load_config, load_config_with_warnings
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.executors import (
    CELERY,
    INLINE,
    POOL,
    Executors,
    ExecutorSpec,
    InlineExecutor,
    PoolExecutor,
    choose,
)
from tests.unit.fakes import FakeConnections, FakePlugin
from tests.unit.test_config import MINIMAL, write


def plugin(name: str, concurrency: int = 1, order_by: str = "entity") -> Any:
    return cast(Any, FakePlugin(name, concurrency=concurrency, order_by=order_by))


def test_executor_celery_sends_every_plugin_to_celery_unless_its_section_says_local(
    tmp_path: Path,
) -> None:
    # Given [daemon] executor = celery, one plugin kept local with 4 threads
    text = MINIMAL.replace("[daemon]\n", "[daemon]\nexecutor = celery\n") + (
        "\n[plugin:quick]\nexecutor = local\nconcurrency = 4\n"
    )
    config = load_config(write(tmp_path, text), environ={})
    # Then the others run on Celery and the local one on a pool of 4
    assert choose(plugin("transcode"), config.plugin_settings, config.executor).kind == CELERY
    assert choose(plugin("quick"), config.plugin_settings, config.executor) == ExecutorSpec(
        POOL, 4, "entity"
    )


def test_dispatch_celery_still_works_with_a_one_line_deprecation_warning(tmp_path: Path) -> None:
    # Given the old spelling
    text = MINIMAL.replace("[daemon]\n", "[daemon]\ndispatch = celery\n")
    config, warnings = load_config_with_warnings(write(tmp_path, text), environ={})
    # Then it is read as executor = celery with dispatch auto, and says so once
    assert (config.executor, config.dispatch) == ("celery", "auto")
    [warning] = [w for w in warnings if "deprecated" in w]
    assert "executor = celery" in warning and "\n" not in warning


def test_one_plugin_section_on_celery_leaves_the_rest_local(tmp_path: Path) -> None:
    text = MINIMAL + "\n[plugin:transcode]\nexecutor = celery\norder_by = project\n"
    config = load_config(write(tmp_path, text), environ={})
    assert config.uses_celery
    got = choose(plugin("transcode"), config.plugin_settings, config.executor)
    assert got == ExecutorSpec(CELERY, 1, "project")
    assert choose(plugin("other"), config.plugin_settings, config.executor).kind == INLINE


def test_the_config_wins_over_the_plugins_own_request(tmp_path: Path) -> None:
    # Given a plugin that asks for 8 threads by project in code
    asking = plugin("rollup", concurrency=8, order_by="project")
    # Then without a section it gets what it asked for
    assert choose(asking, {}) == ExecutorSpec(POOL, 8, "project")
    # And a section's keys win, key by key
    text = MINIMAL + "\n[plugin:rollup]\nconcurrency = 1\n"
    config = load_config(write(tmp_path, text), environ={})
    assert choose(asking, config.plugin_settings) == ExecutorSpec(INLINE, 1, "project")


def test_executors_builds_what_the_spec_names() -> None:
    # Given the factory with a recording Celery factory
    built: list[tuple[str, ExecutorSpec]] = []

    def celery(p: Any, spec: ExecutorSpec, on_done: Any) -> Any:
        built.append((p.name, spec))
        return "celery-executor"

    dispatcher = Dispatcher(connections=FakeConnections(), use_session_uuid=False)
    executors = Executors(dispatcher, celery)
    # Then inline and pool are built here, Celery by its factory
    assert isinstance(executors(plugin("a"), ExecutorSpec(), print), InlineExecutor)
    pool = executors(plugin("b"), ExecutorSpec(POOL, 2, "entity"), print)
    assert isinstance(pool, PoolExecutor)
    pool.close(1)
    spec = ExecutorSpec(CELERY, 1, "project")
    assert executors(plugin("c"), spec, print) == "celery-executor"
    assert built == [("c", spec)]
    # And a Celery spec without Celery set up is a clear error
    with pytest.raises(ValueError, match="Celery"):
        Executors(dispatcher)(plugin("c"), spec, print)


def test_a_pool_runs_nothing_after_an_event_is_held_until_all_in_flight_has_ended() -> None:
    # Given a pool of 2 threads and a plugin whose call on event 1 meets a site outage
    import threading

    from shotgun_events.client.outage import Outage
    from shotgun_events.delivery.dispatch import Outcome
    from tests.unit.fakes import FakeCallback, make_event

    ran: list[int] = []
    release = threading.Event()

    def callback(sg: Any, logger: Any, event: Any, args: Any) -> None:
        ran.append(event["id"])
        if event["id"] == 1:
            release.wait(5)
            raise ConnectionResetError("reset by the site")

    fake = FakePlugin("keyed", concurrency=2)
    fake.callbacks.append(FakeCallback("cb", callback))
    outage = Outage(lambda: None, first_wait=60)
    dispatcher = Dispatcher(connections=FakeConnections(), use_session_uuid=False, outage=outage)
    done: list[tuple[int, Outcome]] = []
    pool = PoolExecutor(
        cast(Any, fake),
        dispatcher,
        lambda event, outcome: done.append((event["id"], outcome)),
        concurrency=2,
        order_by="entity",
    )
    try:
        # When events 1 and 2 of one shot and 3 of another are queued, and 1 is held
        shot, other = {"type": "Shot", "id": 1}, {"type": "Shot", "id": 2}
        pool.submit(make_event(1, entity=shot))
        pool.submit(make_event(2, entity=shot))
        release.set()
        assert pool.drain(5)
        pool.submit(make_event(3, entity=other))
        assert pool.drain(5)
        # Then 2, behind the held 1 on its key, never ran (the plugin reads again from 1),
        # and once all had ended the pool ran again
        assert dict(done) == {1: Outcome.HELD, 2: Outcome.INTERRUPTED, 3: Outcome.DONE}
        assert ran == [1, 3]
    finally:
        pool.close(5)
        outage.close()
