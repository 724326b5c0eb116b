"""Options and terminal summaries shared by every test folder (the only conftest pytest-xdist's
controller reads)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.reliability.summary import SUMMARY, summary_file
from tests.summaries import SECTIONS


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--soak``: run the reliability suite at full size (20,000 events, 20 kills...)."""
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the long variants of tests/reliability (minutes instead of seconds)",
    )
    # The chaos test (tests/chaos): its seed, and the length of a soak run.
    parser.addoption(
        "--chaos-seed",
        type=int,
        default=None,
        help="seed of the chaos test's fault plan (default: a new random seed, printed)",
    )
    parser.addoption(
        "--soak-minutes",
        type=float,
        default=None,
        help="run the chaos test for this many minutes, faults repeating (default: ~3 min)",
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker: hand what the summaries recorded to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["summaries"] = json.dumps(
            {section.title: section.export() for section in SECTIONS}
        )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the controller: add what a finished worker's summaries recorded."""
    exported = json.loads(node.workeroutput.get("summaries", "{}"))
    for section in SECTIONS:
        if section.title in exported:
            section.absorb(exported[section.title])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print each summary section that recorded something, once (on the controller)."""
    if hasattr(terminalreporter.config, "workeroutput"):
        return
    for section in SECTIONS:
        lines = section.lines()
        if lines:
            terminalreporter.section(section.title)
            for line in lines:
                terminalreporter.write_line(line)
    target = summary_file()
    if target is not None and SUMMARY.lines():
        SUMMARY.dump(target)
