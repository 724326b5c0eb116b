"""The HTTP side: POST /api3/json with the api3 envelope, injected faults, /_local controls."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import sys
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .api import Api
from .controls import Counters, Fault, Faults, Latency
from .errors import PROTOCOL_ERROR, ApiError
from .fileserve import UPLOAD_PREFIX, Reply, get, post
from .reads import RawJSON

LOG = logging.getLogger("shotgun_events.site")
MAX_BODY = 64 * 1024 * 1024
API_PATH = "/api3/json"
CONTROL_PREFIX = "/_local/"
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class SiteApp:
    """What the request handler needs from the site."""

    api: Api
    faults: Faults
    counters: Counters
    stopping: threading.Event
    control: Callable[[str, dict[str, Any]], Any]
    latency: Latency = field(default_factory=Latency)


def envelope(result: Any) -> bytes:
    """The api3 reply body for a result (RawJSON is embedded without re-encoding)."""
    if isinstance(result, RawJSON):
        return ('{"results": ' + result + "}").encode("utf-8")
    return json.dumps({"results": result}).encode("utf-8")


def fault_body(message: str, code: int) -> bytes:
    """The api3 reply body for a refused call (sent with HTTP 200, like a real site)."""
    return json.dumps({"exception": True, "message": message, "error_code": code}).encode()


class SiteHTTPServer(ThreadingHTTPServer):
    """A threading server that tracks its connections so stop() can end them all."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SiteApp) -> None:
        """Bind ``address`` (SO_REUSEADDR, so a restart can take the same port)."""
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, SiteHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept, switch Nagle off (no 40 ms delayed-ACK stall per call) and count."""
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.app.counters.connection()
        with self._open_lock:
            self._open.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, then close it."""
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is normal (a stopped daemon): one DEBUG line;
        anything else is the site's bug: logged with its traceback, never on bare stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            LOG.debug("client %s went away: %s", client_address, error)
            return
        LOG.exception("error answering %s", client_address)

    def end_connections(self) -> None:
        """Shut every open connection so idle keep-alive handlers return at once."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class SiteHandler(BaseHTTPRequestHandler):
    """One keep-alive connection; each request is answered with a single write."""

    protocol_version = "HTTP/1.1"
    server: SiteHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep access logs out of stderr; they go to the debug log."""
        LOG.debug("%s - " + format, self.address_string(), *args)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = JSON_TYPE,
        headers: dict[str, str] | None = None,
    ) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}"
            f"Connection: {'close' if self.close_connection else 'keep-alive'}\r\n\r\n"
        )
        try:
            self.wfile.write(head.encode("latin-1") + body)
        except OSError:  # the client gave up (timeout, reset): nothing left to tell it
            self.close_connection = True

    def _body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send(200, fault_body("invalid Content-Length", PROTOCOL_ERROR))
            return None
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        """Route to the API endpoint or a control endpoint."""
        body = self._body()
        if body is None:
            return
        path = self.path.split("?", 1)[0]
        if path == API_PATH:
            self._api(body)
        elif path.startswith(UPLOAD_PREFIX):
            self.server.app.counters.call(path)
            ctype = self.headers.get("Content-Type") or ""
            self._reply(post(self.server.app.api, path, ctype, body))
        elif path.startswith(CONTROL_PREFIX):
            self._control(path[len(CONTROL_PREFIX) :], body)
        else:
            self._send(
                200, fault_body(f"no API at path {path!r}; use POST {API_PATH}", PROTOCOL_ERROR)
            )

    def do_GET(self) -> None:
        """Serve downloads, thumbnails and the transient thumbnail placeholder."""
        if self._body() is None:
            return
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        if path == API_PATH:
            self._send(
                200, fault_body(f"GET is not supported; use POST {API_PATH}", PROTOCOL_ERROR)
            )
            return
        self.server.app.counters.call(f"GET {path.split('/')[1] if '/' in path else path}")
        self._reply(get(self.server.app.api, path, self.headers.get("Cookie")))

    def _reply(self, reply: Reply) -> None:
        self._send(reply.status, reply.body, reply.content_type, reply.headers)

    def _other_verb(self) -> None:
        self._body()
        self._send(
            200, fault_body(f"{self.command} is not supported; use POST {API_PATH}", PROTOCOL_ERROR)
        )

    do_PUT = do_DELETE = do_PATCH = _other_verb

    def _api(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError as e:
            self._send(200, fault_body(f"malformed JSON request body: {e}", PROTOCOL_ERROR))
            return
        if not isinstance(payload, dict):
            self._send(200, fault_body("request body must be a JSON object", PROTOCOL_ERROR))
            return
        method = payload.get("method_name")
        app = self.server.app
        app.counters.call(str(method))
        app.latency.wait(app.stopping)
        fault = app.faults.take(str(method))
        if fault is not None and self._apply_fault(fault):
            return
        try:
            reply = envelope(app.api.call(method, payload.get("params")))
        except ApiError as e:
            reply = fault_body(e.message, e.code)
        except Exception as e:  # never a traceback on the wire; the site keeps serving
            LOG.exception("API %s failed", method)
            reply = fault_body(f"internal error in {method}: {type(e).__name__}: {e}", 100)
        self._send(200, reply)

    def _apply_fault(self, fault: Fault) -> bool:
        """Act out an injected fault; True when the call gets no normal answer."""
        app = self.server.app
        if fault.kind == "status":
            page = f"<html><body><h1>{fault.status}</h1></body></html>".encode()
            self._send(fault.status, page, "text/html; charset=utf-8")
            return True
        if fault.kind == "garbage":
            self._send(200, b'{"results": <html>Service unavailable</html>')
            return True
        if fault.kind == "hang":
            app.faults.hang(fault.seconds, app.stopping)
            if not app.stopping.is_set():
                return False  # answer normally, late
        self.close_connection = True
        if fault.kind == "reset":
            # RST instead of FIN: the reader must not hold a ref that delays the close
            self.rfile.close()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        return True

    def _control(self, action: str, body: bytes) -> None:
        try:
            kwargs = json.loads(body) if body.strip() else {}
            if not isinstance(kwargs, dict):
                raise ValueError("control body must be a JSON object")
            result = self.server.app.control(action, kwargs)
            self._send(200, json.dumps({"result": result}).encode())
        except Exception as e:  # a bad control call is the caller's bug: say so, keep going
            self._send(400, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
