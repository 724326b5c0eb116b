"""The control channel: protocol, socket permissions, errors, timeouts and the peer check."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.config.load import load_config
from shotgun_events.errors import ConfigError, ControlError
from shotgun_events.operator import live, operations
from shotgun_events.operator.channel import ControlServer
from shotgun_events.operator.live import ControlUnavailable, Reply, request

ENGINE = object()  # the fake engine the actions run against


class FakeSubmit:
    """Stands in for ``Engine.submit``: runs each action at once, or leaves it pending."""

    def __init__(self, *, run: bool = True) -> None:
        self.run = run
        self.futures: list[Future[Any]] = []
        self.submitted = threading.Event()

    def __call__(self, action: Callable[[Any], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self.futures.append(future)
        if self.run:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(action(ENGINE))
            except Exception as exc:
                future.set_exception(exc)
        self.submitted.set()
        return future


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """Replace the engine-side operations by recorders."""
    seen: list[tuple[str, tuple[Any, ...]]] = []

    def recorder(name: str) -> Callable[..., Any]:
        def operation(engine: Any, *args: Any, operator: str | None = None) -> Any:
            assert engine is ENGINE
            seen.append((name, args))
            if name == "skip" and args[1] == 13:
                raise ControlError("plugin p is not stuck on event 13: its next event is 12")
            return {"operation": name, "args": list(args)}

        return operation

    for name in ("replay", "skip", "reset", "disable", "enable", "reload", "status"):
        monkeypatch.setattr(operations, name, recorder(name))
    return seen


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "daemon.pid.sock"


@pytest.fixture
def serve(sock_path: Path) -> Iterator[Callable[..., ControlServer]]:
    """Start servers on ``sock_path``; every one is closed after the test."""
    started: list[ControlServer] = []

    def start(submit: FakeSubmit, **options: Any) -> ControlServer:
        server = ControlServer(sock_path, submit, **options)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def raw_exchange(path: Path, data: bytes) -> dict[str, Any]:
    """Send bytes as they are and read the reply (for malformed requests)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(os.fspath(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply: dict[str, Any] = json.loads(sock.makefile("rb").read())
        return reply


def test_each_command_reaches_its_operation_with_typed_arguments(
    serve: Callable[..., ControlServer], sock_path: Path, calls: list[Any]
) -> None:
    # Given a server whose submit runs actions at once
    serve(FakeSubmit())
    # When the client sends every command
    replay = request(sock_path, "replay", {"plugin": "p", "from_id": 5, "to_id": 9, "reason": "r"})
    request(sock_path, "replay", {"plugin": "p", "from_id": 5})
    request(sock_path, "skip", {"plugin": "p", "event_id": 12, "reason": "stuck"})
    request(sock_path, "reset", {"plugins": ["a", "b"], "to": "latest", "reason": "x"})
    request(sock_path, "disable", {"plugin": "p", "reason": "maintenance"})
    request(sock_path, "enable", {"plugin": "p"})
    request(sock_path, "reload", {})
    request(sock_path, "reload", {"plugin": "p", "reason": "  two\n lines  "})
    status = request(sock_path, "status")
    # Then each operation got its arguments, with the default reason where none was given
    assert calls == [
        ("replay", ("p", 5, 9, "r")),
        ("replay", ("p", 5, None, "no reason given")),
        ("skip", ("p", 12, "stuck")),
        ("reset", ("a", "latest", "x")),
        ("reset", ("b", "latest", "x")),
        ("disable", ("p", "maintenance")),
        ("enable", ("p", "no reason given")),
        ("reload", (None, "no reason given")),
        ("reload", ("p", "two lines")),
        ("status", ()),
    ]
    # And the replies carry the results
    assert replay == Reply(True, {"operation": "replay", "args": ["p", 5, 9, "r"]})
    assert status.done and status.result == {"operation": "status", "args": []}


def test_the_socket_is_owner_only_and_removed_on_close(sock_path: Path) -> None:
    # Given a started server
    server = ControlServer(sock_path, FakeSubmit())
    server.start()
    try:
        # Then the socket exists with mode 0600
        info = os.lstat(sock_path)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
    finally:
        # When it is closed
        server.close()
    # Then the socket file is gone and clients are told there is no daemon
    assert not sock_path.exists()
    with pytest.raises(ControlUnavailable, match="no control socket"):
        request(sock_path, "status")


def test_a_stale_socket_is_replaced_but_another_file_is_refused(
    serve: Callable[..., ControlServer], sock_path: Path, calls: list[Any]
) -> None:
    # Given a socket file left by a daemon that died
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as old:
        old.bind(os.fspath(sock_path))
    # When a server starts there, Then it serves
    serve(FakeSubmit())
    assert request(sock_path, "status").done
    # Given a regular file in the place of the socket
    other = sock_path.with_name("other.sock")
    other.write_text("keep me")
    # When a server is asked to use it, Then it refuses and leaves the file alone
    with pytest.raises(ControlError, match="is not a socket"):
        ControlServer(other, FakeSubmit()).start()
    assert other.read_text() == "keep me"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json\n", "not JSON"),
        (b"\xff\xfe\n", "not JSON"),
        (b'["status"]\n', "expected"),
        (b'{"args": {}}\n', "expected"),
        (b'{"command": "status", "args": []}\n', "args must be an object"),
        (b"", "not JSON"),
    ],
)
def test_malformed_requests_get_a_one_line_error(
    serve: Callable[..., ControlServer], sock_path: Path, data: bytes, message: str
) -> None:
    # Given a server
    submit = FakeSubmit()
    serve(submit)
    # When a malformed request arrives
    reply = raw_exchange(sock_path, data)
    # Then the reply is an error naming the problem, and nothing reached the engine
    assert reply["ok"] is False and message in reply["error"]
    assert "\n" not in reply["error"]
    assert submit.futures == []


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("explode", {}, "unknown command 'explode'; known: status, replay"),
        ("replay", {"plugin": "p", "from_id": "5"}, "from_id: expected an event id"),
        ("replay", {"plugin": "p", "from_id": True}, "from_id: expected an event id"),
        ("skip", {"event_id": 3}, "plugin: expected text"),
        ("reset", {"plugins": ["a"], "all": True, "to": "1"}, "not both"),
        ("reset", {"to": "1"}, "name the plugins"),
        ("reset", {"plugins": "a", "to": "1"}, "a list of plugin names"),
        ("disable", {"plugin": "p", "reason": 3}, "reason: expected text"),
        ("reload", {"plugin": 7}, "plugin: expected a plugin name"),
    ],
)
def test_unknown_commands_and_bad_arguments_are_refused(
    serve: Callable[..., ControlServer],
    sock_path: Path,
    calls: list[Any],
    command: str,
    args: dict[str, Any],
    message: str,
) -> None:
    # Given a server
    serve(FakeSubmit())
    # When a command is unknown or its arguments are wrong, Then the client raises the message
    with pytest.raises(ControlError, match=message):
        request(sock_path, command, args)
    # And no operation ran
    assert calls == []


def test_an_operation_error_is_returned_as_its_message(
    serve: Callable[..., ControlServer], sock_path: Path, calls: list[Any]
) -> None:
    # Given a server whose skip operation refuses event 13
    serve(FakeSubmit())
    # When skip is asked for event 13, Then the client raises the operation's message
    with pytest.raises(ControlError, match="not stuck on event 13"):
        request(sock_path, "skip", {"plugin": "p", "event_id": 13})


def test_a_long_command_is_reported_as_still_running(
    serve: Callable[..., ControlServer], sock_path: Path, calls: list[Any]
) -> None:
    # Given an engine that does not get to the request in time
    submit = FakeSubmit(run=False)
    serve(submit, reply_timeout=0.2)
    # When a replay is requested
    reply = request(sock_path, "replay", {"plugin": "p", "from_id": 1})
    # Then the reply says it is still running, and the request stays queued in the engine
    assert not reply.done
    assert "still running" in reply.message and "log" in reply.message
    assert not submit.futures[0].cancelled()


def test_a_status_the_engine_does_not_answer_is_withdrawn(
    serve: Callable[..., ControlServer], sock_path: Path
) -> None:
    # Given an engine that does not get to the request in time
    submit = FakeSubmit(run=False)
    serve(submit, status_timeout=0.2)
    # When the status is asked for, Then the client is told, and the request is withdrawn
    with pytest.raises(ControlError, match="did not answer"):
        request(sock_path, "status")
    assert submit.futures[0].cancelled()


def test_closing_the_server_cancels_waiting_commands(sock_path: Path) -> None:
    # Given a command waiting for an engine that will never serve it
    submit = FakeSubmit(run=False)
    server = ControlServer(sock_path, submit)
    server.start()
    outcome: list[BaseException] = []

    def client() -> None:
        try:
            request(sock_path, "disable", {"plugin": "p"})
        except ControlError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    assert submit.submitted.wait(30)
    # When the daemon closes the server
    server.close()
    thread.join(30)
    # Then the client is told that nothing was done
    assert len(outcome) == 1 and "nothing was done" in str(outcome[0])
    assert submit.futures[0].cancelled()


@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="needs SO_PEERCRED")
def test_a_peer_of_another_user_is_refused(
    serve: Callable[..., ControlServer], sock_path: Path, calls: list[Any]
) -> None:
    # Given a server that only serves a uid other than ours
    serve(FakeSubmit(), allowed_uids=frozenset({os.geteuid() + 4242}))
    # When we send a command, Then it is refused by uid, and nothing ran
    with pytest.raises(ControlError, match=f"uid {os.geteuid()} may not control"):
        request(sock_path, "disable", {"plugin": "p"})
    assert calls == []


def test_a_missing_folder_is_reported(tmp_path: Path) -> None:
    # Given a socket path in a folder that does not exist
    server = ControlServer(tmp_path / "nowhere" / "d.sock", FakeSubmit())
    # When started, Then the error names the folder
    with pytest.raises(ControlError, match="no folder"):
        server.start()
    server.close()


def test_describe_turns_results_into_sentences() -> None:
    # Given replies as the operations return them, Then each reads as one sentence
    replay = {"plugin": "p", "from_id": 3, "to_id": 9, "delivered": 7}
    assert live.describe("replay", Reply(True, replay)) == (
        "replayed 7 event(s) of 3..9 to p; its position did not move"
    )
    skipped = {"plugin": "p", "skipped": 4, "active": True}
    assert "active again" in live.describe("skip", Reply(True, skipped))
    reset = [{"plugin": "a", "starts_after": 10}]
    assert live.describe("reset", Reply(True, reset)) == "reset a: it continues after event 10"
    reload = {"reloaded": ["a", "b"], "inactive": {"b": "SyntaxError"}}
    assert live.describe("reload", Reply(True, reload)) == (
        "reloaded a, b\n  b is inactive: SyntaxError"
    )
    assert live.describe("replay", Reply(False, None, "still running")) == "still running"


CONFIG = """\
[daemon]
pidFile = {pid}
eventIdFile = state.json
logFile = main.log
{extra}
[shotgun]
server = https://example.com
name = n
key = k
[plugins]
paths = plugins
"""


def test_the_socket_defaults_to_the_pid_file_plus_sock(tmp_path: Path) -> None:
    # Given a config without control_socket, and one with a relative control_socket
    plain = tmp_path / "a.conf"
    plain.write_text(CONFIG.format(pid="run/d.pid", extra=""))
    chosen = tmp_path / "b.conf"
    chosen.write_text(CONFIG.format(pid="run/d.pid", extra="control_socket = ctl/s"))
    # Then the first listens next to the pid file, the second where it says (from the config)
    assert load_config(plain).control_socket_path == tmp_path / "run" / "d.pid.sock"
    assert load_config(chosen).control_socket_path == tmp_path / "ctl" / "s"


def test_a_socket_path_too_long_for_the_kernel_is_a_config_error(tmp_path: Path) -> None:
    # Given a pid file path so long that the derived socket path cannot be bound
    path = tmp_path / "c.conf"
    path.write_text(CONFIG.format(pid="/run/" + "x" * 110 + ".pid", extra=""))
    # Then loading the config names the key and the fix
    with pytest.raises(ConfigError, match=r"\[daemon\] control_socket.*shorter path"):
        load_config(path)
