"""Log lines about a plugin's gaps in the event ids: waited for, given up on, as compact ranges."""

from __future__ import annotations

import logging

from shotgun_events.cursor import GapReport

log = logging.getLogger("engine.runner")


def log_gaps(plugin_name: str, report: GapReport) -> None:
    """Log the ids a cursor move found missing: awaited now, or too old to wait for."""
    if report.waiting:
        log.debug(
            "%s: ids %s not visible yet; waiting for them",
            plugin_name,
            ranges(report.waiting),
        )
    if report.abandoned:
        log.info(
            "%s: ids %s are missing from events older than the backlog timeout; "
            "not waiting for them",
            plugin_name,
            ranges(report.abandoned),
        )


def ranges(ids: tuple[int, ...] | list[int]) -> str:
    """Compress sorted ids into 'a-b, c' for one-line log messages."""
    parts: list[str] = []
    start = prev = None
    for value in sorted(ids):
        if start is None:
            start = prev = value
        elif prev is not None and value == prev + 1:
            prev = value
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = value
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    if len(parts) > 10:
        return ", ".join(parts[:10]) + f" and {len(parts) - 10} more ranges"
    return ", ".join(parts)
