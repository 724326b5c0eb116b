"""What the benchmarks run: generated plugin files and daemon config files.

The plugins keep counters in a module-level ``STATS`` dict that the rigs
(``rigs.py``) read back. Every benchmark that starts the daemon writes its
config here, in the shipped example's layout (``conf/shotgunEventDaemon.conf``:
config in etc/, state in var/lib/, logs in var/log/, pid file in run/, under a
temporary root) with the shipped defaults for every key it does not name;
section 13 compares that layout with one folder for everything.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLUGIN = '''\
"""Benchmark plugin {name}: one callback for every event; keeps a few counters."""
import time

SLEEP = {sleep!r}
SITE_EVERY = {site_every!r}
STATS = {{"calls": 0, "last_id": 0, "out_of_order": 0, "last_at": 0.0, "site_calls": 0}}
STARTS = []


def registerCallbacks(reg):
    reg.registerCallback({script!r}, {key!r}, on_event, None, None)


def on_event(sg, logger, event, args):
    started = time.time()
    if {record_starts!r}:
        STARTS.append((event["id"], started))
    if event["id"] <= STATS["last_id"]:
        STATS["out_of_order"] += 1
    if SITE_EVERY and STATS["calls"] % SITE_EVERY == 0:
        sg.find_one("EventLogEntry", [["id", "is", event["id"]]], ["id"])
        STATS["site_calls"] += 1
    if SLEEP:
        time.sleep(SLEEP)
    STATS["last_id"] = event["id"]
    STATS["calls"] += 1
    STATS["last_at"] = time.perf_counter()
'''

#: A site-calling plugin calls the site on its first event and then once every this many.
SITE_CALL_EVERY = 5_000
#: In a standard set of plugins, every this many-th one (the first included) calls the site.
CALLER_SPACING = 5

#: The shipped example config: where its layout (state, logs, pid file) is read from.
SHIPPED = Path(__file__).resolve().parents[1] / "conf" / "shotgunEventDaemon.conf"
#: Where the shipped config sits on a server (the daemon's last search place).
SHIPPED_CONFIG = Path("/etc/shotgunEventDaemon.conf")
#: The [daemon] keys a layout takes from the shipped config.
LAYOUT_KEYS = ("pidFile", "eventIdFile", "logMode", "logPath", "logFile", "logging")
#: The layouts ``write_config`` knows: the shipped example's, and one folder for everything.
LAYOUTS = ("shipped", "one folder")

CONFIG = """\
[daemon]
{daemon}
# A site that fails ends a section in seconds, not after minutes of retries.
conn_retry_sleep = 1
max_conn_retries = 3
{extra}

[shotgun]
server = {url}
name = shotgun_events
key = local

[plugins]
paths = {plugins}
{plugin_keys}
"""


@dataclass(frozen=True)
class PluginSpec:
    """What one generated plugin does."""

    name: str
    sleep: float = 0.0
    script: tuple[str, str] = ("shotgun_events", "local")
    #: 0: never calls the site; N: one ``find_one`` on its first event, then one every N.
    site_every: int = 0
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
                site_every=spec.site_every,
                record_starts=spec.record_starts,
            )
        )
    return folder


def standard_plugins(count: int) -> list[PluginSpec]:
    """``count`` quick plugins on the daemon's credentials; every fifth one calls the site.

    A caller makes one ``find_one`` on its first event and one every
    ``SITE_CALL_EVERY`` events after it, so its calls go through the plugins'
    connection pool and wait out the site's latency, without turning a
    catch-up into a measure of the site's answer time.
    """
    return [
        PluginSpec(f"plugin{n:02d}", site_every=SITE_CALL_EVERY if n % CALLER_SPACING == 0 else 0)
        for n in range(count)
    ]


def callers(count: int) -> int:
    """How many plugins of ``standard_plugins(count)`` call the site."""
    return len(range(0, count, CALLER_SPACING))


def plugin_site_calls(stats: Mapping[str, Mapping[str, Any]]) -> int:
    """The site calls the plugins made, from their ``STATS`` (read by ``plugin_stats()``)."""
    return sum(int(plugin.get("site_calls", 0)) for plugin in stats.values())


@dataclass(frozen=True)
class Layout:
    """Where one daemon's files go: its config, and the [daemon] keys that place the rest."""

    config: Path
    keys: dict[str, str]


def layout(root: Path, name: str = "shipped") -> Layout:
    """The files of a daemon under ``root``, in the named layout (one of ``LAYOUTS``).

    "shipped": the config where a server keeps it (/etc) and pidFile,
    eventIdFile and logPath where ``conf/shotgunEventDaemon.conf`` puts them,
    each under ``root``. "one folder": the config, state file and journal,
    logs and pid file in one folder, as many studios keep them.
    """
    shipped = configparser.ConfigParser(interpolation=None)
    shipped.optionxform = str  # type: ignore[assignment,method-assign]
    shipped.read(SHIPPED)
    keys = {key: shipped["daemon"][key] for key in LAYOUT_KEYS}
    if name == "shipped":
        config = root / SHIPPED_CONFIG.relative_to("/")
        for key in ("pidFile", "eventIdFile", "logPath"):
            keys[key] = str(root / Path(keys[key]).relative_to("/"))
    elif name == "one folder":
        folder = root / "shotgunEventDaemon"
        config = folder / SHIPPED_CONFIG.name
        keys["pidFile"] = str(folder / Path(keys["pidFile"]).name)
        keys["eventIdFile"] = str(folder / Path(keys["eventIdFile"]).name)
        keys["logPath"] = str(folder)
    else:
        raise ValueError(f"unknown layout {name!r}; use one of {LAYOUTS}")
    return Layout(config, keys)


def write_config(
    root: Path,
    *,
    url: str,
    plugins: Path,
    layout_name: str = "shipped",
    dispatch: str | None = None,
    fetch_interval: float | None = None,
    watch: str | None = None,
    extra: str = "",
) -> Path:
    """Write a daemon config under ``root`` in a layout; returns the config's path.

    Keys left as None are not written, so the daemon takes the shipped
    default (``dispatch = auto``, ``fetch_interval = 5``, ``watch = auto``...).
    ``extra``: more [daemon] lines. The folders of the state and pid files
    are created (the daemon requires them); the log folder it creates itself.
    """
    files = layout(root, layout_name)
    daemon = dict(files.keys)
    if dispatch is not None:
        daemon["dispatch"] = dispatch
    if fetch_interval is not None:
        daemon["fetch_interval"] = f"{fetch_interval:g}"
    for key in ("pidFile", "eventIdFile"):
        Path(daemon[key]).parent.mkdir(parents=True, exist_ok=True)
    files.config.parent.mkdir(parents=True, exist_ok=True)
    files.config.write_text(
        CONFIG.format(
            daemon="\n".join(f"{key} = {value}" for key, value in daemon.items()),
            url=url,
            plugins=plugins,
            extra=extra,
            plugin_keys="" if watch is None else f"watch = {watch}",
        )
    )
    files.config.chmod(0o600)
    return files.config
