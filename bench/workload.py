"""What the benchmarks run: generated plugin files and daemon config files.

The plugins keep counters in a module-level ``STATS`` dict that the rigs
(``rigs.py``) read back; configs put every file of a run in one folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PLUGIN = '''\
"""Benchmark plugin {name}: one callback for every event; keeps a few counters."""
import time

SLEEP = {sleep!r}
USE_SG = {use_sg!r}
STATS = {{"calls": 0, "last_id": 0, "out_of_order": 0, "last_at": 0.0}}
STARTS = []


def registerCallbacks(reg):
    reg.registerCallback({script!r}, {key!r}, on_event, None, None)


def on_event(sg, logger, event, args):
    started = time.time()
    if {record_starts!r}:
        STARTS.append((event["id"], started))
    if event["id"] <= STATS["last_id"]:
        STATS["out_of_order"] += 1
    if USE_SG and not STATS["calls"]:
        sg.find_one("Project", [], ["id"])
    if SLEEP:
        time.sleep(SLEEP)
    STATS["last_id"] = event["id"]
    STATS["calls"] += 1
    STATS["last_at"] = time.perf_counter()
'''

CONFIG = """\
[daemon]
pidFile = {folder}/daemon.pid
eventIdFile = {folder}/state.json
logMode = 1
logPath = {folder}/logs
logFile = shotgunEventDaemon.log
logging = 20
fetch_interval = {fetch_interval}
max_event_batch_size = 500
conn_retry_sleep = 1
max_conn_retries = 3
dispatch = {dispatch}
{extra}

[shotgun]
server = {url}
name = shotgun_events
key = local

[plugins]
paths = {plugins}
watch = {watch}
"""


@dataclass(frozen=True)
class PluginSpec:
    """What one generated plugin does."""

    name: str
    sleep: float = 0.0
    script: tuple[str, str] = ("shotgun_events", "local")
    use_sg: bool = False
    record_starts: bool = False


def write_plugins(folder: Path, specs: Sequence[PluginSpec]) -> Path:
    """Write one plugin file per spec into ``folder`` (created); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        (folder / f"{spec.name}.py").write_text(
            PLUGIN.format(
                name=spec.name,
                sleep=spec.sleep,
                script=spec.script[0],
                key=spec.script[1],
                use_sg=spec.use_sg,
                record_starts=spec.record_starts,
            )
        )
    return folder


def trivial_plugins(count: int) -> list[PluginSpec]:
    """``count`` plugins with trivial callbacks on the daemon's own credentials."""
    return [PluginSpec(f"plugin{n:02d}") for n in range(count)]


def write_config(
    folder: Path,
    *,
    url: str,
    plugins: Path,
    dispatch: str = "parallel",
    fetch_interval: float = 5.0,
    extra: str = "",
    watch: str = "off",
) -> Path:
    """Write a daemon config whose files all live in ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shotgunEventDaemon.conf"
    path.write_text(
        CONFIG.format(
            folder=folder,
            url=url,
            plugins=plugins,
            dispatch=dispatch,
            fetch_interval=fetch_interval,
            extra=extra,
            watch=watch,
        )
    )
    path.chmod(0o600)
    return path
