"""Which executor each plugin gets when the daemon runs some plugins on Celery."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from shotgun_events.config.load import load_config
from shotgun_events.delivery.celery.wiring import (
    CeleryWiring,
    celery_spec_resolver,
    engine_dispatch,
)
from shotgun_events.delivery.executor import ExecutorSpec
from tests.unit.fakes import FakePlugin
from tests.unit.test_config import MINIMAL, write


def test_dispatch_celery_makes_every_plugin_celery_unless_its_section_says_local(
    tmp_path: Path,
) -> None:
    # Given dispatch = celery, one plugin kept local with 4 threads by entity
    text = MINIMAL.replace("[daemon]\n", "[daemon]\ndispatch = celery\n") + (
        "\n[plugin:quick]\nexecutor = local\nconcurrency = 4\n"
    )
    config = load_config(write(tmp_path, text), environ={})
    spec_for = celery_spec_resolver(config)
    # Then the others are celery and the local one keeps its concurrency
    assert spec_for(cast(Any, FakePlugin("transcode"))).kind == "celery"
    assert spec_for(cast(Any, FakePlugin("quick"))) == ExecutorSpec(4, "entity", "local")
    # And the engine schedules runners as in auto mode
    assert engine_dispatch("celery") == "auto"
    assert engine_dispatch("serial") == "serial"


def test_one_plugin_section_on_celery_leaves_the_rest_local(tmp_path: Path) -> None:
    text = MINIMAL + "\n[plugin:transcode]\nexecutor = celery\norder_by = project\n"
    spec_for = celery_spec_resolver(load_config(write(tmp_path, text), environ={}))
    assert spec_for(cast(Any, FakePlugin("transcode"))) == ExecutorSpec(1, "project", "celery")
    assert spec_for(cast(Any, FakePlugin("other"))).kind == "local"


def test_celery_specs_go_to_the_celery_factory_with_their_key_others_to_local() -> None:
    # Given a wiring with recording factories
    calls: list[tuple[str, str, Any]] = []

    def celery_factory(plugin: Any, order_by: str, on_done: Any) -> str:
        calls.append(("celery", plugin.name, order_by))
        return "celery-executor"

    def local(plugin: Any, spec: ExecutorSpec, on_done: Any) -> str:
        calls.append(("local", plugin.name, spec.concurrency))
        return "local-executor"

    wiring = CeleryWiring(hub=cast(Any, None), factory=cast(Any, celery_factory), local=local)
    # When the engine asks for two plugins' executors
    got = [
        wiring.executor_for(
            cast(Any, FakePlugin("a")), ExecutorSpec(1, "project", "celery"), print
        ),
        wiring.executor_for(cast(Any, FakePlugin("b")), ExecutorSpec(3, "entity", "local"), print),
    ]
    # Then each went to its own kind
    assert got == ["celery-executor", "local-executor"]
    assert calls == [("celery", "a", "project"), ("local", "b", 3)]
