"""Options shared by every test folder (pytest reads ``pytest_addoption`` only from here)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--soak``: run the reliability suite at full size (20,000 events, 20 kills...)."""
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the long variants of tests/reliability (minutes instead of seconds)",
    )
