"""Plugin folders and files: scan, import, reload on change, deactivate.

Rules:

- A plugin is a ``*.py`` file directly in a configured folder whose name does
  not start with ``.`` or ``_``. Folders are processed in configuration order,
  plugins in file-name order.
- Change detection costs one ``os.scandir`` per folder and one ``stat`` per
  file per scan. Any difference in ``(mtime_ns, size)``, in either direction
  (an older mtime after a ``git checkout`` or ``cp -p`` counts), reloads the
  plugin, and so does ``touch``, as operators do with the original to revive a
  plugin that was switched off. The content hash is computed only when a file
  is (re)loaded and is kept in ``Plugin.fingerprint`` to tell which version
  runs; an edit that keeps both mtime_ns and size is not noticed until the
  next stat change or a forced ``reload()``.
- Each load compiles the bytes it hashed (never a ``__pycache__`` file, whose
  validation by whole seconds and size could run stale code after a quick
  same-size edit) into a module with a new name; the previous module is
  dropped from ``sys.modules``.
- Reload is atomic: the new ``registerCallbacks`` runs into a fresh
  ``Registrar``; only when it succeeds do its callbacks replace the old ones.
  A broken edit switches the plugin off until fixed; the ``Plugin`` object
  (and so its key and its cursor in the engine) is kept, so it resumes where
  it stopped.
- Helper modules next to a plugin are imported normally and cached in
  ``sys.modules``: a change to a helper takes effect at the next restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from shotgun_events.errors import PluginError
from shotgun_events.events import PluginKey
from shotgun_events.registrar import Callback, Registrar

log = logging.getLogger("engine.loader")

Fingerprint = tuple[int, int, str]
_module_ids = itertools.count(1)


def _default_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"plugin.{name}")


def is_plugin_file(name: str) -> bool:
    """Tell whether a file name in a plugin folder names a plugin."""
    return name.endswith(".py") and not name.startswith((".", "_"))


def _is_plugin_failure(exc: BaseException) -> bool:
    """Tell whether an exception raised by plugin code is the plugin's fault, not a stop request.

    ``SystemExit`` from a plugin is its own error. A ``KeyboardInterrupt`` is the
    operator's Ctrl-C only while Python's default SIGINT handler is installed;
    once the engine handles SIGINT itself (setting a stop flag), one raised
    inside plugin code can only come from the plugin.
    """
    if isinstance(exc, KeyboardInterrupt):
        return signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    return True


def register_plugin_file(path: Path, source: bytes, registrar: Registrar) -> ModuleType:
    """Import ``source`` as the plugin at ``path`` and run its ``registerCallbacks(registrar)``.

    The module is left in ``sys.modules`` under a unique name (the caller drops
    it on unload). Any failure raises ``PluginError`` naming the file and the
    step, chained to the plugin's own exception; the module is then dropped.
    """
    folder = str(path.parent)
    safe_stem = re.sub(r"\W", "_", path.stem)
    module_name = f"shotgun_events_plugin_{next(_module_ids)}_{safe_stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:  # pragma: no cover - only for paths without a .py suffix
        raise PluginError(f"plugin {path}: cannot build an import spec")
    module = importlib.util.module_from_spec(spec)
    step = "import"
    # Helpers next to the plugin must win over same-named installed modules while it imports.
    sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)
        register = getattr(module, "registerCallbacks", None)
        if not callable(register):
            raise PluginError(f"plugin {path}: defines no registerCallbacks(reg) function")
        step = "registerCallbacks"
        register(registrar)
    except PluginError:
        sys.modules.pop(module_name, None)
        raise
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        if not _is_plugin_failure(exc):
            raise
        raise PluginError(f"plugin {path}: {step} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        _remove_first(sys.path, folder)
        # Callbacks may import helpers lazily: keep the folder reachable, after everything else.
        if folder not in sys.path:
            sys.path.append(folder)
    return module


def _remove_first(items: list[str], value: str) -> None:
    with contextlib.suppress(ValueError):  # a plugin took it out itself
        items.remove(value)


@dataclass(eq=False)
class Plugin:
    """One plugin file; the same object lives across reloads, so ``key`` stays valid."""

    key: PluginKey
    collection: Path
    name: str
    path: Path
    logger: logging.Logger = field(repr=False)
    callbacks: list[Callback] = field(default_factory=list, repr=False)
    emails: bool | tuple[str, ...] = True
    active: bool = False
    #: Why the plugin is inactive (one line); None while active.
    reason: str | None = None
    #: (mtime_ns, size, sha1 of the content loaded); sha1 is "" if the file could not be read.
    fingerprint: Fingerprint = (0, 0, "")
    #: Incremented at every load attempt, so holders of old callbacks can tell.
    generation: int = 0
    module_name: str | None = field(default=None, repr=False)

    def deactivate(self, reason: str) -> None:
        """Switch the plugin off until its file changes (the caller has logged the error)."""
        self.active = False
        self.reason = reason
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

    def __init__(
        self,
        *,
        paths: Sequence[Path],
        logger_factory: Callable[[str], logging.Logger] = _default_logger,
    ) -> None:
        # The same folder listed twice would load its plugins twice under the same key.
        self._paths = list(dict.fromkeys(Path(p) for p in paths))
        self._logger_factory = logger_factory
        self._plugins: dict[PluginKey, Plugin] = {}
        self._unreadable: set[Path] = set()
        #: Collections in ``paths`` order, plugins in file-name order; inactive ones included.
        self.plugins: list[Plugin] = []

    def get(self, key: PluginKey) -> Plugin | None:
        """Return the plugin with this key, or None."""
        return self._plugins.get(key)

    def scan(self) -> ScanResult:
        """Load new files, reload changed ones and unload deleted ones."""
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
            for name, path, stat in entries:
                key = (str(collection), name)
                seen.add(key)
                plugin = self._plugins.get(key)
                if plugin is None:
                    plugin = Plugin(key, collection, name, path, self._logger_factory(name))
                    self._plugins[key] = plugin
                    self._load(plugin, stat)
                    result.added.append(plugin)
                elif plugin.fingerprint[:2] != stat:
                    self._load(plugin, stat)
                    result.reloaded.append(plugin)
                ordered.append(plugin)
        for key in [k for k in self._plugins if k not in seen]:
            plugin = self._plugins.pop(key)
            self._unload(plugin, "its file was removed")
            result.removed.append(plugin)
        self.plugins = ordered
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

    def _list(self, collection: Path) -> list[tuple[str, Path, tuple[int, int]]] | None:
        """List a folder's plugin files with their (mtime_ns, size), sorted by name."""
        found: list[tuple[str, Path, tuple[int, int]]] = []
        try:
            with os.scandir(collection) as it:
                for entry in it:
                    if not is_plugin_file(entry.name):
                        continue
                    try:
                        if not entry.is_file():
                            continue
                        st = entry.stat()
                    except OSError:
                        continue  # vanished between listing and stat: the next scan sees it
                    found.append((entry.name[:-3], Path(entry.path), (st.st_mtime_ns, st.st_size)))
        except OSError as exc:
            if collection not in self._unreadable:
                log.warning(
                    "plugin folder %s cannot be read (%s); keeping its plugins as they are "
                    "and retrying at every scan",
                    collection,
                    exc,
                )
                self._unreadable.add(collection)
            return None
        if collection in self._unreadable:
            log.info("plugin folder %s is readable again", collection)
            self._unreadable.discard(collection)
        found.sort(key=lambda item: item[0])
        return found

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
        try:
            module = register_plugin_file(plugin.path, source, registrar)
        except PluginError as exc:
            self._fail(plugin, str(exc), exc)
            return
        self._drop_module(plugin)
        plugin.module_name = module.__name__
        plugin.callbacks = registrar.callbacks
        plugin.emails = registrar.emails
        plugin.active = True
        plugin.reason = None
        if plugin.callbacks:
            log.info(
                "loaded plugin %s from %s (%d callbacks: %s; sha1 %s)",
                plugin.name,
                plugin.path,
                len(plugin.callbacks),
                ", ".join(cb.name for cb in plugin.callbacks),
                plugin.fingerprint[2][:12],
            )
        else:
            log.warning(
                "plugin %s (%s) registered no callbacks; it will receive no events",
                plugin.name,
                plugin.path,
            )

    def _fail(self, plugin: Plugin, reason: str, exc: BaseException) -> None:
        # The old callbacks belong to a module that is going away: an inactive plugin has none.
        self._drop_module(plugin)
        plugin.callbacks = []
        reason = (reason.strip().splitlines() or ["unknown error"])[0]
        log.error(
            "plugin %s failed to load; it stays off until its file changes: %s",
            plugin.name,
            reason,
            exc_info=exc,
        )
        plugin.deactivate(reason)

    def _unload(self, plugin: Plugin, reason: str) -> None:
        self._drop_module(plugin)
        plugin.callbacks = []
        plugin.active = False
        plugin.reason = reason
        log.info("plugin %s unloaded: %s (%s)", plugin.name, reason, plugin.path)

    @staticmethod
    def _drop_module(plugin: Plugin) -> None:
        if plugin.module_name is not None:
            sys.modules.pop(plugin.module_name, None)
            plugin.module_name = None
