"""The audit list of operator commands, kept in the state file and written to the log."""

from __future__ import annotations

import getpass
import logging
import os
from datetime import UTC, datetime
from typing import Any

from shotgun_events.state.protocols import ExtrasStore

log = logging.getLogger("engine.control")

#: Operator actions kept in the state for audits (the oldest are dropped).
AUDIT_LENGTH = 200


def record(
    store: ExtrasStore,
    command: str,
    plugin: str,
    reason: str,
    *,
    operator: str | None = None,
    **details: Any,
) -> None:
    """Log an operator command with its reason and append it to the audit list.

    ``operator`` is who asked (the control client sends its user); by default the
    user running this process.
    """
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "operator": operator or operator_name(),
        "command": command,
        "plugin": plugin,
        "reason": reason,
        **details,
    }
    log.warning(
        "operator %s of %s by %s: %s (%s)",
        command,
        plugin,
        entry["operator"],
        reason,
        ", ".join(f"{k}={v}" for k, v in details.items()) or "no details",
    )
    store.add_extra("audit", entry, keep=AUDIT_LENGTH)


def operator_name() -> str:
    """Who is running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"
