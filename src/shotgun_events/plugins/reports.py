"""Log a plugin that failed to load where its operators look: on its own logger.

As in the original daemon, the details go to the plugin's logger
``plugin.<name>`` (its own file in log mode 1, and its email recipients):

- ``registerCallbacks`` raised, refused a registration, or is missing:
  CRITICAL, with the traceback and, when it raised, the local variables of its
  frames (``notify/frames.py``).
- The file could not be read or imported (syntax error, missing module):
  ERROR, with the traceback.

The main log gets one WARNING line naming the plugin and the reason, so the
engine's file still tells what is switched off and why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shotgun_events.notify.frames import describe_locals

log = logging.getLogger("engine.loader")


def report_load_failure(
    name: str,
    logger: logging.Logger,
    reason: str,
    exc: BaseException,
    *,
    secrets: Iterable[str] = (),
) -> None:
    """Log one failed load: a WARNING line in the main log, the details on ``logger``."""
    log.warning(
        "plugin %s failed to load; it stays off until its file changes: %s "
        "(traceback in the log of plugin.%s)",
        name,
        reason,
        name,
    )
    if getattr(exc, "step", None) != "registerCallbacks":
        logger.error(
            "could not load plugin %s; it stays off until its file changes: %s",
            name,
            reason,
            exc_info=exc,
        )
        return
    cause = exc.__cause__
    frames = describe_locals(cause, secrets=secrets) if cause is not None else ""
    logger.critical(
        "registerCallbacks of plugin %s failed; it stays off until its file changes: %s%s",
        name,
        reason,
        f"\n\n{frames}" if frames else "",
        exc_info=exc,
    )
