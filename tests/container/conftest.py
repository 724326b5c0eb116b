"""The container tests' fixtures: podman (or the reason it cannot run), the base image, the image.

The first test to ask for ``image`` makes the base image when podman does not
have it (debootstrap, about 30 s) and builds the Dockerfile (about 40 s from
nothing, seconds when only the sources changed: the dependencies have a
layer of their own). The times are printed at the end of the run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.container import podman
from tests.container.podman import UnavailableError
from tests.summaries import CONTAINER_TIMINGS

REPO = Path(__file__).resolve().parents[2]
#: What the tests took: printed in the terminal summary (CI keeps an eye on its time limit).
TIMINGS = CONTAINER_TIMINGS


@pytest.fixture(autouse=True)
def _timed(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.monotonic()
    yield
    TIMINGS.append(f"{request.node.name}: {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image built from the repository's Dockerfile (its id); skips where podman cannot run."""
    reason = podman.why_not()
    if reason is not None:
        pytest.skip(f"podman cannot run containers here: {reason}")
    folder = tmp_path_factory.mktemp("build")
    with podman.machine_lock():
        try:
            podman.ensure_base_image(TIMINGS)
        except UnavailableError as exc:
            pytest.skip(f"podman cannot run containers here: {exc}")
        probe = podman.podman(
            "run", "--rm", "--network=none", podman.BASE_IMAGE, "true", check=False
        )
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["(no output)"])[-1]
            pytest.skip(f"podman cannot run containers here: {last}")
        image_id, _ = podman.build_image(REPO, "localhost/shotgun-events:test", folder, TIMINGS)
    return image_id


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Names of the containers a test starts; removed (forcibly) when it ends."""
    names: list[str] = []
    yield names
    podman.remove_containers(names)


@pytest.fixture
def volumes() -> Iterator[list[str]]:
    """Names of the podman volumes a test creates; removed when it ends."""
    names: list[str] = []
    yield names
    for name in names:
        podman.podman("volume", "rm", "--force", name, check=False)


def unique(prefix: str) -> str:
    """A container, volume or project name no other test session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def logs(name: str) -> str:
    """Everything a container wrote (stdout and stderr)."""
    done = podman.podman("logs", name, check=False, timeout=60)
    return done.stdout + done.stderr


def writable_folder(path: Path) -> Path:
    """Create ``path`` so that the image's user (uid 10001) can write into it through a mount."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 10001, 10001)
    return path


def run_ok(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``podman ARGS``, failing the test with its output when it fails."""
    return podman.podman(*args, timeout=timeout)
