"""``/livez`` and ``/readyz``: one answer each, 200 or 503, with a one-line reason.

Live: the engine loop made progress recently, whatever the site does (see
``service/liveness.py``; the systemd watchdog follows the same heartbeat).
Ready: the last read of the site succeeded, recently enough (within
``READ_INTERVALS`` fetch intervals, unless a plugin is busy in a callback),
the state file can be written, and at least one plugin is active.
"""

from __future__ import annotations

import time

from shotgun_events.observe.view import DaemonView, PluginRow

#: Fetch intervals without a successful read after which the daemon is not ready.
READ_INTERVALS = 3
#: ... but never less than this many seconds (short intervals, slow moments).
READ_FLOOR = 30.0


def live(view: DaemonView) -> tuple[bool, str]:
    """(alive, reason)."""
    return view.liveness.check()


def ready(
    view: DaemonView, *, now: float | None = None, rows: list[PluginRow] | None = None
) -> tuple[bool, str]:
    """(ready, reason): the first failing check, or a summary of why all pass.

    ``rows``: the plugins as the caller already read them for the same answer.
    """
    now = time.time() if now is None else now
    sink = view.sink
    if sink.last_read_ok is None and sink.last_read_error is None:
        return False, "starting: the site has not been read yet"
    if not sink.site_reachable():
        when, kind = sink.last_read_error or (now, "error")
        return False, (
            f"site unreachable: {sink.failed_reads_in_a_row} failed read(s) in a row, "
            f"the last {now - when:.0f} s ago ({kind}); retrying"
        )
    outage = view.engine.outage
    if outage is not None and outage.down:
        return False, f"{outage.describe()}; events are held until it answers"
    assert sink.last_read_ok is not None
    age = now - sink.last_read_ok
    limit = max(READ_FLOOR, READ_INTERVALS * view.config.fetch_interval)
    if age > limit and not view.engine.dispatcher.in_flight.running():
        return False, f"no successful read of the site for {age:.0f} s (limit {limit:.0f} s)"
    if not sink.state_writable():
        _, error = sink.state_error or (now, "error")
        return False, f"the state file cannot be written ({error}); delivery is paused"
    rows = view.plugins() if rows is None else rows
    active = [row for row in rows if row.state == "active"]
    if not active:
        if not rows:
            return False, "no plugin is loaded"
        names = ", ".join(f"{row.name} ({row.state})" for row in rows[:5])
        return False, f"no plugin is active: {names}"
    return True, f"ready: last read {age:.1f} s ago, {len(active)} of {len(rows)} plugins active"
