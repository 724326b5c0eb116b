"""Plugin callbacks on Celery workers, with Redis as broker and result store (issue 15).

The daemon stays the one reader of the event log, the sequencer and the
keeper of every cursor: ``executor`` sends each plugin's events as tasks to
the plugin's queue (one task in flight per ordering key) and reports each
event finished when its result comes back. ``worker`` is the other side: a
Celery worker that loads the same plugin folders and runs the callbacks,
idempotent per (plugin, event id) through ``store``. ``codec`` is the JSON
wire format both sides check. Layer: delivery; imports config, notify,
client, plugins and the rest of delivery.

Nothing here imports celery, kombu or redis at module level outside
``app``/``store``/``bus``/``worker``; ``require_celery()`` turns a missing
package into one line naming the extra to install.
"""

from __future__ import annotations

import importlib

from shotgun_events.errors import ConfigError

INSTALL_HINT = "pip install 'shotgun-events[celery]'"


def require_celery(why: str) -> None:
    """Import celery and redis, or raise a one-line ConfigError saying what to install."""
    for package in ("celery", "kombu", "redis"):
        try:
            importlib.import_module(package)
        except ImportError:
            raise ConfigError(
                f"{why} needs the Python package '{package}', which is not installed; "
                f"run: {INSTALL_HINT}"
            ) from None
