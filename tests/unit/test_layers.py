"""The source tree's layering: lower packages never import higher ones, and no import circles.

Given the package map of docs/design.md as an ordered list of layers, every
``import`` in ``src/shotgun_events`` (including ones under ``TYPE_CHECKING``
and inside functions) must point to the same layer or a lower one; the local
site imports nothing of the daemon; and the module graph has no cycles.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "shotgun_events"
PACKAGE = "shotgun_events"

#: Bottom to top. A module may import its own layer and the layers below it.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(names.split())
    for names in (
        "__init__ errors events cursor telemetry",
        "config",
        "notify",
        "state",
        "client",
        "plugins",
        "delivery",
        "engine",
        "webhooks",
        "service",
        "operator",
        "observe",
        "wiring",
        "app",
        "testing",
        "demo",
        "cli",
    )
)
#: Packages outside the ladder: they import nothing of the daemon.
STANDALONE = frozenset({"site"})
#: Who may import a standalone package.
STANDALONE_USERS = frozenset({"testing", "demo", "cli"})


def module_name(root: Path, path: Path) -> str:
    """Return the dotted module name of ``path`` under the package folder ``root``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join([PACKAGE, *parts])


def imported_modules(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Yield the package's modules that ``path`` (module ``name``) imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            # ``from pkg import mod`` imports the module pkg.mod when there is one.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph(root: Path) -> dict[str, set[str]]:
    """Return module -> modules of the same package it imports."""
    files = {module_name(root, p): p for p in root.rglob("*.py")}
    known = set(files)
    return {name: set(imported_modules(name, path, known)) for name, path in files.items()}


def top_part(module: str) -> str:
    """Return the first name under the package: ``shotgun_events.engine.loop`` -> ``engine``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(part: str) -> int | None:
    """Return the index of the layer that holds ``part``, None when it is standalone or unknown."""
    return next((i for i, names in enumerate(LAYERS) if part in names), None)


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """Return one line per import that points up the ladder or into a standalone package."""
    found = []
    for module, targets in sorted(graph.items()):
        here = top_part(module)
        for target in sorted(targets):
            there = top_part(target)
            if here == there:
                continue
            if here in STANDALONE:
                found.append(f"{module} imports {target}: {here}/ imports nothing of the daemon")
            elif there in STANDALONE:
                if here not in STANDALONE_USERS:
                    found.append(f"{module} imports {target}: only {sorted(STANDALONE_USERS)} may")
            else:
                low, high = layer_of(here), layer_of(there)
                if low is None or high is None:
                    found.append(f"{module} imports {target}: a package missing from LAYERS")
                elif high > low:
                    found.append(f"{module} imports {target}: {here} is below {there}")
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_package_is_on_the_ladder() -> None:
    # Given the source tree, when we list its top-level names,
    # then each one has a place in LAYERS (or is standalone), so the check covers all code.
    parts = {top_part(m) for m in import_graph(SRC)}
    placed = set().union(*LAYERS) | STANDALONE
    assert parts - placed == set()


def test_lower_packages_never_import_higher_ones() -> None:
    assert layering_violations(import_graph(SRC)) == []


def test_no_import_cycles() -> None:
    assert import_cycles(import_graph(SRC)) == []


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def bad_tree(tmp_path: Path) -> Path:
    """A package with an upward import, a site that imports the engine, and a circle."""
    root = tmp_path / PACKAGE
    write(root / "__init__.py", "")
    write(root / "errors.py", "")
    write(root / "engine" / "__init__.py", "")
    write(root / "engine" / "loop.py", "from shotgun_events.delivery import base\n")
    write(root / "delivery" / "__init__.py", "")
    write(root / "delivery" / "base.py", "from ..engine.loop import Engine\n")
    write(root / "state" / "__init__.py", "")
    write(
        root / "state" / "store.py",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from shotgun_events.operator.status import Status\n",
    )
    write(root / "operator" / "__init__.py", "")
    write(root / "operator" / "status.py", "from shotgun_events.state import store\n")
    write(root / "site" / "__init__.py", "def f():\n    from shotgun_events import errors\n")
    return root


def test_the_checks_catch_an_upward_import_a_dependent_site_and_a_circle(bad_tree: Path) -> None:
    # Given a tree that breaks every rule, when the checks run on it,
    # then each break is reported (so the checks on the real tree can fail).
    graph = import_graph(bad_tree)
    violations = layering_violations(graph)
    assert any(v.startswith("shotgun_events.delivery.base imports") for v in violations)
    assert any("state.store imports shotgun_events.operator.status" in v for v in violations)
    assert any("site/ imports nothing of the daemon" in v for v in violations)
    assert sorted(import_cycles(graph)) == [
        ["shotgun_events.delivery.base", "shotgun_events.engine.loop"],
        ["shotgun_events.operator.status", "shotgun_events.state.store"],
    ]


def test_each_concern_of_running_a_plugin_lives_in_one_place() -> None:
    # Given the delivery package (one model: executors, fan-out, runner, and what they share)
    delivery = SRC / "delivery"
    modules = sorted(p.name for p in delivery.glob("*.py") if p.name != "__init__.py")
    sources = {p: p.read_text() for p in SRC.rglob("*.py")}

    def where(pattern: str, folder: Path = SRC) -> list[str]:
        return sorted(
            str(p.relative_to(SRC))
            for p, text in sources.items()
            if folder in p.parents and re.search(pattern, text, re.MULTILINE)
        )

    # Then it has at most ten modules, none of them a mechanism per mode
    assert len(modules) <= 10, modules
    assert not {"serial.py", "parallel.py", "auto.py", "plan.py", "choice.py"} & set(modules)
    # And each concern is defined once: ordering keys, the per-key line, the back-off,
    # the failure policy, what runs now, the choice of an executor
    assert where(r"^KeyFn\b") == ["delivery/keys.py"]
    assert where(r"^class KeyLines\b") == ["delivery/keys.py"]
    assert where(r"\*\s*2(\.0)?\s*\*\*\s*\((retry|attempt)") == [
        "client/retry.py",  # the site's connection retries: another concern
        "delivery/failures.py",
    ]
    assert where(r"^class FailurePolicy\b") == ["delivery/failures.py"]
    assert where(r"^class InFlight\b") == ["delivery/inflight.py"]
    assert where(r"def busy\(") == []
    assert where(r"^def choose\(") == ["delivery/executors.py"]
    # And nobody looks up an executor's members by name
    assert where(r"getattr\(\s*(self\._)?executor") == []
