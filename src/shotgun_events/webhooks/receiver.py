"""WebhookReceiver: the listener the site's webhook deliveries are POSTed to.

Every request is answered at once and does no work beyond checking it: a
valid delivery hands its event ids to ``on_delivery`` (the engine's
``WakeUps.notify``, a lock and an Event) and gets 200. An invalid signature
gets 401 (counted; logged at most once a minute), a body over 1 MB 413
(what the sender still writes is dropped unkept, so it reads that answer),
anything else malformed 400, a wrong path 404, another verb 405; none of
those reach the engine. Secrets and bodies are never logged.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shotgun_events.webhooks.payload import (
    SIGNATURE_HEADER,
    MalformedDeliveryError,
    event_ids,
    signature_ok,
)

log = logging.getLogger("engine.webhooks")

#: Largest body accepted (a batch of 50 deliveries is far smaller).
MAX_BODY = 1024 * 1024
#: Seconds a connection may stay silent (slow clients cannot hold a thread for long).
CONNECTION_TIMEOUT = 10.0
#: How long and how much of a refused body is read and dropped before closing.
DISCARD_SECONDS = 2.0
DISCARD_BYTES = 8 * 1024 * 1024

#: Connections served at once; more are closed at once (a flood cannot exhaust threads).
MAX_CONNECTIONS = 64
#: At most one log line about invalid signatures per this many seconds.
BAD_SIGNATURE_LOG_EVERY = 60.0


@dataclass
class ReceiverStats:
    """What the receiver answered, by outcome (read from any thread)."""

    requests: int = 0
    accepted: int = 0
    deliveries: int = 0
    bad_signature: int = 0
    too_large: int = 0
    malformed: int = 0
    refused: int = 0


class WebhookReceiver:
    """An HTTP listener of its own, in a background thread, for webhook deliveries."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        secret: str,
        on_delivery: Callable[[Sequence[int]], None],
        path: str = "/",
        monotonic: Callable[[], float] = time.monotonic,
        connection_timeout: float = CONNECTION_TIMEOUT,
    ) -> None:
        """Configure; nothing listens until ``start()``."""
        self._address = (host, port)
        self._secret = secret.encode("utf-8")
        self._on_delivery = on_delivery
        self.path = path
        self._monotonic = monotonic
        self._timeout = connection_timeout
        self.stats = ReceiverStats()
        self._lock = threading.Lock()
        self._bad_since_log = 0
        self._next_bad_log = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the real one once started, also when 0 was asked for)."""
        if self._server is None:
            return self._address[1]
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in a background thread; OSError when the address cannot be bound."""
        if self._server is not None:
            return
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="webhook-receiver",
            daemon=True,
        )
        self._thread.start()
        log.info("webhook receiver listening on %s:%d%s", self._address[0], self.port, self.path)

    def close(self) -> None:
        """Stop listening and end open connections."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.end_connections()
        self._server.server_close()
        self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- called by the request handler --------------------------------------------

    def handle(self, path: str, body: bytes, signature: str | None) -> int:
        """Check one delivery; return the HTTP status to answer with."""
        if path != self.path:
            return 404
        if not signature_ok(self._secret, body, signature):
            self._bad_signature()
            return 401
        try:
            ids = event_ids(body)
        except MalformedDeliveryError:
            self._count("malformed")
            return 400
        with self._lock:
            self.stats.accepted += 1
            self.stats.deliveries += len(ids)
        self._on_delivery(ids)
        return 200

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self.stats, what, getattr(self.stats, what) + 1)

    def _bad_signature(self) -> None:
        now = self._monotonic()
        with self._lock:
            self.stats.bad_signature += 1
            self._bad_since_log += 1
            if now < self._next_bad_log:
                return
            count, self._bad_since_log = self._bad_since_log, 0
            self._next_bad_log = now + BAD_SIGNATURE_LOG_EVERY
        log.warning(
            "%d webhook deliveries refused (401): invalid %s signature; the [webhooks] "
            "secret must equal the webhook's secret token on the site (next report in %.0f s)",
            count,
            SIGNATURE_HEADER,
            BAD_SIGNATURE_LOG_EVERY,
        )


class _Server(ThreadingHTTPServer):
    """Threading server that bounds its connections and can end them all on close."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept with Nagle off (no 40 ms delayed-ACK stall per answer)."""
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Refuse a connection beyond MAX_CONNECTIONS (it is closed unanswered)."""
        with self._open_lock:
            if len(self._open) >= MAX_CONNECTIONS:
                self.receiver._count("refused")
                return False
            self._open.add(request)
        return True

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, then close it."""
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def end_connections(self) -> None:
        """Shut every open connection so idle keep-alive handlers return."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection; each answer is a single write."""

    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "shotgun_events-webhooks"

    def setup(self) -> None:
        """Apply the per-connection timeout before reading anything."""
        super().setup()
        self.connection.settimeout(self.server.receiver._timeout)

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines go to the debug log only (never headers or bodies)."""
        log.debug("%s - " + format, self.address_string(), *args)

    def _answer(self, status: int) -> None:
        body = b'{"ok": true}' if status == 200 else HTTPStatus(status).phrase.encode()
        kind = "application/json" if status == 200 else "text/plain; charset=utf-8"
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'close' if self.close_connection else 'keep-alive'}\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # the sender gave up: nothing left to tell it
            self.wfile.write(head.encode("latin-1") + body)
        self.log_request(status)

    def do_POST(self) -> None:
        """Read the body (bounded), let the receiver judge it, answer."""
        receiver = self.server.receiver
        receiver._count("requests")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length > MAX_BODY:
            receiver._count("too_large")
            self.close_connection = True  # the body is not read: the connection cannot go on
            self._answer(413)
            self._discard_rest()
            return
        if length < 0 or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            receiver._count("malformed")
            self.close_connection = True
            self._answer(400)
            self._discard_rest()
            return
        try:
            body = self.rfile.read(length) if length else b""
        except OSError:  # timed out or reset mid-body
            self.close_connection = True
            return
        if len(body) < length:
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        self._answer(receiver.handle(path, body, self.headers.get(SIGNATURE_HEADER)))

    def _discard_rest(self) -> None:
        """Let a sender still writing a refused body finish, so it reads the answer.

        Closing with unread bytes makes the kernel reset the connection, and the
        sender then sees a broken pipe instead of the 413/400. So the answer is
        sent, our side is shut, and what still arrives is read and dropped, for
        at most DISCARD_SECONDS and DISCARD_BYTES (a sender cannot hold us).
        """
        sock = self.connection
        deadline = time.monotonic() + DISCARD_SECONDS
        dropped = 0
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
            while dropped < DISCARD_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                dropped += len(chunk)

    def _other_verb(self) -> None:
        self.close_connection = True
        self._answer(405)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _other_verb
