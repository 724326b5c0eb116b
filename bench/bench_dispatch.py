"""Dispatch: cost per (event, callback) of ``Dispatcher.run`` for a miss and for a call.

In-process, no network: 10 plugin files with 10 callbacks each (100 in all)
are loaded by the real ``PluginLoader``; the real ``Dispatcher`` runs each
event through each plugin, with the real ``ConnectionPool`` (connections are
created with ``connect=False`` and never used) and ``use_session_uuid`` on,
as configured by default.

- miss: events that none of the 100 mixed matchEvents selects;
- call: 100 callbacks that match every event, doing nothing; the figure is
  the dispatched cost minus the cost of calling the same function directly
  (its "own work");
- mixed: the 100 mixed callbacks on a believable mix of event types.

Run alone: ``python bench/bench_dispatch.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import itertools
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import PROFILES, Profile, Row, at_most, format_table, median, scratch

from shotgun_events.client.connections import ConnectionFactory, ConnectionPool
from shotgun_events.cursor import Cursor
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.runner import PluginRunner
from shotgun_events.plugins.loader import Plugin, PluginLoader
from shotgun_events.state.store import StateStore

#: Ten matchEvents shapes, one of each compiled form (type set, attribute set, '*', substring).
MATCHES: tuple[object, ...] = (
    {"Shotgun_Version_New": None},
    {"Shotgun_Task_Change": ["sg_status_list"]},
    {"Shotgun_Shot_Change": ["sg_status_list", "description"], "Shotgun_Shot_New": None},
    {"*": ["sg_status_list"]},
    {"Shotgun_Note_New": None, "Shotgun_Reply_New": None},
    {"Shotgun_Version_Change": "sg_status_list"},
    {"Shotgun_Asset_Change": ["*"]},
    {"Shotgun_Playlist_Change": ["versions"]},
    {"Shotgun_Task_Change": ["task_assignees", "due_date"]},
    {"Shotgun_PublishedFile_New": None},
)
#: (event_type, attribute_name) that no entry of MATCHES selects.
MISSES = (
    ("Shotgun_Shot_Change", "code"),
    ("Shotgun_Task_Change", "content"),
    ("Shotgun_Version_Change", "code"),
    ("Shotgun_User_Login", None),
    ("Shotgun_Asset_New", None),
)
#: A believable stream: mostly status and field changes, some creations, a few logins.
MIXED = (
    *(("Shotgun_Task_Change", "sg_status_list"),) * 3,
    ("Shotgun_Task_Change", "content"),
    ("Shotgun_Shot_Change", "sg_status_list"),
    ("Shotgun_Shot_Change", "code"),
    ("Shotgun_Version_New", None),
    ("Shotgun_Version_Change", "sg_status_list"),
    ("Shotgun_Version_Change", "description"),
    ("Shotgun_Note_New", None),
    ("Shotgun_User_Login", None),
    ("Shotgun_PublishedFile_New", None),
)
PLUGINS = 10
PER_PLUGIN = 10

MIXED_PLUGIN = '''\
"""Dispatch benchmark plugin: {count} callbacks with different matchEvents."""

MATCHES = {matches!r}
CALLS = [0]


def registerCallbacks(reg):
    for n in range({count}):
        reg.registerCallback("shotgun_events", "local", on_event, MATCHES[n % len(MATCHES)], n)


def on_event(sg, logger, event, args):
    CALLS[0] += 1
'''

NOOP_PLUGIN = '''\
"""Dispatch benchmark plugin: {count} callbacks for every event that do nothing."""


def registerCallbacks(reg):
    for n in range({count}):
        reg.registerCallback("shotgun_events", "local", on_event, None, n)


def on_event(sg, logger, event, args):
    pass
'''


PLUGIN_ONE = '''\
"""Dispatch benchmark plugin: one callback for every event that does nothing."""


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", on_event, None, None)


def on_event(sg, logger, event, args):
    pass
'''


def load(folder: Path, template: str) -> list[Plugin]:
    """Write 10 plugin files from ``template`` and load them with the real loader."""
    folder.mkdir()
    for n in range(PLUGINS):
        (folder / f"plugin{n:02d}.py").write_text(
            template.format(count=PER_PLUGIN, matches=MATCHES)
        )
    loader = PluginLoader(paths=[folder])
    loader.scan()
    plugins = loader.plugins
    if len(plugins) != PLUGINS or not all(p.active for p in plugins):
        raise RuntimeError(f"benchmark plugins did not load: {[p.reason for p in plugins]}")
    return plugins


def events(kinds: Sequence[tuple[str, str | None]], count: int) -> list[dict[str, Any]]:
    """``count`` events shaped as shotgun_api3 returns them, cycling through ``kinds``."""
    created = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    shot = {"type": "Shot", "id": 1, "name": "SQ010_0010"}
    out = []
    for event_id, (event_type, attribute) in zip(
        range(1, count + 1), itertools.cycle(kinds), strict=False
    ):
        out.append(
            {
                "type": "EventLogEntry",
                "id": event_id,
                "event_type": event_type,
                "attribute_name": attribute,
                "meta": {"type": "attribute_change", "entity_type": "Shot", "entity_id": 1},
                "entity": shot,
                "user": {"type": "HumanUser", "id": 1, "name": "Mara Okafor"},
                "project": {"type": "Project", "id": 1, "name": "Demo"},
                "session_uuid": "5b3c0a3e-0000-4000-8000-000000000001",
                "created_at": created,
            }
        )
    return out


def dispatcher() -> Dispatcher:
    """The real dispatcher with the real (never connected) connection pool."""
    factory = ConnectionFactory(server="http://127.0.0.1:9", timeout=10)
    return Dispatcher(connections=ConnectionPool(factory), use_session_uuid=True)


def time_dispatch(plugins: list[Plugin], stream: list[dict[str, Any]]) -> float:
    """Seconds to run every event through every plugin (a warm-up event first)."""
    run = dispatcher().run
    for plugin in plugins:
        run(plugin, stream[0])
    gc.collect()
    start = time.perf_counter()
    for event in stream:
        for plugin in plugins:
            run(plugin, event)
    return time.perf_counter() - start


def time_direct(plugins: list[Plugin], stream: list[dict[str, Any]]) -> float:
    """Seconds to call every callback directly on every event: the callbacks' own work."""
    sg = object()
    callbacks = [c for p in plugins for c in p.callbacks]
    start = time.perf_counter()
    for event in stream:
        for callback in callbacks:
            callback.func(sg, callback.logger, event, callback.args)
    return time.perf_counter() - start


def executor_arguments(run: Dispatcher) -> dict[str, Any]:
    """The runner's executor arguments where it takes them (``--compare`` runs older code too)."""
    if "executors" not in inspect.signature(PluginRunner).parameters:
        return {}
    from shotgun_events.delivery.executors import Executors, choose

    return {"executors": Executors(run), "spec_for": lambda plugin: choose(plugin, {})}


def time_runners(folder: Path, plugins: list[Plugin], stream: list[dict[str, Any]]) -> float:
    """µs per PluginRunner.handle: dispatch + cursor advance + journal record, one plugin."""
    store = StateStore(folder / "state.json")
    store.load()
    runners = [
        PluginRunner(
            plugin,
            Cursor(0),
            dispatcher=(run := dispatcher()),
            recorder=store,
            backlog_timeout=timedelta(seconds=300),
            **executor_arguments(run),
        )
        for plugin in plugins
    ]
    now = datetime.now(UTC)
    gc.collect()
    start = time.perf_counter()
    for event in stream:
        for runner in runners:
            runner.handle(event, now)
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed / (len(stream) * len(runners)) * 1e6


def run(profile: Profile) -> list[Row]:
    """Measure and return the rows of section 2."""
    callbacks = PLUGINS * PER_PLUGIN
    miss_runs: list[float] = []
    call_runs: list[float] = []
    with scratch("dispatch") as folder:
        mixed = load(folder / "mixed", MIXED_PLUGIN)
        noop = load(folder / "noop", NOOP_PLUGIN)
        misses = events(MISSES, profile.dispatch_miss_events)
        for event in misses[: len(MISSES)]:  # a correctness check of the set-up, not timing
            if any(c.matches(event) for p in mixed for c in p.callbacks):
                raise RuntimeError(f"miss event {event['event_type']} matches a callback")
        for _ in range(profile.runs):
            elapsed = time_dispatch(mixed, misses)
            miss_runs.append(elapsed / (len(misses) * callbacks) * 1e6)
        del misses
        calls = events(MIXED, profile.dispatch_call_events)
        for _ in range(profile.runs):
            dispatched = time_dispatch(noop, calls)
            direct = time_direct(noop, calls)
            call_runs.append((dispatched - direct) / (len(calls) * callbacks) * 1e6)
        single = load(folder / "single", PLUGIN_ONE)
        handle_runs = [time_runners(folder, single, calls) for _ in range(profile.runs)]
        stream = events(MIXED, profile.dispatch_mixed_events)
        counter = mixed[0].callbacks[0].func.__globals__["CALLS"]
        counter[0] = 0
        elapsed = time_dispatch(mixed, stream)
        made = counter[0] * PLUGINS
        mixed_ns = elapsed / (len(stream) * callbacks) * 1e9
    miss = median(miss_runs)
    call = median(call_runs)
    n = f"{profile.dispatch_miss_events:,} events x {callbacks} callbacks"
    return [
        Row(
            "2 dispatch",
            f"miss, per (event, callback) ({n})",
            miss,
            "us",
            "<= 1 us",
            at_most(miss, 1.0),
            runs=miss_runs,
        ),
        Row(
            "2 dispatch",
            f"call, per (event, callback), above own work "
            f"({profile.dispatch_call_events:,} x {callbacks})",
            call,
            "us",
            "<= 5 us",
            at_most(call, 5.0),
            runs=call_runs,
        ),
        Row(
            "2 dispatch",
            f"mixed stream, per (event, callback) ({profile.dispatch_mixed_events:,} x "
            f"{callbacks}, {made / len(stream):.1f} calls per event)",
            mixed_ns / 1000,
            "us",
        ),
        Row(
            "2 dispatch",
            f"PluginRunner.handle per (event, plugin): call + cursor + journal record "
            f"({profile.dispatch_call_events:,} x {PLUGINS} one-callback plugins)",
            median(handle_runs),
            "us",
            runs=handle_runs,
        ),
    ]


def main() -> None:
    """Print this benchmark's rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(PROFILES["quick" if args.quick else "full"])))


if __name__ == "__main__":
    main()
