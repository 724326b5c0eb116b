"""One exception hierarchy for the daemon; the engine and the CLI catch by category."""

from __future__ import annotations


class ShotgunEventsError(Exception):
    """Base of every error this package raises on purpose."""

    #: Process exit code used when this error stops the daemon.
    exit_code = 1


class ConfigError(ShotgunEventsError):
    """The configuration is unusable; the message names file, section, key and the fix."""

    exit_code = 78  # EX_CONFIG


class StateError(ShotgunEventsError):
    """The state file cannot be read; the message names the file and the recovery command."""

    exit_code = 65  # EX_DATAERR


class StateWriteError(StateError):
    """The state could not be persisted (disk full, read-only folder, ...)."""

    exit_code = 74  # EX_IOERR


class SiteError(ShotgunEventsError):
    """A call to the site failed in a way that is worth retrying."""

    exit_code = 69  # EX_UNAVAILABLE


class SiteAuthError(SiteError):
    """The site rejected the script credentials; retrying will not help until they are fixed."""

    exit_code = 77  # EX_NOPERM


class PluginError(ShotgunEventsError):
    """A plugin could not be loaded or registered a callback the wrong way."""


class ControlError(ShotgunEventsError):
    """An operator command could not be carried out."""
