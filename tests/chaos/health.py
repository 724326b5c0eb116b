"""The end of a run: wait for the daemon to catch up, then hold its probes and status to account.

``drain`` waits, after the last fault, until ``status --json`` puts every
plugin at the site's head with nothing in flight, for as long as deliveries
keep coming; a key that stays stuck is reported, not waited for forever.
``final_checks`` then asks ``/livez``, ``/readyz`` and ``status --json``
whether they tell the truth, and stops the daemon with SIGTERM, which must
exit 0.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from .plugins import PLUGINS
from .system import TASK_TIMEOUT, System, http_get, rss_kib

#: Seconds without any new delivery after which the run stops waiting for a catch-up:
#: a worker kill holds a key for task_timeout, its running claim for as long again.
STALL = 2 * TASK_TIMEOUT + 30
#: Seconds the daemon gets to exit on SIGTERM (shipped stop_timeout is 30).
STOP_WAIT = 45.0


@dataclass
class Drain:
    """How the catch-up after the last fault went."""

    seconds: float = 0.0
    caught_up: bool = False
    head: int = 0
    behind: list[str] = field(default_factory=list)


def _behind(status: dict[str, Any], head: int, never: int) -> list[str]:
    """Plugins not at ``head`` with nothing in flight, as one line each."""
    lines = []
    shown = {p["name"]: p for p in status.get("plugins", [])}
    for spec in PLUGINS:
        plugin = shown.get(spec.name)
        if plugin is None:
            lines.append(f"{spec.name}: missing from status")
            continue
        watermark = plugin.get("watermark", plugin.get("last_event_id"))
        if (
            plugin.get("last_event_id") != head
            or watermark != head
            or plugin.get("in_flight", 0)
            or plugin.get("backlog", 0) > never
        ):
            lines.append(
                f"{spec.name}: state {plugin.get('state')}, last event "
                f"{plugin.get('last_event_id')}, watermark {watermark}, in flight "
                f"{plugin.get('in_flight')}, backlog {plugin.get('backlog')}, "
                f"tasks in flight {plugin.get('tasks_in_flight', '-')} (head {head})"
            )
    return lines


def drain(system: System, never: int, limit: float) -> Drain:
    """Wait until every plugin is at the head, while deliveries keep coming (at most ``limit``)."""
    result = Drain()
    started = last_change = time.monotonic()
    size = -1
    while True:
        result.head = int(system.control("newest_event_id"))
        try:
            result.behind = _behind(system.status(), result.head, never)
        except (ValueError, KeyError, subprocess.TimeoutExpired) as exc:  # no answer yet
            result.behind = [f"status unreadable: {exc}"]
        result.seconds = time.monotonic() - started
        if not result.behind:
            result.caught_up = True
            return result
        now_size = sum(p.stat().st_size for p in system.records.glob("*.log"))
        if now_size != size:
            size, last_change = now_size, time.monotonic()
        if time.monotonic() - last_change > STALL or result.seconds > limit:
            return result
        time.sleep(2.0)


@dataclass
class Final:
    """What the probes, status and the stop said at the end."""

    problems: list[str] = field(default_factory=list)
    livez: str = ""
    readyz: str = ""
    exit_code: int | None = None
    rss_end_kib: int = 0


def final_checks(system: System, head: int, never: int, dead_letters: dict[str, int]) -> Final:
    """Probes and status honest at the end, then SIGTERM: exit 0.

    ``dead_letters``: how many each plugin should have (the events of garbled tasks).
    """
    final = Final()
    code, body = http_get(f"{system.http_url}/livez")
    final.livez = f"{code} {body.strip()[:200]}"
    if code != 200:
        final.problems.append(f"/livez answered {final.livez}")
    code, body = http_get(f"{system.http_url}/readyz")
    final.readyz = f"{code} {body.strip()[:200]}"
    if code != 200:
        final.problems.append(f"/readyz answered {final.readyz}")
    try:
        status = system.status()
    except (ValueError, subprocess.TimeoutExpired) as exc:
        status = {"summary": f"unreadable: {exc}"}
    if not status.get("running") or status.get("source") != "daemon":
        final.problems.append(f"status --json: {status.get('summary')} ({status.get('source')})")
    final.problems += [f"status --json: {line}" for line in _behind(status, head, never)]
    shown = {p["name"]: p for p in status.get("plugins", [])}
    for name, plugin in shown.items():
        if plugin.get("state") != "active":
            final.problems.append(
                f"status --json: {name} is {plugin.get('state')}: {plugin.get('reason')}"
            )
        if plugin.get("dead_letters", 0) != dead_letters.get(name, 0):
            final.problems.append(
                f"status --json: {name} has {plugin.get('dead_letters')} dead letters, "
                f"expected {dead_letters.get(name, 0)}"
            )
    celery = shown.get("celery_rec", {})
    if celery.get("redis_reachable") is not True or celery.get("tasks_in_flight"):
        final.problems.append(
            f"status --json: celery_rec redis_reachable {celery.get('redis_reachable')}, "
            f"tasks in flight {celery.get('tasks_in_flight')}"
        )
    live = {w.pid for w in system.workers if w.alive()}
    named = {_pid(name) for name in celery.get("workers") or []}
    if not live <= named:
        final.problems.append(
            f"status --json: live workers {sorted(live)} not all shown (shows {sorted(named)})"
        )
    final.rss_end_kib = rss_kib(system.daemon.pid)
    system.supervisor.stop()
    final.exit_code = system.daemon.terminate(STOP_WAIT)
    if final.exit_code != 0:
        final.problems.append(
            f"SIGTERM: exit code {final.exit_code} (None: still running after {STOP_WAIT:.0f} s)"
        )
    return final


def _pid(name: str) -> int:
    try:
        return int(name.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return -1
