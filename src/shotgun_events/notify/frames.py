"""The local variables of a failing plugin's frames, as text for its CRITICAL log record.

The original daemon logs a failing callback with the local variables of its
outermost frame in the plugin; operators read them to see which entity and
which values broke it. This module renders the same, plus the innermost
plugin frame (where it raised) when that is another frame. A *plugin frame*
is one whose code lies outside this package, the standard library and the
installed packages: the plugin file itself or a helper module it imports.

Rules, so the text stays safe and short:

- Names that look like credentials (``password``, ``token``, ``api_key``,
  ``script_key``, ``secret``, ``key`` ...) show ``***`` instead of a value,
  and the given secrets (the plugin's script keys) are masked wherever they
  appear; the log handlers' secret filter then masks the daemon's own.
- Each value is rendered with ``reprlib`` (containers cut after a few dozen
  items, nesting after a few levels) and cut at ``MAX_VALUE_CHARS``; at most
  ``MAX_LOCALS`` names per frame, sorted. A ``repr`` that raises shows why.
- Module-level frames (a helper failing at import) list their own variables,
  not the modules, functions and classes they define or import.
"""

from __future__ import annotations

import os
import re
import reprlib
import sysconfig
from collections.abc import Iterable
from types import FrameType, ModuleType, TracebackType

#: Characters of one value's representation kept in the log.
MAX_VALUE_CHARS = 500
#: Names listed per frame; the rest are counted.
MAX_LOCALS = 40

_SECRET_NAME = re.compile(
    r"(?i)(passw|secret|token|credential|api_?key|script_?key|authoriz|^auth$|^key$|_key$|^pwd$)"
)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MASK = "***"


def _library_roots() -> tuple[str, ...]:
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    paths = sysconfig.get_paths()
    return (_PACKAGE_DIR, *sorted({os.path.abspath(paths[n]) for n in names}))


_LIBRARY_ROOTS = _library_roots()


class _ShortRepr(reprlib.Repr):
    """``reprlib`` with limits fit for a log line: enough to recognise an entity dict."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 4
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 30
        self.maxdeque = self.maxarray = 30
        self.maxstring = self.maxother = MAX_VALUE_CHARS
        self.maxlong = 100


_repr = _ShortRepr()


def is_plugin_code(filename: str) -> bool:
    """Tell whether a code file is plugin code (not this package, the stdlib or a library)."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    return not any(path == root or path.startswith(root + os.sep) for root in _LIBRARY_ROOTS)


def plugin_frames(exc: BaseException) -> list[tuple[FrameType, int]]:
    """The (frame, line) pairs of ``exc``'s traceback that run plugin code, outermost first."""
    found: list[tuple[FrameType, int]] = []
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if is_plugin_code(tb.tb_frame.f_code.co_filename):
            found.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return found


def describe_locals(exc: BaseException, *, secrets: Iterable[str] = ()) -> str:
    """Return the local variables of the outermost and innermost plugin frames of ``exc``.

    Empty when no frame of the traceback is plugin code (a built-in callable).
    """
    frames = plugin_frames(exc)
    if not frames:
        return ""
    masked = sorted({s for s in secrets if isinstance(s, str) and len(s) >= 4}, key=len)[::-1]
    blocks = [_frame_block("outermost plugin frame", *frames[0], masked)]
    if len(frames) > 1:
        blocks.append(_frame_block("innermost plugin frame, where it raised", *frames[-1], masked))
    return "\n\n".join(blocks)


def _frame_block(title: str, frame: FrameType, line: int, secrets: list[str]) -> str:
    code = frame.f_code
    module_level = code.co_name == "<module>"
    names = sorted(
        name
        for name, value in frame.f_locals.items()
        if not (module_level and (name.startswith("__") or _is_definition(value)))
    )
    head = f"Local variables in the {title} ({code.co_name}, {code.co_filename}:{line}):"
    if not names:
        return f"{head}\n    (none)"
    lines = [head]
    for name in names[:MAX_LOCALS]:
        lines.append(f"    {name} = {_value(name, frame.f_locals[name], secrets)}")
    if len(names) > MAX_LOCALS:
        lines.append(f"    ... and {len(names) - MAX_LOCALS} more")
    return "\n".join(lines)


def _is_definition(value: object) -> bool:
    return isinstance(value, (ModuleType, type)) or callable(value)


def _value(name: str, value: object, secrets: list[str]) -> str:
    if _SECRET_NAME.search(name) and value is not None:
        return _MASK
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a plugin's __repr__ may fail; its failure must not hide this one
        text = f"<repr failed: {type(exc).__name__}>"
    for secret in secrets:
        text = text.replace(secret, _MASK)
    if len(text) > MAX_VALUE_CHARS:
        text = f"{text[:MAX_VALUE_CHARS]}... ({len(text)} chars)"
    return text
