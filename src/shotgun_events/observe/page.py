"""``/``: the live status page, one server-rendered HTML page with an inline SVG chart.

No scripts, fonts or anything fetched from elsewhere (studio servers often
have no internet); it refreshes itself with ``<meta http-equiv=refresh>``.
Every value is HTML-escaped and every string passes the status masking, so
a secret never reaches the page.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime

from shotgun_events.engine.progress import duration
from shotgun_events.observe import health
from shotgun_events.observe.view import DaemonView, PluginRow
from shotgun_events.operator.status import mask_secrets, timer_text

REFRESH_SECONDS = 10
CHART_WIDTH, CHART_HEIGHT = 720, 160

STYLE = "".join(
    (
        'body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;',
        "margin:1.5em;color:#1d232a;background:#f7f8fa}",
        "h1{font-size:1.4em;margin:0 0 .2em}",
        "h2{font-size:1.1em;margin:1.4em 0 .4em}",
        ".facts span{display:inline-block;margin-right:1.6em}",
        ".ok{color:#1a7f37}",
        ".bad{color:#c62828}",
        "table{border-collapse:collapse;width:100%;background:#fff}",
        "th,td{padding:.35em .6em;border-bottom:1px solid #e3e6ea;",
        "text-align:left;vertical-align:top}",
        "th{background:#eef1f4;font-weight:600}",
        "td.n{text-align:right;font-variant-numeric:tabular-nums}",
        ".state{font-weight:600;padding:.1em .5em;border-radius:.8em}",
        ".state-active{background:#dcf5e3;color:#1a7f37}",
        ".state-inactive{background:#fde2e2;color:#c62828}",
        ".state-disabled{background:#fff1c2;color:#7a5b00}",
        ".why{color:#5b6570;font-size:.9em}",
        "svg{background:#fff;border:1px solid #e3e6ea}",
        "ul.log{list-style:none;padding:0;font-family:ui-monospace,monospace;font-size:12px}",
        "ul.log li{padding:.15em 0}",
        ".WARNING{color:#7a5b00}",
        ".ERROR,.CRITICAL{color:#c62828}",
        "footer{margin-top:2em;color:#5b6570;font-size:.9em}",
    )
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fact(key: str, value: object) -> str:
    return f'<span>{_e(key)}: <b id="{_e(key.replace(" ", "-"))}">{_e(value)}</b></span>'


def render(view: DaemonView) -> str:
    """The whole page for the daemon's state right now."""
    secrets = view.config.secrets
    alive, live_reason = health.live(view)
    rows = view.plugins()
    is_ready, ready_reason = health.ready(view, rows=rows)
    head_age = view.head_age()
    progress = view.engine.progress.current
    facts = [
        ("site", view.config.server),
        ("uptime", duration(view.uptime())),
        ("head event", view.engine.head),
        ("head age", duration(head_age) if head_age is not None else "-"),
        ("dispatch", view.engine.settings.dispatch),
    ]
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>shotgunEventDaemon - {_e(view.config.server)}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>shotgunEventDaemon</h1>",
        '<p class="facts">'
        + "".join(_fact(key, value) for key, value in facts)
        + "</p>",
        f'<p id="health"><span class="{"ok" if alive else "bad"}">{_e(live_reason)}</span><br>'
        f'<span class="{"ok" if is_ready else "bad"}">{_e(ready_reason)}</span></p>',
    ]  # fmt: skip
    outage = view.engine.outage.describe() if view.engine.outage is not None else None
    if outage is not None:
        parts.append(f'<p id="outage" class="bad"><b>{_e(outage)}</b>: events are held</p>')
    if progress is not None:
        parts.append(f'<p id="progress"><b>catching up:</b> {_e(progress.describe())}</p>')
    parts.append(_plugins_table(view, rows))
    parts.append("<h2>Events per minute, last hour</h2>")
    parts.append(chart(view.per_minute.series()))
    parts.append(_recent(view))
    parts.append(
        "<footer>Refreshes every "
        f"{REFRESH_SECONDS} s. Also: <a href=/status.json>/status.json</a>, "
        "<a href=/metrics>/metrics</a>, <a href=/livez>/livez</a>, <a href=/readyz>/readyz</a>."
        f" Rendered {_e(_when(time.time()))}.</footer></body></html>"
    )
    text = "".join(parts)
    for secret in secrets:
        text = text.replace(html.escape(secret, quote=True), "***")
    masked: str = mask_secrets(text, secrets)
    return masked


def _plugins_table(view: DaemonView, rows: list[PluginRow]) -> str:
    dead = {name: c.dead_letters for name, c in dict(view.sink.plugins).items()}
    retries = {name: c.retries for name, c in dict(view.sink.plugins).items()}
    head = (
        "<h2>Plugins</h2><table id=plugins><thead><tr><th>plugin</th><th>state</th>"
        "<th>position</th><th>lag (events)</th><th>lag (s)</th><th>backlog</th>"
        "<th>in flight</th><th>retries</th><th>dead letters</th><th>last error</th>"
        "</tr></thead><tbody>"
    )
    body = []
    for row in rows:
        why = f'<div class="why">{_e(row.reason)}</div>' if row.reason else ""
        if row.running is not None and row.running[1] >= 1:
            event_id, seconds = row.running
            why += f'<div class="why">running event {event_id} for {seconds:.0f} s</div>'
        if row.retrying:
            event_id, attempt = row.retrying
            why += f'<div class="why">retrying event {event_id} (attempt {attempt})</div>'
        for timer in row.timers:
            why += f'<div class="why timer">{_e(timer_text(timer))}</div>'
        if row.tasks:
            resent = row.tasks.get("resent", 0) + row.tasks.get("timed_out", 0)
            why += (
                f'<div class="why celery">on Celery: {row.tasks.get("tasks_in_flight", 0)} '
                f"tasks in flight, {row.tasks.get('sent', 0)} sent, {resent} re-sent</div>"
            )
            if row.tasks.get("keys_held"):
                why += (
                    f'<div class="why held">{row.tasks["keys_held"]} ordering key(s) held '
                    "longer than task_timeout: their later events wait</div>"
                )
        error = view.recent.last_error(row.name)
        last = f"{_e(_when(error.time))}<div class=why>{_e(error.message)}</div>" if error else "-"
        body.append(
            f'<tr class="plugin" data-plugin="{_e(row.name)}" data-state="{_e(row.state)}" '
            f'data-executor="{_e(row.executor)}">'
            f"<td>{_e(row.name)}</td>"
            f'<td><span class="state state-{_e(row.state)}">{_e(row.state)}</span>{why}</td>'
            f'<td class=n>{row.position}</td><td class=n>{row.lag_events}</td>'
            f'<td class=n>{row.lag_seconds:.0f}</td><td class=n>{row.backlog}</td>'
            f'<td class=n>{row.in_flight}</td><td class=n>{retries.get(row.name, 0)}</td>'
            f'<td class=n>{dead.get(row.name, 0)}</td><td>{last}</td></tr>'
        )  # fmt: skip
    if not body:
        body.append("<tr><td colspan=10>no plugin loaded yet</td></tr>")
    return head + "".join(body) + "</tbody></table>"


def chart(series: list[tuple[int, int]]) -> str:
    """An inline SVG bar chart of (minute, count), with the peak and the time axis labelled."""
    peak = max((count for _, count in series), default=0)
    left, bottom, top = 48, 20, 10
    inner_w, inner_h = CHART_WIDTH - left - 8, CHART_HEIGHT - bottom - top
    slot = inner_w / max(1, len(series))
    bars = []
    for index, (minute, count) in enumerate(series):
        height = 0.0 if peak == 0 else inner_h * count / peak
        x = left + index * slot
        label = f"{datetime.fromtimestamp(minute, UTC):%H:%M} UTC: {count} events"
        bars.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{top + inner_h - height:.1f}" '
            f'width="{max(1.0, slot - 2):.1f}" height="{height:.1f}" fill="#3572b0">'
            f"<title>{_e(label)}</title></rect>"
        )
    first = _e(f"{datetime.fromtimestamp(series[0][0], UTC):%H:%M}") if series else ""
    last = _e(f"{datetime.fromtimestamp(series[-1][0], UTC):%H:%M}") if series else ""
    base, right = top + inner_h, CHART_WIDTH - 8
    axis = (
        f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#8a939c"/>'
        f'<text x="{left - 6}" y="{top + 10}" text-anchor="end" font-size="11">{peak}</text>'
        f'<text x="{left - 6}" y="{top + inner_h}" text-anchor="end" font-size="11">0</text>'
        f'<text x="{left}" y="{CHART_HEIGHT - 4}" font-size="11">{first}</text>'
        f'<text x="{right}" y="{CHART_HEIGHT - 4}" text-anchor="end" font-size="11">'
        f"{last} UTC</text>"
    )  # fmt: skip
    return (
        f'<svg id="events-chart" role="img" aria-label="events per minute over the last hour" '
        f'xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}">{axis}{"".join(bars)}</svg>'
    )


def _recent(view: DaemonView) -> str:
    entries = view.recent.entries()
    if not entries:
        return "<h2>Recent warnings and errors</h2><p id=recent>none</p>"
    items = "".join(
        f'<li class="{_e(e.level)}">{_e(_when(e.time))} {_e(e.level)} {_e(e.logger)}: '
        f"{_e(e.message)}</li>"
        for e in entries
    )
    return f"<h2>Recent warnings and errors</h2><ul class=log id=recent>{items}</ul>"
