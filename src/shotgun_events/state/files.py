"""The state's files on disk: atomic replacement, raw reads, and where the journal lives.

No format knowledge here: the snapshot and journal encodings are in
``state.format``; reading them back is ``state.replay``; writing them is
``state.store``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from shotgun_events.errors import StateError

__all__ = ["journal_of", "read_bytes", "write_atomic"]


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a file so that readers and crashes see the old or the new bytes, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # Owner-only whatever the umask: positions and plugin paths are the daemon's business.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # never created, or the folder is read-only
            os.unlink(tmp)
        raise
    # The rename lives in the folder: sync it too, or a power cut may undo it.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def journal_of(path: Path) -> Path:
    """Return the journal file that belongs to the snapshot ``path``."""
    return path.with_name(path.name + ".journal")


def read_bytes(path: Path) -> bytes | None:
    """Return a file's bytes, None when it does not exist; StateError if unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror or exc}") from None
