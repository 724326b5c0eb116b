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
- A folder the daemon writes into (``output_folders``: state, logs, pid file,
  control socket) is polled every ``poll_interval`` through a listing of its
  ``*.py`` files only, never watched natively: the daemon's own writes there
  would each be an event to read, build and drop (see ``fsevents.plan``).
- A folder that is missing at start, or disappears, is watched again when it
  reappears (checked at each ``take_due``); sub-folders created later too.

How each folder is watched, which observer events count, and the paths they
name, is ``fsevents``.
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
from watchdog.observers.polling import PollingObserverVFS

from shotgun_events.config.model import DEFAULTS
from shotgun_events.plugins.fsevents import (
    EVENT_FILTER,
    Watch,
    changed_files,
    code_entries,
    moves_folders,
    plan,
    python_files,
    subfolders,
)

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
        output_folders: Sequence[Path] = (),
        polling: bool = False,
        poll_interval: float = DEFAULTS.number("plugins", "poll_interval"),
        debounce: float = DEFAULTS.number("plugins", "reload_debounce"),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._paths = list(dict.fromkeys(Path(os.path.abspath(p)) for p in paths))
        self._helper_paths = list(dict.fromkeys(Path(os.path.abspath(p)) for p in helper_paths))
        self._shallow_paths = list(dict.fromkeys(Path(os.path.abspath(p)) for p in shallow_paths))
        self._outputs = frozenset(Path(os.path.abspath(p)) for p in output_folders)
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
        self._watch_lock = threading.Lock()  # guards the observers and their watches
        #: The running observers: polling (True) and native (False), each started when needed.
        self._observers: dict[bool, BaseObserver] = {}
        self._started = False
        self._watches: dict[Watch, ObservedWatch] = {}
        self._resync = False
        self._missing: set[Path] = set()
        self._settler: threading.Thread | None = None
        #: (mtime_ns, size) of the files found at start; such files are not "just written".
        self._baseline: dict[Path, tuple[int, int]] = {}

    @property
    def polling(self) -> bool:
        """True when every folder is polled (asked for, or native watching failed)."""
        return self._polling

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
            if self._started or self._closing:
                return
            self._started = True
            self._baseline = {
                path: (st.st_mtime_ns, st.st_size)
                for folder, recursive in self._folders()
                for path, st in python_files(folder, recursive)
            }
            try:
                self._launch()
            except Exception as exc:
                if self._polling:
                    raise
                log.warning(
                    "native file watching cannot start (%s); polling the plugin folders "
                    "every %.1f s instead",
                    exc,
                    self._poll_interval,
                )
                self._polling = True
                self._launch()
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
        polled = sorted(str(w.path) for w in self._watches if w.polled and not self.polling)
        if polled:
            log.info(
                "polling %s every %.1f s for code changes: the daemon writes its own files there",
                ", ".join(polled),
                self._poll_interval,
            )

    def stop(self) -> None:
        """Stop watching and join every thread the watcher started; safe to call twice."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        with self._watch_lock:
            observers = list(self._observers.values())
            self._observers.clear()
            self._watches.clear()
        for observer in observers:
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
        if not self._started or self._closing:
            return {}
        now, wall = self._clock(), self._wall_clock()
        found: dict[Path, float] = {}
        for folder, recursive in self._folders():
            for path, st in python_files(folder, recursive):
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
            folders.extend((child, True) for child in subfolders(folder))
        folders.extend((p, True) for p in self._helper_paths)
        folders.extend((p, False) for p in self._shallow_paths)
        return folders

    # -- observer side --------------------------------------------------------

    def _launch(self) -> None:
        """Schedule every existing folder on its observer and start them; dispose on error."""
        try:
            for watch in self._targets():
                self._schedule(watch)
        except BaseException:
            self._watches.clear()
            for observer in self._observers.values():
                _dispose(observer)
            self._observers.clear()
            raise

    def _schedule(self, watch: Watch) -> None:
        """Watch one folder, starting the observer of its kind if it is the first."""
        observer = self._observers.get(watch.polled)
        if observer is None:
            observer = (
                PollingObserverVFS(os.stat, code_entries, polling_interval=self._poll_interval)
                if watch.polled
                else Observer()
            )
            observer.start()
            self._observers[watch.polled] = observer
        self._watches[watch] = observer.schedule(
            _Handler(self), str(watch.path), recursive=watch.recursive, event_filter=EVENT_FILTER
        )

    def _targets(self) -> set[Watch]:
        """The folders to watch now, and how; remembers configured ones that are missing."""
        targets: set[_Target] = set()
        missing: set[Path] = set()
        for folder in self._paths:
            if not folder.is_dir():
                missing.add(folder)
                continue
            targets.add((folder, False))
            targets.update((child, True) for child in subfolders(folder))
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
        return plan(targets, self._outputs, poll_all=self._polling)

    def _sync_if_needed(self) -> None:
        with self._watch_lock:
            if not self._started or self._closing or not (self._resync or self._missing):
                return
            self._resync = False
            wanted = self._targets()
            for target in set(self._watches) - wanted:
                watch = self._watches.pop(target)
                with contextlib.suppress(Exception):  # its folder is gone: nothing to release
                    self._observers[target.polled].unschedule(watch)
            for target in wanted - set(self._watches):
                try:
                    self._schedule(target)
                except OSError as exc:
                    log.warning(
                        "cannot watch %s (%s); its changes are found by the regular scan",
                        target.path,
                        exc,
                    )
                else:
                    log.info("now watching %s", target.path)

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
