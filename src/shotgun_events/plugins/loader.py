"""Plugin folders and files: scan, import, reload on change, deactivate.

Rules:

- A plugin is a ``*.py`` file directly in a configured folder whose name does
  not start with ``.`` or ``_``. Folders are processed in configuration order,
  plugins in file-name order, ``.py`` included, as the original sorts them
  (``order-2.py`` before ``order.py``, since ``-`` sorts before ``.``).
- ``scan()`` is the source of truth; a file watcher only makes it run sooner
  and tells it which paths to look at closely. Change detection costs one
  ``os.scandir`` per folder and one ``stat`` per file per scan. Any difference
  in ``(mtime_ns, size)``, in either direction (an older mtime after a ``git
  checkout`` or ``cp -p`` counts), reloads the plugin, and so does ``touch``,
  as operators do with the original to revive a plugin that was switched off.
- Paths passed as ``changed`` (reported by the watcher) are also hashed: a
  content change that kept both mtime_ns and size reloads too. A reported path
  whose stat and content are both unchanged (a ``chmod``, a save of identical
  bytes within the same mtime tick) does not reload. Without a watcher such an
  edit waits for the next stat change or a forced ``reload()``.
- Paths passed as ``settling`` (still being written, per the watcher's
  debounce) are left exactly as they are for this scan: not added, reloaded or
  removed, so a half-written file is never imported.
- Each load compiles the bytes it hashed (never a ``__pycache__`` file, whose
  validation by whole seconds and size could run stale code after a quick
  same-size edit) into a module with a new name; the previous module is
  dropped from ``sys.modules``.
- Reload is atomic: the new ``registerCallbacks`` runs into a fresh
  ``Registrar``; only when it succeeds do its callbacks replace the old ones.
  A broken edit switches the plugin off until fixed; the ``Plugin`` object
  (and so its key and its cursor in the engine) is kept, so it resumes where
  it stopped.
- Helper modules (files under a plugin folder that are not plugins, such as
  ``_common/util.py``, and modules under ``helper_paths``) are tracked per
  plugin load (see ``helpers.py``). When one changes (stat change, or content
  change of a reported path) its modules are evicted from ``sys.modules`` and
  every plugin that imported it is reloaded, in plugin order. Helper paths are
  put on ``sys.path`` like plugin folders (the wiring passes the config file's
  folder last among them, see ``Config.plugin_import_paths``). The first scan drops helpers that
  were imported before it (a previous loader), so dependencies are complete.
  A plugin that could not be reloaded when its helper changed (its own file
  settling, its folder unreadable) is reloaded at the next scan that can.
- A renamed plugin file is the removal of the old name and the addition of a
  new plugin: positions are keyed by name, so it starts as a new plugin (the
  log says so when the content is the same).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import sys
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shotgun_events.errors import PluginError
from shotgun_events.events import PluginKey
from shotgun_events.plugins.helpers import HelperTracker, normalise, record_imports
from shotgun_events.plugins.imports import plugin_module_name

# Re-exported: shotgun_events.testing and plugin authors' tests import it from here.
from shotgun_events.plugins.imports import register_plugin_file as register_plugin_file
from shotgun_events.plugins.listing import Entry, FolderLister, with_settling
from shotgun_events.plugins.registrar import Callback, Registrar, Timer
from shotgun_events.plugins.reports import report_load_failure
from shotgun_events.telemetry import NULL, Telemetry

log = logging.getLogger("engine.loader")

Fingerprint = tuple[int, int, str]


def _default_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"plugin.{name}")


@dataclass(eq=False)
class Plugin:
    """One plugin file; the same object lives across reloads, so ``key`` stays valid."""

    key: PluginKey
    collection: Path
    name: str
    path: Path
    logger: logging.Logger = field(repr=False)
    callbacks: list[Callback] = field(default_factory=list, repr=False)
    timers: list[Timer] = field(default_factory=list, repr=False)
    emails: bool | tuple[str, ...] = True
    #: What the plugin asked for in code (reg.setProjects / setIgnoreOwnEvents); None: not asked.
    projects: tuple[int | str, ...] | None = None
    ignore_own_events: bool | None = None
    active: bool = False
    #: Why the plugin is inactive (one line); None while active.
    reason: str | None = None
    #: (mtime_ns, size, sha1 of the content loaded); sha1 is "" if the file could not be read.
    fingerprint: Fingerprint = (0, 0, "")
    #: Incremented at every load attempt, so holders of old callbacks can tell.
    generation: int = 0
    module_name: str | None = field(default=None, repr=False)
    #: Helper files the last load imported (or failed in); a change to one reloads the plugin.
    helper_files: frozenset[Path] = field(default_factory=frozenset, repr=False)
    #: What ``reg.setConcurrency`` asked for (the config's [plugin:NAME] section wins).
    concurrency: int = 1
    order_by: str = "entity"
    #: time.monotonic() when a callback error switched the plugin off (for the cool-down).
    failed_at: float | None = field(default=None, repr=False)

    def deactivate(self, reason: str, *, by_callback: bool = False) -> None:
        """Switch the plugin off until its file changes (the caller has logged the error)."""
        self.active = False
        self.reason = reason
        self.failed_at = time.monotonic() if by_callback else None
        log.info(
            "plugin %s deactivated: %s; it will be reloaded when its file changes (%s)",
            self.name,
            reason,
            self.path,
        )


@dataclass
class ScanResult:
    """What one scan changed; plugins are the live objects held by the loader."""

    added: list[Plugin] = field(default_factory=list)
    reloaded: list[Plugin] = field(default_factory=list)
    removed: list[Plugin] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.reloaded or self.removed)


class PluginLoader:
    """Keeps the plugins of the configured folders loaded and up to date with their files."""

    telemetry: Telemetry = NULL

    def __init__(
        self,
        *,
        paths: Sequence[Path],
        helper_paths: Sequence[Path] = (),
        logger_factory: Callable[[str], logging.Logger] = _default_logger,
    ) -> None:
        # The same folder listed twice would load its plugins twice under the same key.
        self._paths = list(dict.fromkeys(Path(p) for p in paths))
        self._helper_paths = list(dict.fromkeys(Path(p) for p in helper_paths))
        self._logger_factory = logger_factory
        self._plugins: dict[PluginKey, Plugin] = {}
        self._folders = FolderLister()
        self._helpers = HelperTracker([*self._paths, *self._helper_paths])
        self._scanned = False
        #: Plugins whose helpers changed while they could not be reloaded (settling, unreadable).
        self._owed: set[PluginKey] = set()
        #: Collections in ``paths`` order, plugins in file-name order; inactive ones included.
        self.plugins: list[Plugin] = []

    def written_within(self, seconds: float) -> set[Path]:
        """Plugin files whose mtime is less than ``seconds`` old: ``settling`` for a scan
        that has no watcher to debounce it (a Celery worker's rescan)."""
        now_ns = time.time_ns()
        return {
            normalise(path)
            for collection in self._paths
            for _, path, (mtime_ns, _) in self._folders.list(collection) or ()
            if 0 <= now_ns - mtime_ns < seconds * 1e9
        }

    def get(self, key: PluginKey) -> Plugin | None:
        """Return the plugin with this key, or None."""
        return self._plugins.get(key)

    def scan(self, changed: Collection[Path] = (), settling: Collection[Path] = ()) -> ScanResult:
        """Load new files, reload changed ones (or whose helpers changed), unload deleted ones.

        ``changed``: paths a watcher reported, checked by content as well as by
        stat. ``settling``: paths still being written, left alone this time.
        """
        reported = {normalise(p) for p in changed}
        waiting = {normalise(p) for p in settling}
        if not self._scanned:
            self._helpers.evict_all()
            self._scanned = True
        stale = self._helpers.evict(self._helpers.changed_files(reported, waiting))
        if stale or reported:
            # The import system caches folder listings; a helper created since must be found.
            importlib.invalidate_caches()
        result = ScanResult()
        ordered: list[Plugin] = []
        seen: set[PluginKey] = set()
        for collection in self._paths:
            entries = self._list(collection)
            if entries is None:
                # An unreadable folder (a network mount hiccup) keeps its plugins as they were.
                kept = [p for p in self.plugins if p.collection == collection]
                ordered.extend(kept)
                seen.update(p.key for p in kept)
                continue
            for name, path, stat in with_settling(collection, entries, waiting):
                key = (str(collection), name)
                plugin = self._plugins.get(key)
                if stat is None or normalise(path) in waiting:
                    if plugin is not None:  # still being written: keep what runs now
                        ordered.append(plugin)
                        seen.add(key)
                    continue
                seen.add(key)
                if plugin is None:
                    plugin = Plugin(key, collection, name, path, self._logger_factory(name))
                    self._plugins[key] = plugin
                    self._load(plugin, stat)
                    result.added.append(plugin)
                elif self._needs_reload(plugin, stat, reported, stale):
                    self._load(plugin, stat)
                    result.reloaded.append(plugin)
                ordered.append(plugin)
        for key in [k for k in self._plugins if k not in seen]:
            plugin = self._plugins.pop(key)
            self._unload(plugin, "its file was removed")
            result.removed.append(plugin)
        self.plugins = ordered
        done = {p.key for p in (*result.added, *result.reloaded, *result.removed)}
        self._owed.update(p.key for p in ordered if p.key not in done and p.helper_files & stale)
        self._owed.difference_update(done)
        self._helpers.forget_except(set().union(*(p.helper_files for p in ordered)))
        _log_renames(result)
        return result

    def reload(self, key: PluginKey) -> Plugin | None:
        """Reload one plugin now, changed or not (operator ``reload``, SIGHUP)."""
        plugin = self._plugins.get(key)
        if plugin is None:
            return None
        try:
            st = plugin.path.stat()
            stat = (st.st_mtime_ns, st.st_size)
        except OSError:
            stat = (0, 0)  # _load reports the read error; the next scan removes a deleted file
        self._load(plugin, stat)
        return plugin

    def _needs_reload(
        self, plugin: Plugin, stat: tuple[int, int], reported: set[Path], stale: set[Path]
    ) -> bool:
        if plugin.fingerprint[:2] != stat:
            return True
        if plugin.helper_files & stale or plugin.key in self._owed:
            log.info(
                "reloading plugin %s: helper %s changed",
                plugin.name,
                ", ".join(sorted(str(p) for p in plugin.helper_files & stale)) or "earlier",
            )
            return True
        if normalise(plugin.path) not in reported:
            return False
        try:
            digest = hashlib.sha1(plugin.path.read_bytes()).hexdigest()
        except OSError:
            return True  # _load reports the read error and switches the plugin off
        return digest != plugin.fingerprint[2]

    def _list(self, collection: Path) -> list[Entry] | None:
        """List a folder's plugin files with their (mtime_ns, size), sorted by name."""
        # A method, not a direct call: testing's one-file loader narrows the listing here.
        return self._folders.list(collection)

    def _load(self, plugin: Plugin, stat: tuple[int, int]) -> None:
        """(Re)load one plugin atomically; on failure it stays known but inactive."""
        plugin.generation += 1
        try:
            source = plugin.path.read_bytes()
        except OSError as exc:
            plugin.fingerprint = (*stat, "")
            self._fail(plugin, f"cannot read {plugin.path}: {exc}", exc)
            return
        plugin.fingerprint = (*stat, hashlib.sha1(source).hexdigest())
        registrar = Registrar(plugin.name, plugin.path, plugin.logger)
        module_name = plugin_module_name(plugin.path)
        before = set(sys.modules)
        failure: PluginError | None = None
        with record_imports() as record:
            try:
                module = register_plugin_file(
                    plugin.path,
                    source,
                    registrar,
                    module_name=module_name,
                    helper_paths=self._helper_paths,
                )
            except PluginError as exc:
                failure = exc
        plugin.helper_files = self._helpers.dependencies(
            module_name, record, set(sys.modules) - before, failure
        )
        if failure is not None:
            # Its script keys must not show in the locals of the failed registerCallbacks.
            keys = [c.script_key for c in registrar.callbacks] + [
                t.script_key for t in registrar.timers
            ]
            self._fail(plugin, str(failure), failure, keys)
            return
        self._drop_module(plugin)
        plugin.module_name = module.__name__
        plugin.callbacks = registrar.callbacks
        plugin.timers = _with_credentials(registrar.timers, registrar.callbacks)
        plugin.emails = registrar.emails
        plugin.projects, plugin.ignore_own_events = registrar.projects, registrar.ignore_own_events
        plugin.concurrency = registrar.concurrency
        plugin.order_by = registrar.order_by
        plugin.active = True
        plugin.reason = None
        plugin.failed_at = None
        self.telemetry.plugin_loaded(plugin.name, None)
        if plugin.callbacks or plugin.timers:
            parts = []
            if plugin.callbacks:
                names = ", ".join(cb.name for cb in plugin.callbacks)
                parts.append(f"{len(plugin.callbacks)} callbacks: {names}")
            if plugin.timers:
                parts.append(
                    "timers: " + ", ".join(f"{t.name} every {t.every:g} s" for t in plugin.timers)
                )
            log.info(
                "loaded plugin %s from %s (%s; sha1 %s)",
                plugin.name,
                plugin.path,
                "; ".join(parts),
                plugin.fingerprint[2][:12],
            )
        else:
            log.warning(
                "plugin %s (%s) registered no callbacks and no timers; it will receive no events",
                plugin.name,
                plugin.path,
            )

    def _fail(
        self, plugin: Plugin, reason: str, exc: BaseException, secrets: Iterable[str] = ()
    ) -> None:
        # The old callbacks belong to a module that is going away: an inactive plugin has none.
        self._drop_module(plugin)
        plugin.callbacks, plugin.timers = [], []
        reason = (reason.strip().splitlines() or ["unknown error"])[0]
        self.telemetry.plugin_loaded(plugin.name, reason)
        report_load_failure(plugin.name, plugin.logger, reason, exc, secrets=secrets)
        plugin.deactivate(reason)

    def _unload(self, plugin: Plugin, reason: str) -> None:
        self._drop_module(plugin)
        plugin.callbacks, plugin.timers = [], []
        plugin.active = False
        plugin.reason = reason
        log.info("plugin %s unloaded: %s (%s)", plugin.name, reason, plugin.path)

    @staticmethod
    def _drop_module(plugin: Plugin) -> None:
        if plugin.module_name is not None:
            sys.modules.pop(plugin.module_name, None)
            plugin.module_name = None


def _with_credentials(timers: list[Timer], callbacks: list[Callback]) -> list[Timer]:
    """Give timers registered without credentials those of the plugin's first callback."""
    if callbacks:
        first = callbacks[0]
        for timer in timers:
            if not timer.script_name:
                timer.script_name, timer.script_key = first.script_name, first.script_key
    return timers


def _log_renames(result: ScanResult) -> None:
    """Say so when a plugin added in a scan has the content of one removed in the same scan."""
    removed = {p.fingerprint[2]: p for p in result.removed if p.fingerprint[2]}
    for plugin in result.added:
        old = removed.get(plugin.fingerprint[2])
        if old is not None:
            log.info(
                "plugin %s looks like plugin %s renamed; positions are kept by name, so it "
                "starts as a new plugin and %s's position stays saved under its old name",
                plugin.name,
                old.name,
                old.name,
            )
