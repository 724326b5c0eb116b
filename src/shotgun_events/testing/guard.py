"""Finding a plugin's own ``Shotgun`` connections, whose writes a dry run cannot hold back.

Two looks: the plugin file's source (``Shotgun(...)`` calls, before anything runs),
and, while a dry run runs, every ``Shotgun`` object created that is not one of the
dry run's own (connections made in helper modules or built from a variable).
"""

from __future__ import annotations

import ast
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shotgun_api3.shotgun import Shotgun

from shotgun_events.errors import PluginError

_local = threading.local()


def source_connections(path: Path) -> list[int]:
    """Line numbers of ``Shotgun(...)`` / ``shotgun_api3.Shotgun(...)`` calls in a plugin file."""
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return []  # the loader reports an unreadable or broken file in its own words
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "Shotgun":
                lines.append(node.lineno)
    return sorted(lines)


class OwnConnectionError(PluginError):
    """A plugin opened its own connection during a dry run that does not allow it."""


@contextmanager
def ours() -> Iterator[None]:
    """Mark ``Shotgun`` objects created in this block as the dry run's own."""
    previous = getattr(_local, "ours", False)
    _local.ours = True
    try:
        yield
    finally:
        _local.ours = previous


@dataclass
class ConnectionWatch:
    """While active, note every foreign ``Shotgun`` created; refuse it unless ``allow``."""

    allow: bool
    found: list[str] = field(default_factory=list)

    @contextmanager
    def active(self) -> Iterator[ConnectionWatch]:
        """Patch ``Shotgun.__init__`` for the block (every subclass goes through it)."""
        original = Shotgun.__init__
        watch = self

        def init(sg: Shotgun, *args: Any, **kwargs: Any) -> None:
            if not getattr(_local, "ours", False):
                where = _caller()
                watch.found.append(where)
                if not watch.allow:
                    raise OwnConnectionError(
                        f"dry run: the plugin opens its own Shotgun connection at {where}; its "
                        "writes would be real, so it is refused (use the sg passed to the "
                        "callback, or run try with --allow-own-connection to let it write)"
                    )
            original(sg, *args, **kwargs)

        Shotgun.__init__ = init  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            Shotgun.__init__ = original  # type: ignore[method-assign]


def _caller() -> str:
    """``file:line`` of the innermost frame outside shotgun_api3 and this module."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "shotgun_api3" not in frame.filename and not frame.filename.endswith("guard.py"):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"
