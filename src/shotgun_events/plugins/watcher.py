"""Watch plugin folders and helper paths, so plugin changes are picked up without waiting.

The watcher never loads anything: it collects the ``*.py`` paths that changed
and hands them to the loop, whose ``PluginLoader.scan(changed=..., settling=...)``
stays the source of truth (a missed or dropped event only delays a reload until
the next scan notices the stat change). Rules:

- Plugin folders are watched non-recursively; their sub-folders (helper
  packages such as ``_common/``, except hidden ones and ``__pycache__``) and
  every helper path recursively; shallow paths (the config file's folder)
  without their sub-folders. Created, modified, deleted, moved (both ends),
  closed-after-write and attribute (``touch``, ``os.utime``) events count.
- Debounce: a path is *due* once ``debounce`` seconds passed since its last
  event; until then it is *pending* (an editor or rsync still writing it).
  ``changed`` is set as soon as a path becomes due, from a small settler
  thread, so waking on it never catches a file mid-write.
- A file whose mtime is less than ``debounce`` old is pending too, reported
  or not: the loop's stat scan would otherwise import a file the observer has
  not reported yet (a polling observer sees a write up to ``poll_interval``
  late, a native one a moment late). ``pending()`` looks for such files in the
  watched folders, and hands them to the settler so the loop is woken when they
  are due. Files as they were when the watcher started are not (the first scan
  loads them as it finds them: deferring one would move its start position). A
  file server whose clock is more than ``debounce`` off leaves only the
  observer's own debounce.
- Native watching (inotify) is used unless ``polling`` is asked for (network
  file systems, where inotify sees no remote writes); if it cannot start (no
  inotify, watch limits), the watcher polls instead and says so at WARNING.
- A folder that is missing at start, or disappears, is watched again when it
  reappears (checked at each ``take_due``); sub-folders created later too.

Which observer events count, and the paths they name, is ``fsevents``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from shotgun_events.plugins.fsevents import EVENT_FILTER, changed_files, moves_folders

log = logging.getLogger("engine.watcher")

#: (folder, recursive)
_Target = tuple[Path, bool]


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: PluginWatcher) -> None:
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        self._watcher._on_event(event)


class PluginWatcher:
    """Report changed ``*.py`` files under plugin folders and helper paths, debounced."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        helper_paths: Sequence[Path] = (),
        shallow_paths: Sequence[Path] = (),
        polling: bool = False,
        poll_interval: float = 1.0,
        debounce: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._paths = list(dict.fromkeys(Path(os.path.abspath(p)) for p in paths))
        self._helper_paths = list(dict.fromkeys(Path(os.path.abspath(p)) for p in helper_paths))
        self._shallow_paths = list(dict.fromkeys(Path(os.path.abspath(p)) for p in shallow_paths))
        self._polling = polling
        self._poll_interval = poll_interval
        self._debounce = debounce
        self._clock = clock
        self._wall_clock = wall_clock
        #: Set once a changed path is due; ``take_due`` clears it.
        self.changed = threading.Event()
        self._cond = threading.Condition()  # guards _pending and _closing
        self._pending: dict[Path, float] = {}
        self._closing = False
        self._watch_lock = threading.Lock()  # guards the observer and its watches
        self._observer: BaseObserver | None = None
        self._watches: dict[_Target, ObservedWatch] = {}
        self._resync = False
        self._missing: set[Path] = set()
        self._settler: threading.Thread | None = None
        #: (mtime_ns, size) of the files found at start; such files are not "just written".
        self._baseline: dict[Path, tuple[int, int]] = {}

    @property
    def polling(self) -> bool:
        """True when the running observer polls (asked for, or the native one failed)."""
        return isinstance(self._observer, PollingObserver)

    def __enter__(self) -> PluginWatcher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start watching (once); falls back to polling if native watching cannot start."""
        with self._watch_lock:
            if self._observer is not None or self._closing:
                return
            self._baseline = {
                path: (st.st_mtime_ns, st.st_size)
                for folder, recursive in self._folders()
                for path, st in _python_files(folder, recursive)
            }
            if not self._polling:
                try:
                    self._observer = self._launch(Observer())
                except Exception as exc:
                    log.warning(
                        "native file watching cannot start (%s); polling the plugin folders "
                        "every %.1f s instead",
                        exc,
                        self._poll_interval,
                    )
            if self._observer is None:
                self._observer = self._launch(PollingObserver(timeout=self._poll_interval))
        self._settler = threading.Thread(
            target=self._settle, name="plugin-watcher-settler", daemon=True
        )
        self._settler.start()
        log.info(
            "watching %d plugin folders and %d helper paths for changes (%s, debounce %.2f s)",
            len(self._paths),
            len(self._helper_paths),
            "polling" if self.polling else "native",
            self._debounce,
        )

    def stop(self) -> None:
        """Stop watching and join every thread the watcher started; safe to call twice."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        with self._watch_lock:
            observer, self._observer = self._observer, None
            self._watches.clear()
        if observer is not None:
            _dispose(observer)
        if self._settler is not None:
            self._settler.join()
            self._settler = None

    def pending(self) -> dict[Path, float]:
        """Paths still settling (reported, or written less than ``debounce`` ago), with the
        clock time of their last change."""
        recent = self._recently_written()
        with self._cond:
            for path, written in recent.items():
                if written > self._pending.get(path, float("-inf")):
                    self._pending[path] = written
            if recent:
                self._cond.notify_all()
            return dict(self._pending)

    def take_due(self) -> set[Path]:
        """Return and forget the changed paths whose last event is ``debounce`` seconds old."""
        with self._cond:
            now = self._clock()
            due = {p for p, t in self._pending.items() if now - t >= self._debounce}
            for path in due:
                del self._pending[path]
            # What is left is not due yet; the settler sets the event again when it is.
            self.changed.clear()
            self._cond.notify_all()
        self._sync_if_needed()
        return due

    def _recently_written(self) -> dict[Path, float]:
        """``*.py`` files in the watched folders whose mtime is less than ``debounce`` old."""
        if self._observer is None:
            return {}
        now, wall = self._clock(), self._wall_clock()
        found: dict[Path, float] = {}
        for folder, recursive in self._folders():
            for path, st in _python_files(folder, recursive):
                if path in self._baseline:
                    if self._baseline[path] == (st.st_mtime_ns, st.st_size):
                        continue
                    self._baseline.pop(path, None)  # changed since start: an ordinary file now
                age = wall - st.st_mtime
                if 0 <= age < self._debounce:
                    found[path] = now - age
        return found

    def _folders(self) -> list[_Target]:
        """The folders ``pending`` looks into: as watched, without the watch bookkeeping."""
        folders: list[_Target] = [(p, False) for p in self._paths]
        for folder in self._paths:
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                folders.extend(
                    (Path(e.path), True)
                    for e in entries
                    if _watched_dir(e.name) and e.is_dir(follow_symlinks=False)
                )
        folders.extend((p, True) for p in self._helper_paths)
        folders.extend((p, False) for p in self._shallow_paths)
        return folders

    # -- observer side --------------------------------------------------------

    def _launch(self, observer: BaseObserver) -> BaseObserver:
        """Schedule every existing target on ``observer`` and start it; dispose of it on error."""
        try:
            for target in self._targets():
                self._watches[target] = observer.schedule(
                    _Handler(self),
                    str(target[0]),
                    recursive=target[1],
                    event_filter=EVENT_FILTER,
                )
            observer.start()
        except BaseException:
            self._watches.clear()
            _dispose(observer)
            raise
        return observer

    def _targets(self) -> set[_Target]:
        """The folders to watch now; remembers configured ones that are missing."""
        targets: set[_Target] = set()
        missing: set[Path] = set()
        for folder in self._paths:
            if not folder.is_dir():
                missing.add(folder)
                continue
            targets.add((folder, False))
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                targets.update(
                    (Path(e.path), True)
                    for e in entries
                    if _watched_dir(e.name) and e.is_dir(follow_symlinks=False)
                )
        for folder in self._helper_paths:
            if folder.is_dir():
                targets.add((folder, True))
            else:
                missing.add(folder)
        targets.update((p, False) for p in self._shallow_paths if p.is_dir())
        for folder in missing - self._missing:
            log.warning(
                "%s is not a folder (yet); it is watched once it exists, and scanned meanwhile",
                folder,
            )
        self._missing = missing
        return targets

    def _sync_if_needed(self) -> None:
        with self._watch_lock:
            observer = self._observer
            if observer is None or not (self._resync or self._missing):
                return
            self._resync = False
            wanted = self._targets()
            for target in set(self._watches) - wanted:
                watch = self._watches.pop(target)
                with contextlib.suppress(Exception):  # its folder is gone: nothing to release
                    observer.unschedule(watch)
            for target in wanted - set(self._watches):
                try:
                    self._watches[target] = observer.schedule(
                        _Handler(self),
                        str(target[0]),
                        recursive=target[1],
                        event_filter=EVENT_FILTER,
                    )
                except OSError as exc:
                    log.warning(
                        "cannot watch %s (%s); its changes are found by the regular scan",
                        target[0],
                        exc,
                    )
                else:
                    log.info("now watching %s", target[0])

    def _on_event(self, event: FileSystemEvent) -> None:
        """Runs on the observer thread: note relevant paths, never load anything."""
        if moves_folders(event):
            self._resync = True
        found = changed_files(event)
        if not found:
            return
        with self._cond:
            now = self._clock()
            for path in found:
                self._pending[path] = now
            self._cond.notify_all()
        log.debug("%s: %s", event.event_type, ", ".join(map(str, found)))

    def _settle(self) -> None:
        """Set ``changed`` when a pending path becomes due; sleep until the next one can."""
        with self._cond:
            while not self._closing:
                now = self._clock()
                waits = [t + self._debounce - now for t in self._pending.values()]
                if any(w <= 0 for w in waits):
                    self.changed.set()
                future = [w for w in waits if w > 0]
                # An injected clock may not follow real time: never sleep longer than a debounce.
                timeout = min(min(future), max(self._debounce, 0.01)) if future else None
                self._cond.wait(timeout)


def _dispose(observer: BaseObserver) -> None:
    """Stop an observer, started or not, and join its threads."""
    observer.stop()  # also releases the inotify instance of one that never started
    if observer.ident is not None:
        observer.join()


def _watched_dir(name: str) -> bool:
    return not name.startswith(".") and name != "__pycache__"


def _python_files(folder: Path, recursive: bool) -> list[tuple[Path, os.stat_result]]:
    """(path, stat) of the ``*.py`` files in a folder (and its watched sub-folders)."""
    found: list[tuple[Path, os.stat_result]] = []
    todo = [folder]
    while todo:
        current = todo.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        if entry.name.endswith(".py") and entry.is_file():
                            found.append((Path(entry.path), entry.stat()))
                        elif (
                            recursive
                            and _watched_dir(entry.name)
                            and entry.is_dir(follow_symlinks=False)
                        ):
                            todo.append(Path(entry.path))
                    except OSError:
                        continue  # vanished meanwhile: the observer reports it
        except OSError:
            continue  # a missing or unreadable folder: nothing is being written there
    return found
