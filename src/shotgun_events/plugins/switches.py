"""Operator and cool-down switches: which plugins are kept off, and which come back on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shotgun_events.plugins.loader import Plugin

log = logging.getLogger("engine")


class PluginSwitches:
    """Keep operator-disabled plugins off; switch failed ones on after the cool-down."""

    def __init__(
        self,
        disabled: dict[str, str],
        *,
        cooldown: float,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        #: Plugin name -> the operator's reason, for plugins switched off by `disable`.
        self.disabled = disabled
        self._cooldown = cooldown
        # The same clock Plugin.deactivate stamps failed_at with.
        self._monotonic = monotonic or (lambda: time.monotonic())

    def apply_disabled(self, plugins: Iterable[Plugin]) -> None:
        """Switch off every plugin an operator disabled (also right after a reload)."""
        for plugin in plugins:
            reason = self.disabled.get(plugin.name)
            if reason is not None and plugin.active:
                plugin.active = False
                plugin.reason = f"disabled by an operator: {reason}"
                plugin.failed_at = None

    def revive_cooled_down(self, plugins: Iterable[Plugin]) -> bool:
        """Switch on plugins whose callback failed long enough ago; True if any came back."""
        if self._cooldown <= 0:
            return False
        now = self._monotonic()
        revived = False
        for plugin in plugins:
            failed_at = plugin.failed_at
            if plugin.active or failed_at is None or now - failed_at < self._cooldown:
                continue
            if plugin.name in self.disabled:
                continue
            log.warning(
                "plugin %s was switched off %.0f s ago by a failing callback; switching it on "
                "again: it resumes at the event that failed",
                plugin.name,
                now - failed_at,
            )
            plugin.failed_at = None
            plugin.reason = None
            plugin.active = True
            revived = True
        return revived
