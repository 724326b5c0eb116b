"""File-system checks on a loaded ``Config``: paths usable at start, permissions worth a warning."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from shotgun_events.config.ini import config_error

if TYPE_CHECKING:
    from shotgun_events.config.model import Config


def validate_paths(config: Config) -> None:
    """Check, before anything starts, that every folder the daemon needs is usable.

    Plugin folders must exist and be readable; the folders of the state file
    and the pid file must exist and be writable; the log folder is created
    when missing (as the original did). Raises ``ConfigError`` naming the key.
    """
    for folder in config.plugin_paths:
        if not (folder.is_dir() and os.access(folder, os.R_OK | os.X_OK)):
            raise config_error(
                config.path,
                "plugins",
                "paths",
                "readable plugin folders",
                str(folder),
                "create the folder, fix the path, or remove it from the comma-separated list",
            )
    log_key = "logPath" if config.log_path else "logFile"
    try:
        config.log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise config_error(
            config.path,
            "daemon",
            log_key,
            "a log folder the daemon can create",
            str(config.log_dir),
            f"create it by hand or pick another folder ({exc.strerror})",
        ) from None
    _writable_file(config, "daemon", log_key, config.log_file_path)
    _writable_file(config, "daemon", "eventIdFile", config.event_id_file)
    _writable_file(config, "daemon", "pidFile", config.pid_file)
    if config.ca_certs and not (
        Path(config.ca_certs).is_file() and os.access(config.ca_certs, os.R_OK)
    ):
        raise config_error(
            config.path,
            "shotgun",
            "ca_certs",
            "a readable CA bundle file",
            config.ca_certs,
            "fix the path or leave ca_certs empty to use the system certificates",
        )


def _writable_file(config: Config, section: str, key: str, target: Path) -> None:
    """The file's folder must be a writable folder; an existing file must be a writable file."""
    folder = target.parent
    if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise config_error(
            config.path,
            section,
            key,
            "a file in a writable folder",
            str(target),
            f"create {folder} for the daemon's user or pick another place",
        )
    if target.exists() and not (target.is_file() and os.access(target, os.W_OK)):
        raise config_error(
            config.path,
            section,
            key,
            "a writable file",
            str(target),
            "give the daemon's user write access or pick another path",
        )


def permission_warnings(config: Config) -> list[str]:
    """Return one line per risky permission: who else can read secrets or change plugin code.

    A config file or plugin that other users may write lets them run code as
    the daemon's user; a config readable by others leaks credentials when it
    holds them literally (values taken from the environment are not in it).
    """
    found: list[str] = []
    mode = _mode(config.path)
    if mode & stat.S_IWOTH:
        found.append(
            f"{config.path}: writable by other users, who could point the daemon at their "
            f"own plugins; run chmod o-w {config.path}"
        )
    if mode & stat.S_IROTH and _holds_literal_secret(config):
        found.append(
            f"{config.path}: readable by other users and holds a secret in clear; run "
            f"chmod o-r {config.path} or take the value from the environment, "
            "e.g. key = %(SG_ED_API_KEY)s"
        )
    for folder in config.plugin_paths:
        if _mode(folder) & stat.S_IWOTH:
            found.append(
                f"{folder}: plugin folder writable by other users, who could add code the "
                f"daemon runs; run chmod o-w {folder}"
            )
        if not folder.is_dir():
            continue
        for plugin in sorted(folder.glob("*.py")):
            if not plugin.name.startswith((".", "_")) and _mode(plugin) & stat.S_IWOTH:
                found.append(
                    f"{plugin}: plugin writable by other users, who could change code the "
                    f"daemon runs; run chmod o-w {plugin}"
                )
    return found


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode
    except OSError:
        return 0


def _holds_literal_secret(config: Config) -> bool:
    try:
        text = config.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    # Match values only (after "=" or ":"), so a short secret does not match any word.
    return any(re.search(rf"[=:][ \t]*{re.escape(s)}", text) for s in config.secrets)
