"""The pytest plugin is installed through its entry point and clashes with no fixture of ours."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest

from shotgun_events.testing import pytest_plugin

ROOT = Path(__file__).resolve().parents[2]


def test_the_plugin_is_registered_as_a_pytest11_entry_point(
    pytestconfig: pytest.Config,
) -> None:
    # Given the installed package's entry points
    found = [
        e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "shotgun_events"
    ]
    # Then the plugin is there, and this very session loaded it
    assert [e.value for e in found] == ["shotgun_events.testing.pytest_plugin"]
    assert pytestconfig.pluginmanager.get_plugin("shotgun_events") is pytest_plugin


def test_no_conftest_of_this_repository_defines_a_fixture_of_the_plugin() -> None:
    # Given the fixture names the plugin provides
    ours = {
        name
        for name, value in vars(pytest_plugin).items()
        if hasattr(value, "_fixture_function_marker")
        or type(value).__name__ == "FixtureFunctionDefinition"
    }
    assert {"local_site", "plugin_under_test"} <= ours
    # When every conftest's functions are listed
    defined = set()
    for conftest in ROOT.glob("tests/**/conftest.py"):
        tree = ast.parse(conftest.read_text())
        defined |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    # Then none shadows (or is shadowed by) the plugin's
    assert not (defined & ours)
