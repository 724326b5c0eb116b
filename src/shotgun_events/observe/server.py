"""One small read-only HTTP server on its own thread: metrics, probes, status page.

Each connection is served by its own short-lived thread with a socket
timeout, and at most ``max_connections`` are served at once (the others get
an immediate 503), so a slow or half-open client holds one thread for at
most ``timeout`` seconds and never the engine. Only GET and HEAD exist;
with a token, every request must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from shotgun_events.config.http_section import HttpSettings
from shotgun_events.errors import ShotgunEventsError
from shotgun_events.observe import health, metrics, page
from shotgun_events.observe.view import DaemonView

log = logging.getLogger("engine.observe")

#: (status, content type, body) of one answer.
Answer = tuple[int, str, bytes]
TEXT = "text/plain; charset=utf-8"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def routes(view: DaemonView) -> dict[str, Callable[[], Answer]]:
    """Path -> what answers it."""
    registry = metrics.build_registry(view)

    def probe(check: Callable[[DaemonView], tuple[bool, str]]) -> Callable[[], Answer]:
        def answer() -> Answer:
            ok, reason = check(view)
            return (200 if ok else 503), TEXT, (reason + "\n").encode()

        return answer

    return {
        "/metrics": lambda: (200, CONTENT_TYPE_LATEST, metrics.render(registry)),
        "/livez": probe(health.live),
        "/readyz": probe(health.ready),
        "/": lambda: (200, "text/html; charset=utf-8", page.render(view).encode()),
        "/status.json": lambda: (
            200,
            "application/json",
            json.dumps(view.status_report(), indent=2, default=str).encode(),
        ),
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], settings: HttpSettings, **kw: Any) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.settings = settings
        self.answers: dict[str, Callable[[], Answer]] = kw.pop("answers")
        self.slots = threading.BoundedSemaphore(kw.pop("max_connections"))
        self.timeout_seconds: float = kw.pop("timeout")
        self.on_tick: Callable[[], None] = kw.pop("on_tick")
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            # Too many clients at once: answer at once instead of queueing behind them.
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def service_actions(self) -> None:
        # Runs about every poll interval in the server's thread: sample the chart's counter.
        try:
            self.on_tick()
        except Exception as exc:  # never let a sampling bug stop the server
            log.debug("status page sampling failed: %s", exc)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up or timed out is not worth a traceback on stderr.
        log.debug("HTTP request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "shotgunEventDaemon"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # A slow or half-open client times out instead of holding its thread forever.
        self.connection.settimeout(self.server.timeout_seconds)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_POST(self) -> None:
        self._send(405, TEXT, b"read only: use GET\n", extra={"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _serve(self, *, body: bool) -> None:
        token = self.server.settings.token
        if token is not None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                self._send(
                    401,
                    TEXT,
                    b"a bearer token is required: send 'Authorization: Bearer <token>'\n",
                    extra={"WWW-Authenticate": 'Bearer realm="shotgunEventDaemon"'},
                )
                return
        path = urlsplit(self.path).path
        answer = self.server.answers.get(path)
        if answer is None:
            known = ", ".join(sorted(self.server.answers))
            self._send(404, TEXT, f"no such page; try {known}\n".encode())
            return
        try:
            status, kind, data = answer()
        except Exception:
            log.exception("HTTP %s failed; answering 500", path)
            status, kind, data = 500, TEXT, b"internal error; see the daemon's log\n"
        self._send(status, kind, data if body else b"", length=len(data))

    def _send(
        self,
        status: int,
        kind: str,
        data: bytes,
        *,
        extra: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("HTTP %s: " + format, self.client_address[0], *args)


class ObserveServer:
    """The HTTP server of ``[http]``, serving one daemon's view until closed."""

    def __init__(
        self,
        settings: HttpSettings,
        view: DaemonView,
        *,
        timeout: float = 10.0,
        max_connections: int = 32,
    ) -> None:
        self._settings = settings
        self._view = view
        self._timeout = timeout
        self._max_connections = max_connections
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one once started)."""
        return self._server.server_address[1] if self._server is not None else self._settings.port

    def start(self) -> None:
        """Bind and serve on a thread; ShotgunEventsError with a one-line message if it cannot."""
        host = self._settings.host or "127.0.0.1"
        try:
            self._server = _Server(
                (host, self._settings.port),
                self._settings,
                answers=routes(self._view),
                max_connections=self._max_connections,
                timeout=self._timeout,
                on_tick=self._view.per_minute.sample,
            )
        except OSError as exc:
            raise ShotgunEventsError(
                f"[http] listen = {self._settings.address}: cannot listen there "
                f"({exc.strerror or exc}); choose a free port or stop what uses it"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="http",
            daemon=True,
        )
        self._thread.start()
        log.info(
            "serving metrics, probes and the status page on http://%s/%s",
            self._settings.address,
            " (bearer token required)" if self._settings.token else "",
        )

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
        self._server = None
