"""StopFlag with real signals: graceful stop, reload, and a forced exit on the second stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from shotgun_events.service.signals import StopFlag

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

Loop = Callable[[str], "subprocess.Popen[str]"]

# A stand-in for the engine loop: flags only, acted on at the top of each pass.
_LOOP = """
import sys, time
from shotgun_events.service.signals import StopFlag

flag = StopFlag()
flag.install()
print("running", flush=True)
while not flag.wait(0.05):
    if flag.take_reload():
        print("reload", flush=True)
print("stopping", flag.stop_reason, flush=True)
if sys.argv[1] == "busy":
    time.sleep(60)  # a callback that takes long; a second stop must not wait for it
print("clean exit", flush=True)
"""


@pytest.fixture
def loop() -> Iterator[Loop]:
    procs: list[subprocess.Popen[str]] = []

    def start(mode: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LOOP, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "running\n"  # handlers are installed
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_sigterm_stops_the_loop_cleanly(loop: Loop) -> None:
    # Given a running loop
    proc = loop("idle")
    # When it receives SIGTERM
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    # Then it leaves the loop at a safe point and exits 0
    assert proc.returncode == 0, err
    assert out == "stopping SIGTERM\nclean exit\n"


def test_sigint_stops_without_a_traceback(loop: Loop) -> None:
    # Given a running loop (in a terminal, Ctrl-C)
    proc = loop("idle")
    # When it receives SIGINT
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    # Then it stops like for SIGTERM, with no KeyboardInterrupt
    assert proc.returncode == 0
    assert out == "stopping SIGINT\nclean exit\n"
    assert "KeyboardInterrupt" not in err


def test_sighup_requests_a_reload_and_keeps_running(loop: Loop) -> None:
    # Given a running loop
    proc = loop("idle")
    # When it receives SIGHUP
    proc.send_signal(signal.SIGHUP)
    # Then the loop sees one reload request and keeps running
    assert proc.stdout is not None
    assert proc.stdout.readline() == "reload\n"
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out == "stopping SIGTERM\nclean exit\n"


def test_second_sigterm_while_busy_forces_the_exit(loop: Loop) -> None:
    # Given a loop that is busy in a long callback after the first SIGTERM
    proc = loop("busy")
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "stopping SIGTERM\n"
    # When a second SIGTERM arrives
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    # Then it exits at once with 128 + SIGTERM, saying why, without finishing the callback
    assert proc.returncode == 128 + signal.SIGTERM
    assert "second SIGTERM; forced exit" in err
    assert "clean exit" not in out


def test_in_process_signal_sets_the_flags_and_uninstall_restores() -> None:
    # Given a StopFlag installed in this (main) thread
    before = signal.getsignal(signal.SIGHUP)
    flag = StopFlag()
    flag.install()
    try:
        # When SIGHUP is delivered to ourselves
        os.kill(os.getpid(), signal.SIGHUP)
        # Then the reload flag is set (waited on, not slept for), and taken only once
        assert flag.reload_requested.wait(30)
        assert flag.take_reload()
        assert not flag.take_reload()
        assert not flag.stop_requested.is_set()
    finally:
        flag.uninstall()
    # And the previous handler is back
    assert signal.getsignal(signal.SIGHUP) == before


def test_request_stop_without_a_signal() -> None:
    # Given a flag nobody signalled
    flag = StopFlag()
    # When waiting briefly, then no stop is seen
    assert not flag.wait(0)
    # When the loop itself asks to stop (e.g. the pid file was deleted)
    flag.request_stop("pid file removed")
    flag.request_stop("something later")
    # Then the wait returns at once and the first reason is kept
    assert flag.wait(30)
    assert flag.stop_reason == "pid file removed"


def test_install_outside_the_main_thread_is_refused() -> None:
    # Given a worker thread, when it installs a StopFlag, then it is refused
    errors: list[BaseException] = []

    def install() -> None:
        try:
            StopFlag().install()
        except RuntimeError as exc:
            errors.append(exc)

    worker = threading.Thread(target=install)
    worker.start()
    worker.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])
