"""Plugin helper modules: recording which a plugin load imports, noticing edits, evicting them.

A helper is a module whose file lies under a plugin folder (``_common/util.py``,
``_studio.py``, or a plugin file imported as a module) or under a configured
helper path. Rules:

- While a plugin imports and runs ``registerCallbacks``, every ``import``
  statement executed on the loading thread is recorded as an edge
  ``importer -> imported`` (cached imports included, so a second plugin
  importing an already loaded helper is tracked too). New entries of
  ``sys.modules`` count as well (``importlib.import_module`` bypasses the
  import statement). A plugin depends on the helpers it imports and,
  transitively, on the helpers those imported when they first ran.
- A failed load depends on the helper files its traceback went through, so
  fixing a broken helper retries its importers. A plugin that failed because
  a helper did not exist yet is retried when its own file changes.
- Imports run later, inside a callback, are not recorded (that would cost a
  hook on every import of the process); such a lazily imported helper is still
  evicted when its file changes, so the callback's next ``import`` statement
  runs the new code, but the plugin is not reloaded for it.
- Evicting a changed helper also evicts its submodules (a package re-run
  without them would lose their attributes) and every helper that imported it,
  transitively, so no module keeps a reference to an old version.
- Helpers are compiled from their source at every import, never from
  ``__pycache__``: a ``.pyc`` is validated by whole-second mtime and size, so a
  quick same-size edit would otherwise run the old code.

Running a plugin file itself is ``plugins.imports``.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import sysconfig
import threading
import traceback
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger("engine.loader")

#: Plugin modules are registered under this prefix; they are plugins, not helpers.
PLUGIN_MODULE_PREFIX = "shotgun_events_plugin_"

#: (mtime_ns, size, sha1); (0, 0, "") for a file that cannot be read.
Fingerprint = tuple[int, int, str]
_MISSING: Fingerprint = (0, 0, "")


def normalise(path: str | os.PathLike[str]) -> Path:
    """Make a path comparable with the watcher's (absolute, not resolved: symlinks stay)."""
    return Path(os.path.abspath(path))


def fingerprint(path: Path) -> Fingerprint:
    """Return (mtime_ns, size, sha1) of a file, or (0, 0, "") if it cannot be read."""
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError:
        return _MISSING
    return st.st_mtime_ns, st.st_size, hashlib.sha1(data).hexdigest()


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return _MISSING[:2]
    return st.st_mtime_ns, st.st_size


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Load a helper from its source, never reading or writing ``__pycache__``."""

    def path_stats(self, path: str) -> Mapping[str, Any]:
        # SourceLoader.get_code skips the bytecode cache (read and write) when this fails.
        raise OSError("bytecode cache bypassed for plugin helpers")


class _HelperFinder(importlib.abc.MetaPathFinder):
    """Give helper modules the source-only loader; everything else is left to PathFinder."""

    def __init__(self) -> None:
        # Replaced, never mutated: other threads may be importing through it meanwhile.
        self.roots: frozenset[str] = frozenset()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not self.roots:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if (
            spec is None
            or spec.origin is None
            or type(spec.loader) is not importlib.machinery.SourceFileLoader
            or not _under(os.path.abspath(spec.origin), self.roots)
        ):
            return None
        spec.loader = _SourceOnlyLoader(fullname, spec.origin)
        return spec


_finder = _HelperFinder()
_finder_lock = threading.Lock()


def _install_finder(roots: Collection[str]) -> None:
    with _finder_lock:
        _finder.roots = _finder.roots | frozenset(roots)
        if _finder in sys.meta_path:
            return
        # Just before PathFinder, so builtin and frozen modules keep precedence as usual.
        index = next(
            (i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder),
            len(sys.meta_path),
        )
        sys.meta_path.insert(index, _finder)


def _under(path: str, roots: Collection[str]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def _system_roots() -> tuple[str, ...]:
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    return tuple({os.path.abspath(sysconfig.get_paths()[n]) for n in names})


class ImportRecord:
    """The import statements executed on one thread while a plugin loads."""

    def __init__(self) -> None:
        #: importer module name -> absolute names of the modules it imported.
        self.edges: dict[str, set[str]] = {}

    def note(
        self,
        name: str,
        globals_: Mapping[str, object] | None,
        fromlist: Sequence[str] | None,
        level: int,
    ) -> None:
        """Record one ``__import__`` call, resolved to absolute module names."""
        importer = str(globals_.get("__name__", "")) if globals_ else ""
        try:
            if level > 0:
                package = globals_.get("__package__") if globals_ else None
                if not isinstance(package, str):
                    package = importer if globals_ and "__path__" in globals_ else ""
                    package = package or importer.rpartition(".")[0]
                absolute = importlib.util.resolve_name("." * level + name, package)
            else:
                absolute = name
        except (ImportError, ValueError):
            return  # the import itself failed for the same reason; the traceback says which file
        parts = absolute.split(".")
        targets = {".".join(parts[: i + 1]) for i in range(len(parts))}
        targets.update(f"{absolute}.{item}" for item in fromlist or () if item != "*")
        self.edges.setdefault(importer, set()).update(targets)


@contextlib.contextmanager
def record_imports() -> Iterator[ImportRecord]:
    """Record the import statements this thread executes inside the block."""
    record = ImportRecord()
    owner = threading.get_ident()
    original = builtins.__import__

    def recording_import(
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        try:
            return original(name, globals, locals, fromlist, level)
        finally:
            # Other threads import through here too while a plugin loads: not this plugin's.
            if threading.get_ident() == owner:
                record.note(name, globals, fromlist, level)

    builtins.__import__ = recording_import
    try:
        yield record
    finally:
        if builtins.__import__ is recording_import:
            builtins.__import__ = original


class HelperTracker:
    """Knows the helper modules plugins depend on, notices their changes and evicts them."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self._roots = {str(normalise(r)) for r in roots}
        self._system = _system_roots()
        #: helper module name -> absolute names it imported when it ran.
        self._edges: dict[str, set[str]] = {}
        #: helper file -> fingerprint when a plugin load first saw it.
        self._files: dict[Path, Fingerprint] = {}
        _install_finder(self._roots)

    @property
    def roots(self) -> set[str]:
        """Plugin folders and helper paths, absolute."""
        return set(self._roots)

    def tracked(self) -> set[Path]:
        """The helper files whose changes are watched by stat."""
        return set(self._files)

    def helper_file(self, name: str) -> Path | None:
        """Return the file of module ``name`` if it is a loaded helper, else None."""
        if name.startswith(PLUGIN_MODULE_PREFIX) or name.partition(".")[0] == "shotgun_events":
            return None
        file = getattr(sys.modules.get(name), "__file__", None)
        if not isinstance(file, str):
            return None
        file = os.path.abspath(file)
        if not _under(file, self._roots) or _under(file, self._system):
            return None
        return Path(file)

    def dependencies(
        self,
        module_name: str,
        record: ImportRecord,
        new_modules: Collection[str],
        failure: BaseException | None,
    ) -> frozenset[Path]:
        """Return the helper files one plugin load depended on, and start tracking them."""
        for importer, names in record.edges.items():
            if self.helper_file(importer) is not None:
                self._edges.setdefault(importer, set()).update(names)
        todo = set(record.edges.get(module_name, ()))
        todo.update(n for n in new_modules if self.helper_file(n) is not None)
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen or self.helper_file(name) is None:
                continue
            seen.add(name)
            todo.update(self._edges.get(name, ()))
        files = {f for f in map(self.helper_file, seen) if f is not None}
        files.update(self._failure_files(failure))
        for file in files:
            if file not in self._files:
                self._files[file] = fingerprint(file)
        return frozenset(files)

    def _failure_files(self, failure: BaseException | None) -> set[Path]:
        """Helper files a failed load went through, so fixing them retries the plugin."""
        files: set[Path] = set()
        exc = failure
        while exc is not None:
            frames = traceback.extract_tb(exc.__traceback__)
            names = [f.filename for f in frames]
            if isinstance(exc, SyntaxError) and exc.filename:
                names.append(exc.filename)
            for name in names:
                path = os.path.abspath(name)
                if _under(path, self._roots) and not _under(path, self._system):
                    files.add(Path(path))
            exc = exc.__cause__
        return files

    def changed_files(self, reported: Collection[Path], settling: Collection[Path]) -> set[Path]:
        """Return tracked helper files whose stat changed, or whose content did if reported.

        Reported files that no plugin load imported (a callback's lazy import) are
        returned too, so their modules are evicted. Settling files wait.
        """
        found: set[Path] = set()
        for path, (mtime_ns, size, digest) in self._files.items():
            if path in settling:
                continue
            stat = _stat(path)
            if stat != (mtime_ns, size) or (path in reported and fingerprint(path)[2] != digest):
                found.add(path)
        found.update(
            p
            for p in reported
            if p not in self._files and p not in settling and _under(str(p), self._roots)
        )
        return found

    def evict(self, files: Collection[Path]) -> set[Path]:
        """Drop the modules of ``files``, their submodules and their importers from sys.modules.

        Returns every file whose module was dropped, plus ``files``: plugins
        depending on any of them must be reloaded.
        """
        wanted = set(files)
        if not wanted:
            return set()
        names = {n for n in list(sys.modules) if self.helper_file(n) in wanted}
        grown = bool(names)
        while grown:
            before = len(names)
            names.update(n for n in list(sys.modules) if any(n.startswith(p + ".") for p in names))
            names.update(imp for imp, targets in self._edges.items() if targets & names)
            names = {n for n in names if self.helper_file(n) is not None}
            grown = len(names) > before
        stale = set(wanted)
        stale.update(f for f in map(self.helper_file, names) if f is not None)
        for name in names:
            _forget_module(name)
            self._edges.pop(name, None)
        for file in stale:
            self._files.pop(file, None)
        if names:
            log.info(
                "helper modules changed; dropped %s so their importers get the new code",
                ", ".join(sorted(names)),
            )
        return stale

    def evict_all(self) -> None:
        """Drop every helper already imported, so the first loads record complete dependencies."""
        names = [n for n in list(sys.modules) if self.helper_file(n) is not None]
        for name in names:
            _forget_module(name)
        if names:
            log.info("dropped helper modules imported earlier: %s", ", ".join(sorted(names)))

    def forget_except(self, in_use: Collection[Path]) -> None:
        """Stop stat-checking helper files no plugin depends on any more."""
        for file in [f for f in self._files if f not in in_use]:
            del self._files[file]


def _forget_module(name: str) -> None:
    """Drop a module from ``sys.modules`` and from its parent package's attributes.

    ``from pkg import mod`` returns the attribute ``pkg.mod`` when the package
    has one, without looking at ``sys.modules``: a package that stays loaded
    (a namespace package, or one whose ``__init__`` does not import ``mod``)
    would hand the old module to every importer reloaded for its change.
    """
    module = sys.modules.pop(name, None)
    parent_name, _, child = name.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if module is not None and parent is not None and getattr(parent, child, None) is module:
        with contextlib.suppress(AttributeError, TypeError):
            delattr(parent, child)
