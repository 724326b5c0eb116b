"""The ``status`` command: is the daemon running, and where is each plugin.

While the daemon runs, it is asked through its control socket (state,
reason, position, backlog, lag, retries, dead letters). Otherwise, or when it
does not answer, the state file is read without writing anything. Exit codes
follow LSB (0 running, 1 dead with a pid file, 3 not running).
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from shotgun_events.config.model import Config
from shotgun_events.cursor import Cursor
from shotgun_events.engine.progress import Progress
from shotgun_events.errors import ControlError
from shotgun_events.events import PluginKey
from shotgun_events.notify.logs import MASK
from shotgun_events.operator.live import request
from shotgun_events.service.pidfile import ProcessStatus, status_process
from shotgun_events.state.store import ANY_PLUGIN, read_state

#: Seconds to wait for the running daemon's answer before reading the state file instead.
LIVE_TIMEOUT = 20.0
#: Entries of the audit and dead-letter lists shown.
RECENT = 10


def collect(config: Config) -> dict[str, Any]:
    """Gather the process status and every plugin's state, with secrets masked."""
    masked: dict[str, Any] = _mask(_collect(config), config.secrets)
    return masked


def live_report(config: Config, live: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
    """What ``status --json`` shows of a running daemon, built inside it (the status page)."""
    report = _process(config, status_process(pid_file=config.pid_file))
    report["audit"] = list(extras.get("audit") or [])[-RECENT:]
    report["pending_replays"] = list(extras.get("pending_replays") or [])
    report.update(live)
    report["source"] = "daemon"
    masked: dict[str, Any] = _mask(report, config.secrets)
    return masked


def mask_secrets(value: Any, secrets: tuple[str, ...]) -> Any:
    """Replace every secret in the strings of ``value`` (nested dicts and lists) with ***."""
    return _mask(value, secrets)


def _mask(value: Any, secrets: tuple[str, ...]) -> Any:
    """Replace secrets in every string: dead letters hold plugins' error messages as raised."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {key: _mask(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item, secrets) for item in value]
    return value


def _collect(config: Config) -> dict[str, Any]:
    process = status_process(pid_file=config.pid_file)
    report = _process(config, process)
    state = read_state(config.event_id_file, config.path)
    extras = state.extras if state is not None else {}
    report["audit"] = list(extras.get("audit") or [])[-RECENT:]
    report["pending_replays"] = list(extras.get("pending_replays") or [])
    if process.running:
        try:
            live = request(config.control_socket_path, "status", timeout=LIVE_TIMEOUT)
        except ControlError as exc:
            report["note"] = f"the daemon did not answer ({exc}); showing the state file"
        else:
            if live.done and isinstance(live.result, dict):
                report.update(live.result)
                report["source"] = "daemon"
                return report
    report.update(_offline(state.positions if state is not None else {}, extras))
    return report


def _process(config: Config, process: ProcessStatus) -> dict[str, Any]:
    return {
        "running": process.running,
        "pid": process.pid,
        "uptime_seconds": process.uptime,
        "exit_code": process.exit_code,
        "summary": process.describe(),
        "state_file": str(config.event_id_file),
        "control_socket": str(config.control_socket_path),
    }


def _offline(positions: dict[PluginKey, Cursor], extras: dict[str, Any]) -> dict[str, Any]:
    """What the state file says about each plugin."""
    plugin_states: dict[str, Any] = extras.get("plugins") or {}
    disabled: dict[str, str] = extras.get("disabled") or {}
    letters: list[dict[str, Any]] = list(extras.get("dead_letters") or [])
    plugins = []
    start_all = positions.get(ANY_PLUGIN)
    for (collection, name), cursor in sorted(positions.items()):
        if (collection, name) == ANY_PLUGIN:
            continue  # not a plugin: the start of every plugin without a position
        info = plugin_states.get(f"{collection}::{name}", {})
        active = info.get("active")
        if name in disabled:
            condition, reason = "disabled", f"disabled by an operator: {disabled[name]}"
        elif active is None:
            condition, reason = "unknown", None
        else:
            condition, reason = ("active" if active else "inactive"), info.get("reason")
        plugins.append(
            {
                "collection": collection,
                "name": name,
                "state": condition,
                "reason": reason,
                "last_event_id": cursor.last_id,
                # Offline nothing is in flight: the saved position is the watermark.
                "watermark": cursor.last_id,
                "in_flight": 0,
                "done": len(cursor.done),
                "backlog": len(cursor.backlog),
                "active": active,
                "dead_letters": sum(1 for letter in letters if letter.get("plugin") == name),
            }
        )
    report: dict[str, Any] = {
        "source": "state file",
        "plugins": plugins,
        "dead_letters": letters[-RECENT:],
    }
    if start_all is not None:
        report["all_plugins_start_after"] = start_all.last_id
    return report


def print_status(config: Config, *, as_json: bool = False, out: TextIO = sys.stdout) -> int:
    """Print the status for a person (or as JSON) and return the LSB exit code."""
    report = collect(config)
    if as_json:
        json.dump(report, out, indent=2, default=str)
        out.write("\n")
        return int(report["exit_code"])
    out.write(f"{report['summary']}\n")
    if "note" in report:
        out.write(f"{report['note']}\n")
    out.write(f"state file: {report['state_file']}\n")
    if report.get("head") is not None:
        out.write(f"newest event seen: {report['head']}\n")
    site = report.get("site") or {}
    if site.get("unavailable"):
        out.write(f"{site['unavailable']}: events are held until it answers\n")
    if report.get("progress"):
        out.write(f"catching up: {Progress(**report['progress']).describe()}\n")
    if report.get("all_plugins_start_after") is not None:
        out.write(
            "plugins without a position of their own start after event "
            f"{report['all_plugins_start_after']} (set by reset --all or a legacy state file)\n"
        )
    if not report["plugins"]:
        out.write("no plugin positions saved yet\n")
    for plugin in report["plugins"]:
        out.write(f"  {plugin_line(plugin)}\n")
    for letter in report["dead_letters"]:
        out.write(
            f"dead letter: {letter.get('plugin')} event {letter.get('event_id')} at "
            f"{letter.get('time')}: {letter.get('reason')}\n"
        )
    for item in report["pending_replays"]:
        out.write(
            f"replay queued for the next start: {item.get('plugin')} events "
            f"{item.get('from_id')}..{item.get('to_id')} ({item.get('reason')})\n"
        )
    return int(report["exit_code"])


def _celery_part(plugin: dict[str, Any]) -> str:
    """The Celery executor's figures: tasks out, queue length, workers seen recently."""
    queued = plugin.get("queue_length")
    workers = plugin.get("workers")
    if workers is None:
        seen = "workers unknown (Redis unreachable)"
    else:
        seen = f"workers {','.join(workers)}" if workers else "no worker seen"
    text = (
        f"celery queue {plugin.get('queue')} tasks in flight {plugin.get('tasks_in_flight', 0)} "
        f"queued {'?' if queued is None else queued} {seen}"
    )
    oldest = plugin.get("oldest_held")
    if plugin.get("keys_held") and isinstance(oldest, dict):
        ids = oldest.get("events") or []
        text += (
            f" HELD {plugin['keys_held']} key(s) longer than task_timeout (oldest "
            f"{oldest.get('seconds')} s, events {','.join(map(str, ids[:5]))})"
        )
    return text


def _ceiling_part(plugin: dict[str, Any], ceiling: float) -> str:
    """The plugin's ceiling on site calls and how long its calls waited for it."""
    if plugin.get("executor") == "celery":
        # Each worker process keeps the ceiling, and its calls wait there, not here.
        return f"site calls <= {ceiling:g}/s per worker"
    return f"site calls <= {ceiling:g}/s waited {plugin.get('site_call_wait_seconds', 0):.1f} s"


def timer_text(timer: dict[str, Any]) -> str:
    """One timer in a few words: ``timer NAME every N s, next HH:MM:SS, runs R ...``."""
    text = f"timer {timer['name']} every {timer['every']:g} s"
    running = timer.get("running_seconds")
    if running is not None:
        text += f", running for {running:.0f} s"
    elif timer.get("next_run"):
        text += f", next {str(timer['next_run'])[11:19]} UTC"
    text += f", runs {timer.get('runs', 0)}"
    for key in ("errors", "skipped"):
        if timer.get(key):
            text += f", {key} {timer[key]}"
    return text


def plugin_line(plugin: dict[str, Any]) -> str:
    """One plugin's line of the plain `status` output."""
    parts = [
        f"{plugin['name']:<24} {plugin['state']:<9}",
        f"last event {plugin['last_event_id']:<10}",
        f"backlog {plugin['backlog']:<5}",
    ]
    if plugin.get("in_flight") or plugin.get("done") or (plugin.get("concurrency") or 1) > 1:
        parts.append(
            f"watermark {plugin.get('watermark')} in flight {plugin.get('in_flight', 0)} "
            f"done {plugin.get('done', 0)}"
        )
    if plugin.get("executor") == "celery":
        parts.append(_celery_part(plugin))
    if "lag_events" in plugin:
        lag = plugin.get("lag_seconds")
        seconds = f", {lag:.0f} s" if isinstance(lag, int | float) else ""
        parts.append(f"lag {plugin['lag_events']} events{seconds}")
    ceiling = plugin.get("max_calls_per_second")
    if ceiling:
        parts.append(_ceiling_part(plugin, ceiling))
    running = [r for r in plugin.get("running") or [] if r.get("seconds", 0) >= 1]
    if running:
        oldest = running[0]
        parts.append(f"running event {oldest['event_id']} for {oldest['seconds']:.0f} s")
    retrying = plugin.get("retrying")
    if retrying:
        parts.append(f"retrying event {retrying['event_id']} (attempt {retrying['attempt']})")
    if plugin.get("dead_letters"):
        parts.append(f"dead letters {plugin['dead_letters']}")
    if plugin.get("expired"):
        parts.append(f"expired {plugin['expired']} (no longer in the site's log)")
    skipped = plugin.get("skipped") or {}
    if skipped:
        counts = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(skipped.items()))
        parts.append(f"skipped {counts}")
    parts.extend(timer_text(timer) for timer in plugin.get("timers") or [])
    if plugin.get("reason") and plugin["state"] != "active":
        parts.append(f"- {plugin['reason']}")
    return " ".join(parts)
