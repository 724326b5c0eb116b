"""sd_notify over a real datagram socket, and the readiness pipe `start` waits on."""

from __future__ import annotations

import logging
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shotgun_events.service.sdnotify import Notifier, NullReporter, ReadinessPipe, Reporters

needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="AF_UNIX sockets")


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)  # a safety net against a hang, not an assertion
    yield sock, str(path)
    sock.close()


@needs_unix
def test_ready_then_stopping_reach_systemd(systemd: tuple[socket.socket, str]) -> None:
    # Given a notifier built from the environment systemd sets up
    sock, path = systemd
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    # When the daemon reports readiness, a status and then a stop
    notifier.ready()
    notifier.status("processing events\nsecond line")
    notifier.stopping()
    notifier.close()
    # Then systemd receives each message, in order
    assert sock.recv(4096) == b"READY=1"
    assert sock.recv(4096) == b"STATUS=processing events second line"
    assert sock.recv(4096) == b"STOPPING=1"


@needs_unix
def test_ready_with_status_and_failed(systemd: tuple[socket.socket, str]) -> None:
    # Given a notifier
    sock, path = systemd
    notifier = Notifier(path)
    # When readiness comes with a status, and a later start-up fails
    notifier.ready("caught up to event 42")
    notifier.failed("site unreachable", 69)
    notifier.watchdog()
    # Then both reach systemd
    assert sock.recv(4096) == b"READY=1\nSTATUS=caught up to event 42"
    assert sock.recv(4096) == b"STATUS=failed: site unreachable"
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.close()


@needs_unix
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux")
def test_abstract_socket_name() -> None:
    # Given systemd listening on an abstract socket ("@name" in the environment)
    name = f"shotgun-events-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(10)
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        # When the daemon is ready
        notifier.ready()
        notifier.close()
        # Then the message arrives
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    # Given no NOTIFY_SOCKET (not started by systemd)
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "1000000"})
    # When every message is sent, then nothing fails and there is no watchdog
    assert not notifier.enabled
    notifier.ready()
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    notifier.failed("x")
    assert notifier.watchdog_interval() is None


@needs_unix
def test_send_errors_are_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a NOTIFY_SOCKET nobody listens on, and one of an unsupported kind
    missing = Notifier(str(tmp_path / "gone"))
    vsock = Notifier("vsock:2:1234")
    # When messages are sent
    with caplog.at_level(logging.DEBUG, logger="engine.service"):
        missing.ready()
        vsock.ready()
    missing.close()
    # Then nothing is raised, and the failures are at DEBUG
    assert "sd_notify 'READY=1'" in caplog.text
    assert "unsupported NOTIFY_SOCKET 'vsock:2:1234'" in caplog.text
    assert all(record.levelno == logging.DEBUG for record in caplog.records)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "120000000"}, 60.0),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(os.getpid())}, 60.0),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    environ: dict[str, str], expected: float | None
) -> None:
    # Given systemd's watchdog variables
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "/run/systemd/notify", **environ})
    # When / Then the daemon pings twice per period, and only if the watchdog is for it
    assert notifier.watchdog_interval() == expected


def test_readiness_pipe_protocol() -> None:
    # Given the pipe `start` waits on
    read_fd, write_fd = os.pipe()
    pipe = ReadinessPipe(write_fd)
    # When the daemon reports its pid, a note, readiness, and then a late failure
    pipe.started(4321)
    pipe.note("removed stale pid file\n/run/x.pid")
    pipe.ready()
    pipe.failed("too late", 3)
    # Then only the lines up to READY were sent, and the pipe is closed
    with os.fdopen(read_fd, "rb") as reader:
        assert reader.read() == b"PID 4321\nNOTE removed stale pid file /run/x.pid\nREADY\n"
    assert pipe.reported


def test_readiness_pipe_failure_and_broken_pipe() -> None:
    # Given a pipe whose reader (`start`) is gone
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    pipe = ReadinessPipe(write_fd)
    # When the daemon reports, then nothing is raised
    pipe.started(1)
    pipe.failed("boom", 69)
    assert pipe.reported
    # And given a live reader, a failure carries its exit code on one line
    read_fd, write_fd = os.pipe()
    ReadinessPipe(write_fd).failed("site\nunreachable", 69)
    with os.fdopen(read_fd, "rb") as reader:
        assert reader.read() == b"ERROR 69 site unreachable\n"


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def ready(self) -> None:
        self.calls.append(("ready",))

    def failed(self, message: str, exit_code: int = 1) -> None:
        self.calls.append(("failed", message, str(exit_code)))


def test_reporters_fan_out() -> None:
    # Given two reporters behind one fan-out, and a null reporter
    first, second = _Recorder(), _Recorder()
    both = Reporters(first, second, NullReporter())
    # When readiness and a failure are reported
    both.ready()
    both.failed("boom", 2)
    # Then each reporter saw both
    assert first.calls == second.calls == [("ready",), ("failed", "boom", "2")]
