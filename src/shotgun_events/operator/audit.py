"""The audit list of operator commands, kept in the state file and written to the log."""

from __future__ import annotations

import getpass
import logging
import os
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("engine.control")

#: Operator actions kept in the state for audits (the oldest are dropped).
AUDIT_LENGTH = 200


class ExtrasStore(Protocol):
    """The part of the state store the audit list lives in."""

    def extras(self) -> dict[str, Any]:
        """Return the extra sections."""
        ...

    def set_extra(self, name: str, value: Any) -> None:
        """Persist one extra section."""
        ...


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
    audit = list(store.extras().get("audit", []))
    audit.append(entry)
    store.set_extra("audit", audit[-AUDIT_LENGTH:])


def operator_name() -> str:
    """Who is running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"
