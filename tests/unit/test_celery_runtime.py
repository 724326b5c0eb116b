"""The Celery worker's plugin rescans: a file being written is left for the next one."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

from shotgun_events.delivery.celery.runtime import WorkerRuntime
from shotgun_events.plugins.loader import PluginLoader

PLUGIN = """
def registerCallbacks(reg):
    reg.registerCallback("s", "k", {name}, None, None)

def {name}(sg, logger, event, args):
    pass
"""


def aged(path: Path, text: str, seconds: float) -> None:
    """Write ``path`` and date it ``seconds`` back."""
    path.write_text(text)
    then = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(then, then))


def runtime(folder: Path) -> tuple[WorkerRuntime, PluginLoader]:
    loader = PluginLoader(paths=[folder])
    worker = WorkerRuntime(
        loader=loader,
        done=cast(Any, None),  # rescans touch neither the done records nor the dispatcher
        dispatcher=cast(Any, None),
        hostname="test@host",
        rescan_every=0.0,
        settle=60.0,
    )
    return worker, loader


def test_a_rescan_leaves_a_plugin_written_less_than_settle_ago_as_it_runs(tmp_path: Path) -> None:
    # Given a worker that loaded a plugin
    plugin = tmp_path / "keyed.py"
    aged(plugin, PLUGIN.format(name="handle"), 120)
    worker, loader = runtime(tmp_path)
    worker.refresh(force=True)
    loaded = loader.plugins[0].fingerprint
    assert loader.plugins[0].active
    # When an editor has truncated the file a moment ago (nothing written back yet)
    plugin.write_text("")
    worker.refresh()
    # Then the rescan keeps the plugin as it ran: no load of a half-written file
    assert loader.plugins[0].active
    assert loader.plugins[0].fingerprint == loaded
    assert loader.written_within(60.0) == {plugin.resolve()}
    # When the edit is complete and settled
    aged(plugin, PLUGIN.format(name="handle_v2"), 120)
    worker.refresh()
    # Then the next rescan loads it
    assert [c.func.__name__ for c in loader.plugins[0].callbacks] == ["handle_v2"]
    assert loader.written_within(60.0) == set()


def test_the_first_scan_loads_every_file_as_it_is(tmp_path: Path) -> None:
    # Given a plugin written a moment ago
    (tmp_path / "fresh.py").write_text(PLUGIN.format(name="handle"))
    worker, loader = runtime(tmp_path)
    # When the worker starts (its queues are those of the plugins it finds)
    worker.refresh(force=True)
    # Then it is loaded at once
    assert [p.name for p in loader.plugins] == ["fresh"]
    assert loader.plugins[0].active
