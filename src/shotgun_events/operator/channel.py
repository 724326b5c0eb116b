"""The control channel: operator commands reach the running daemon through a Unix socket.

One JSON request per connection, one JSON reply::

    -> {"command": "skip", "args": {"plugin": "x", "event_id": 12, "reason": "..."}}
    <- {"ok": true, "done": true, "result": {...}}
    <- {"ok": true, "done": false, "message": "still running ..."}   (a long replay)
    <- {"ok": false, "error": "one line"}

The server thread never touches the engine: it hands each command to
``engine.submit`` (run in the engine's thread at its next safe point) and
waits on the future. The socket is created owner-only (0600) before it
listens, and where the kernel tells the peer's uid (SO_PEERCRED), only the
daemon's own user and root are served. The client is in live.py; what a
request asks for (its arguments checked, the action to submit) is requests.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import stat
import struct
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from shotgun_events.errors import ControlError
from shotgun_events.operator.requests import Action, build_action

log = logging.getLogger("engine.control")

Submit = Callable[[Action], "Future[Any]"]

#: Largest request accepted, in bytes (a request is a few hundred).
MAX_REQUEST = 64 * 1024
#: Seconds a client may take to send its request.
READ_TIMEOUT = 5.0
#: Connections served at the same time; more are turned away with "busy".
MAX_CLIENTS = 8


class ControlServer:
    """Serve operator commands on a Unix socket from a daemon thread."""

    def __init__(
        self,
        path: Path,
        submit: Submit,
        *,
        reply_timeout: float = 30.0,
        status_timeout: float = 10.0,
        allowed_uids: frozenset[int] | None = None,
        status: Action | None = None,
    ) -> None:
        """``status``: the status action with the daemon's parts bound (requests.build_action)."""
        self._path = Path(path)
        self._submit = submit
        self._status = status
        self._reply_timeout = reply_timeout
        self._status_timeout = status_timeout
        self._allowed = allowed_uids if allowed_uids is not None else frozenset({os.geteuid(), 0})
        self._listener: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._lock = threading.Lock()
        self._handlers: set[threading.Thread] = set()
        self._pending: set[Future[Any]] = set()

    @property
    def path(self) -> Path:
        """The socket file."""
        return self._path

    def start(self) -> None:
        """Create the socket (mode 0600) and serve in a daemon thread; ControlError if it can't."""
        self._listener = self._bind()
        # Written to by close(): wakes the accept loop at once.
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()
        log.info("operator commands accepted on %s", self._path)

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, cancel commands the engine has not started, remove the socket."""
        with self._lock:
            self._stopping.set()
            for future in self._pending:
                future.cancel()
        if self._wake is not None:
            with contextlib.suppress(OSError):
                self._wake[1].send(b"x")
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.join(timeout)
        if self._listener is not None:
            self._remove_socket_file()
            self._listener.close()
            self._listener = None
        if self._wake is not None:
            for end in self._wake:
                end.close()
            self._wake = None

    # -- socket file ---------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        folder = self._path.parent
        if not folder.is_dir():
            raise ControlError(f"cannot create the control socket {self._path}: no folder {folder}")
        self._check_folder(folder)
        self._remove_stale()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(os.fspath(self._path))
            # Nobody can connect before listen(), so the mode is owner-only before
            # the first connection is possible.
            os.chmod(self._path, 0o600)
            info = os.stat(self._path)
            self._inode = (info.st_dev, info.st_ino)
            listener.listen(16)
        except OSError as exc:
            listener.close()
            raise ControlError(
                f"cannot create the control socket {self._path}: {exc.strerror or exc}"
            ) from exc
        return listener

    def _check_folder(self, folder: Path) -> None:
        info = folder.stat()
        if info.st_uid != os.geteuid() and info.st_mode & 0o022 and not info.st_mode & 0o1000:
            log.warning(
                "the folder of the control socket %s is writable by other users; put the "
                "socket in a folder the daemon's user owns ([daemon] control_socket)",
                self._path,
            )

    def _remove_stale(self) -> None:
        """Remove a socket left by a daemon that died; refuse to replace anything else."""
        try:
            info = os.lstat(self._path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlError(
                f"{self._path} exists and is not a socket; remove it or choose another "
                "[daemon] control_socket"
            )
        # The pid file guarantees one daemon per configuration: the socket is stale.
        os.unlink(self._path)

    def _remove_socket_file(self) -> None:
        """Unlink the socket unless another daemon (after a restart) has replaced it."""
        try:
            info = os.lstat(self._path)
        except FileNotFoundError:
            return
        if (info.st_dev, info.st_ino) == self._inode:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)

    # -- serving ---------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None and self._wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = [key.fileobj for key, _ in selector.select()]
                if self._stopping.is_set() or self._listener not in ready:
                    continue
                try:
                    conn, _ = self._listener.accept()
                except OSError as exc:
                    log.warning("control socket: accept failed: %s", exc)
                    continue
                self._hand_off(conn)

    def _hand_off(self, conn: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            with conn:
                _send(conn, _error("the daemon is busy with other operator commands; try again"))
            return
        handler = threading.Thread(target=self._handle, args=(conn,), name="control-client")
        handler.daemon = True
        with self._lock:
            self._handlers.add(handler)
        handler.start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                reply = self._reply(conn)
                with contextlib.suppress(OSError):
                    _send(conn, reply)
        finally:
            with self._lock:
                self._handlers.discard(threading.current_thread())
            self._slots.release()

    def _reply(self, conn: socket.socket) -> dict[str, Any]:
        peer = _peer(conn)
        try:
            data = _receive(conn)  # read even when refusing: the client then gets the reason
        except ControlError as exc:
            return _error(str(exc))
        if peer is not None and peer[1] not in self._allowed:
            log.warning("control socket: refused a request from uid %d (pid %d)", peer[1], peer[0])
            return _error(f"uid {peer[1]} may not control this daemon; run as its user or root")
        try:
            command, args = _parse(data)
            action, may_take_long = build_action(command, args, status=self._status)
        except ControlError as exc:
            return _error(str(exc))
        who = f"{args.get('operator') or '?'} (uid {peer[1]}, pid {peer[0]})" if peer else "?"
        log.info("operator request %s from %s", command, who)
        return self._run(command, action, may_take_long)

    def _run(self, command: str, action: Action, may_take_long: bool) -> dict[str, Any]:
        with self._lock:
            # Checked under the lock close() cancels with: no command slips in after it.
            if self._stopping.is_set():
                return _error("the daemon is stopping; run the command again once it is stopped")
            future = self._submit(action)
            self._pending.add(future)
        timeout = self._reply_timeout if may_take_long else self._status_timeout
        try:
            result = future.result(timeout)
        except FutureTimeout:
            if not may_take_long:
                future.cancel()
                return _error(
                    f"the daemon did not answer within {timeout:g} s (busy with a long command, "
                    "or waiting for the site); try again"
                )
            return {
                "ok": True,
                "done": False,
                "message": f"{command} is still running in the daemon after {timeout:g} s; "
                "its outcome goes to the daemon's log and the audit list",
            }
        except CancelledError:
            return _error("the daemon stopped before carrying out the command; nothing was done")
        except ControlError as exc:
            return _error(str(exc))
        except Exception as exc:  # the engine logged it; the operator gets one line
            return _error(f"{command} failed in the daemon: {exc}")
        finally:
            with self._lock:
                self._pending.discard(future)
        return {"ok": True, "done": True, "result": result}


def _peer(conn: socket.socket) -> tuple[int, int] | None:
    """The client's (pid, uid) where the kernel tells it (Linux SO_PEERCRED), else None."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None  # elsewhere the socket's 0600 mode is the only gate
    size = struct.calcsize("3i")
    pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, size))
    return pid, uid


def _receive(conn: socket.socket) -> bytes:
    conn.settimeout(READ_TIMEOUT)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_REQUEST:
                raise ControlError(f"request larger than {MAX_REQUEST} bytes")
            if chunk.endswith(b"\n"):
                break
    except TimeoutError:
        raise ControlError(f"no complete request within {READ_TIMEOUT:g} s") from None
    except OSError as exc:
        raise ControlError(f"reading the request failed: {exc}") from exc
    return b"".join(chunks)


def _parse(data: bytes) -> tuple[str, dict[str, Any]]:
    try:
        request = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"bad request: not JSON ({exc})") from None
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        raise ControlError('bad request: expected {"command": NAME, "args": {...}}')
    args = request.get("args", {})
    if not isinstance(args, dict):
        raise ControlError("bad request: args must be an object")
    return request["command"], args


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def _send(conn: socket.socket, message: Mapping[str, Any]) -> None:
    conn.sendall(json.dumps(message, default=str).encode() + b"\n")
