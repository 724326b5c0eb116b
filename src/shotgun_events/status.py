"""The ``status`` command: is the daemon running, and where is each plugin.

It reads the pid file and the state file without writing anything, so it is
safe while the daemon runs; exit codes follow LSB (0 running, 1 dead with a
pid file, 3 not running).
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from .config import Config
from .pidfile import status_process
from .state import read_state


def collect(config: Config) -> dict[str, Any]:
    """Gather the process status and every plugin's position and state."""
    process = status_process(pid_file=config.pid_file)
    state = read_state(config.event_id_file, config.path)
    positions = state.positions if state is not None else {}
    plugin_states: dict[str, Any] = state.extras.get("plugins", {}) if state is not None else {}
    plugins = []
    for (collection, name), cursor in sorted(positions.items()):
        info = plugin_states.get(f"{collection}::{name}", {})
        plugins.append(
            {
                "collection": collection,
                "name": name,
                "last_event_id": cursor.last_id,
                "backlog": len(cursor.backlog),
                "active": info.get("active"),
                "reason": info.get("reason"),
            }
        )
    return {
        "running": process.running,
        "pid": process.pid,
        "uptime_seconds": process.uptime,
        "exit_code": process.exit_code,
        "summary": process.describe(),
        "state_file": str(config.event_id_file),
        "plugins": plugins,
    }


def print_status(config: Config, *, as_json: bool = False, out: TextIO = sys.stdout) -> int:
    """Print the status for a person (or as JSON) and return the LSB exit code."""
    report = collect(config)
    if as_json:
        json.dump(report, out, indent=2, default=str)
        out.write("\n")
        return int(report["exit_code"])
    out.write(f"{report['summary']}\n")
    out.write(f"state file: {report['state_file']}\n")
    if not report["plugins"]:
        out.write("no plugin positions saved yet\n")
    for plugin in report["plugins"]:
        if plugin["active"] is None:
            condition = "unknown"
        elif plugin["active"]:
            condition = "active"
        else:
            condition = f"inactive: {plugin['reason']}"
        out.write(
            f"  {plugin['name']:<24} last event {plugin['last_event_id']:<10} "
            f"backlog {plugin['backlog']:<5} {condition}\n"
        )
    return int(report["exit_code"])
