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
