"""What plugins print: whole lines on stdout and stderr, never mixed mid-line across threads.

``print(a, b)`` is four ``write`` calls (``a``, the separator, ``b``, the end),
and a thread may be switched out between any two: with plugins running side by
side (``dispatch = parallel``) two plugins printing event dicts produce lines
such as ``'created_at'requests.post(...)``. The original ran one plugin at a
time, so its output never mixed.

``LineWriter`` replaces ``sys.stdout`` and ``sys.stderr`` while the daemon
runs. Each thread's text is held until it ends a line; complete lines go to
the real stream in one write under one lock, so lines from different threads
alternate but never mix. Rules:

- A partial line waits for its newline. It is written anyway when it grows
  past ``max_pending`` characters (a plugin printing without newlines must not
  fill the memory), when its thread has ended (noticed at the next write of a
  new thread), and when the writer is uninstalled.
- ``flush()`` flushes the real stream; it does not cut a partial line (a
  plugin calling ``print(..., end="", flush=True)`` gets its line whole once
  it ends).
- Everything else (``fileno``, ``isatty``, ``encoding``, ``buffer``) is the
  real stream's; bytes written to ``sys.stdout.buffer`` bypass the writer.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

#: Characters of one thread's unfinished line held before it is written anyway.
MAX_PENDING = 64 * 1024
#: Threads with pending text after which ended threads' leftovers are written out.
_PRUNE_AT = 64


class _Held:
    """One thread's unfinished line."""

    __slots__ = ("parts", "size", "thread")

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.parts: list[str] = []
        self.size = 0

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts.clear()
        self.size = 0
        return text


class LineWriter:
    """A text stream that writes whole lines per thread to another stream."""

    def __init__(self, target: TextIO, *, max_pending: int = MAX_PENDING) -> None:
        self.target = target
        self._max_pending = max_pending
        self._lock = threading.Lock()
        #: Thread ident -> that thread's unfinished line.
        self._pending: dict[int, _Held] = {}

    def write(self, text: str) -> int:
        """Hold ``text`` until its thread ends the line; write complete lines at once."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        ident = threading.get_ident()
        with self._lock:
            held = self._pending.get(ident)
            if held is None:
                if len(self._pending) >= _PRUNE_AT:
                    self._write_out_ended()
                held = self._pending[ident] = _Held(threading.current_thread())
            held.parts.append(text)
            held.size += len(text)
            if "\n" in text:
                done, _, rest = held.take().rpartition("\n")
                self._emit(done + "\n")
                if rest:
                    held.parts.append(rest)
                    held.size = len(rest)
            elif held.size > self._max_pending:
                self._emit(held.take())
            if not held.parts:
                del self._pending[ident]
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each string of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the real stream (an unfinished line stays held)."""
        with self._lock:
            self._flush_target()

    def close_out(self) -> None:
        """Write every held partial line, each ended by a newline, and flush."""
        with self._lock:
            for held in self._pending.values():
                self._emit(held.take() + "\n")
            self._pending.clear()
            self._flush_target()

    def writable(self) -> bool:
        """Always True."""
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)

    def _write_out_ended(self) -> None:
        for ident, held in list(self._pending.items()):
            if not held.thread.is_alive():
                self._emit(held.take() + "\n")
                del self._pending[ident]

    def _emit(self, text: str) -> None:
        # Output must never take a plugin down: a closed or broken stream loses the text.
        with contextlib.suppress(OSError, ValueError):
            self.target.write(text)

    def _flush_target(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.target.flush()


@contextlib.contextmanager
def whole_lines() -> Iterator[tuple[Any, Any]]:
    """Replace ``sys.stdout`` and ``sys.stderr`` by line writers for the block.

    Streams that are already line writers are left as they are (a reload
    inside the block, or a nested call).
    """
    saved = sys.stdout, sys.stderr
    out, err = _wrap(sys.stdout), _wrap(sys.stderr)
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        if sys.stdout is out:
            sys.stdout = saved[0]
        if sys.stderr is err:
            sys.stderr = saved[1]
        for writer, original in ((out, saved[0]), (err, saved[1])):
            if writer is not original and isinstance(writer, LineWriter):
                writer.close_out()


def _wrap(stream: TextIO | None) -> Any:
    """A line writer around ``stream``; the stream itself if it is one already, or None."""
    if stream is None or isinstance(stream, LineWriter):
        return stream
    return LineWriter(stream)
