"""Importing one plugin file: its code and its ``registerCallbacks``, under a unique module name.

``register_plugin_file`` runs one plugin file (rules in ``loader.py``). Which
helper modules that load imported, and their eviction when edited, is
``plugins.helpers``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from shotgun_events.errors import PluginError
from shotgun_events.plugins.helpers import PLUGIN_MODULE_PREFIX
from shotgun_events.plugins.registrar import Registrar

_module_ids = itertools.count(1)


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


class PluginLoadError(PluginError):
    """A plugin file failed to load; ``step`` says where: ``import`` or ``registerCallbacks``."""

    def __init__(self, message: str, step: str) -> None:
        super().__init__(message)
        self.step = step


def plugin_module_name(path: Path) -> str:
    """Return a new unique ``sys.modules`` name for a load of the plugin at ``path``."""
    safe_stem = re.sub(r"\W", "_", path.stem)
    return f"{PLUGIN_MODULE_PREFIX}{next(_module_ids)}_{safe_stem}"


def register_plugin_file(
    path: Path,
    source: bytes,
    registrar: Registrar,
    *,
    module_name: str | None = None,
    helper_paths: Sequence[Path] = (),
) -> ModuleType:
    """Import ``source`` as the plugin at ``path`` and run its ``registerCallbacks(registrar)``.

    The module is left in ``sys.modules`` under a unique name (the caller drops
    it on unload). Any failure raises ``PluginError`` naming the file and the
    step, chained to the plugin's own exception; the module is then dropped.
    """
    folders = list(dict.fromkeys([str(path.parent), *map(str, helper_paths)]))
    module_name = module_name or plugin_module_name(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:  # pragma: no cover - only for paths without a .py suffix
        raise PluginError(f"plugin {path}: cannot build an import spec")
    module = importlib.util.module_from_spec(spec)
    step = "import"
    # Helpers next to the plugin must win over same-named installed modules while it imports.
    sys.path[0:0] = folders
    sys.modules[module_name] = module
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)
        register = getattr(module, "registerCallbacks", None)
        step = "registerCallbacks"
        if not callable(register):
            raise PluginLoadError(
                f"plugin {path}: defines no registerCallbacks(reg) function", step
            )
        register(registrar)
    except PluginLoadError:
        sys.modules.pop(module_name, None)
        raise
    except PluginError as exc:
        # The registrar refused a registerCallback call: keep its message, say the step.
        sys.modules.pop(module_name, None)
        raise PluginLoadError(str(exc), step) from exc
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        if not _is_plugin_failure(exc):
            raise
        message = f"plugin {path}: {step} failed: {type(exc).__name__}: {exc}"
        raise PluginLoadError(message, step) from exc
    finally:
        for folder in folders:
            _remove_first(sys.path, folder)
            # Callbacks may import helpers lazily: keep the folder reachable, after everything else.
            if folder not in sys.path:
                sys.path.append(folder)
    return module


def _remove_first(items: list[str], value: str) -> None:
    with contextlib.suppress(ValueError):  # a plugin took it out itself
        items.remove(value)
