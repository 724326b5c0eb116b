"""Fixtures of the chaos test: its seed, its length, its folder, and the session summary.

``--chaos-seed N`` replays a run's plan; without it every run draws a new
seed (printed at the start, in the summary and in a failure). ``--soak-minutes
M`` makes the run last about M minutes, its faults repeating (options
declared in ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .system import REDIS

#: Seconds of faults in the short run of the default suite (about 3 minutes in all).
SHORT = 150.0
#: Seconds of a run spent outside the faults: start, catch-up, checks.
OVERHEAD = 150.0


def fault_seconds(config: pytest.Config) -> float:
    """Seconds of faults: the short run's, or a soak's minutes less the start and checks."""
    minutes = config.getoption("--soak-minutes", default=None)
    if minutes is None:
        return SHORT
    return max(SHORT, float(minutes) * 60.0 - OVERHEAD)


@pytest.fixture
def chaos_seed(request: pytest.FixtureRequest) -> int:
    """The seed given with --chaos-seed, or a fresh one."""
    given = request.config.getoption("--chaos-seed", default=None)
    seed = int(given) if given is not None else secrets.randbelow(1_000_000)
    # Shown at once, past output capturing: a run that hangs still names its seed.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\nchaos seed {seed} (replay with --chaos-seed {seed})", flush=True)
    return seed


@pytest.fixture
def chaos_seconds(request: pytest.FixtureRequest) -> float:
    """Seconds of faults for this session."""
    return fault_seconds(request.config)


@pytest.fixture
def chaos_replay(request: pytest.FixtureRequest, chaos_seed: int) -> str:
    """The command that replays this run's plan."""
    minutes = request.config.getoption("--soak-minutes", default=None)
    extra = f" --soak-minutes {minutes:g}" if minutes is not None else ""
    return f"pytest tests/chaos --chaos-seed {chaos_seed}{extra}"


@pytest.fixture
def chaos_root() -> Iterator[Path]:
    """A short folder (the control socket path has a 107-byte limit), removed after a pass."""
    if not Path(REDIS).exists():
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing; .ci/run should have installed it")
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    root = Path(tempfile.mkdtemp(prefix="sgchaos-"))
    yield root
    if (root / "passed").exists():
        shutil.rmtree(root, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests here ``chaos`` and give them a time limit that fits their length."""
    here = Path(__file__).parent
    limit = fault_seconds(config) + OVERHEAD + 600
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.timeout(limit))
