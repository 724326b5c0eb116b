"""Error emails against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from shotgun_events.notify.mailer import EmailNotifier

HOST = "127.0.0.1"
USER = "daemon@studio.test"
PASSWORD = "smtp-pass-9f2c"


# -- a real SMTP server --------------------------------------------------------


@dataclass
class Received:
    rcpt: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        # The wire format has CRLF line ends.
        return str(self.message.get_content()).replace("\r\n", "\n")


class Collector:
    """aiosmtpd handler keeping every message; may refuse or hold DATA."""

    def __init__(self, *, refuse_first: int = 0) -> None:
        self.received: list[Received] = []
        self.refuse = refuse_first
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.entered.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)  # holding the client, as a slow server does
        if self.refuse:
            self.refuse -= 1
            return "451 try again later"
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(list(envelope.rcpt_tos), message))
        return "250 OK"


class Authenticator:
    """Accept one user and password; remember the mechanisms used."""

    def __init__(self) -> None:
        self.mechanisms: list[str] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.mechanisms.append(mechanism)
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)


class _FreePortController(Controller):  # type: ignore[misc]
    """A Controller bound to port 0 that learns its port before its self-check."""

    def _trigger_server(self) -> None:
        server: Any = self.server
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@contextmanager
def smtp_server(handler: Collector, **kwargs: Any) -> Iterator[_FreePortController]:
    controller = _FreePortController(handler, hostname=HOST, port=0, **kwargs)
    controller.start()
    try:
        yield controller
    finally:
        handler.release.set()
        controller.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    return context


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


# -- the notifier under test -----------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_notifier(clock: FakeClock) -> Iterator[Callable[..., EmailNotifier]]:
    made: list[EmailNotifier] = []

    def make(port: int, **kwargs: Any) -> EmailNotifier:
        options: dict[str, Any] = {
            "server": HOST,
            "port": port,
            "use_tls": False,
            "use_ssl": False,
            "username": None,
            "password": None,
            "sender": "daemon@studio.test",
            "to": ["pipeline@studio.test", "td@studio.test"],
            "subject": "[shotgunEvents]",
            "clock": clock,
            "timeout": 10.0,
        }
        options.update(kwargs)
        notifier = EmailNotifier(**options)
        for name in ("engine", "plugin"):
            logging.getLogger(name).addHandler(notifier)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        for name in ("engine", "plugin"):
            logging.getLogger(name).removeHandler(notifier)
        notifier.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _fail(logger: logging.Logger, message: str) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception(message)


# -- tests ---------------------------------------------------------------------


def test_one_error_sends_one_mail_with_the_record_details(
    make_notifier: Callable[..., EmailNotifier],
) -> None:
    # Given a notifier and a mail server
    handler = Collector()
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port)
        # When a plugin callback logs one error with a traceback, and info is logged too
        logging.getLogger("plugin.myPlugin.onShot").info("not mailed")
        _fail(logging.getLogger("plugin.myPlugin.onShot"), "callback failed on event 7")
        notifier.flush()
    # Then exactly one mail went to the configured recipients
    [mail] = handler.received
    assert mail.rcpt == ["pipeline@studio.test", "td@studio.test"]
    assert mail.subject == "[shotgunEvents] ERROR - myPlugin"
    assert mail.message["From"] == "daemon@studio.test"
    # And its body has time, logger, path, function, line, message and traceback
    body = mail.body
    assert body.startswith("Time: ")
    assert "\nLogger: plugin.myPlugin.onShot\n" in body
    assert f"\nPath: {__file__}\n" in body
    assert "\nFunction: _fail\n" in body
    assert "\nLine: " in body
    assert "\n\ncallback failed on event 7\n\nTraceback (most recent call last)" in body
    assert "ValueError: boom" in body


def test_engine_errors_go_to_config_recipients_and_critical_says_so(
    make_notifier: Callable[..., EmailNotifier],
) -> None:
    # Given a notifier where a plugin chose other addresses
    handler = Collector()
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port)
        notifier.set_recipients("engine", ["someone@else.test"])
        # When the engine logs a critical record
        logging.getLogger("engine.source").critical("site unreachable; giving up")
        notifier.flush()
    # Then the configured recipients get it, with CRITICAL in the subject
    [mail] = handler.received
    assert mail.rcpt == ["pipeline@studio.test", "td@studio.test"]
    assert mail.subject == "[shotgunEvents] CRITICAL - engine"


def test_set_emails_false_sends_nothing_and_addresses_choose_recipients(
    make_notifier: Callable[..., EmailNotifier],
) -> None:
    # Given one plugin without emails and one with its own addresses
    handler = Collector()
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port)
        notifier.set_recipients("quiet", False)
        notifier.set_recipients("owned", ["owner@studio.test"])
        notifier.set_recipients("single", "lead@studio.test")  # type: ignore[arg-type]
        notifier.set_recipients("default", True)
        # When each logs an error
        for name in ("quiet", "owned", "single", "default"):
            logging.getLogger(f"plugin.{name}").error("%s failed", name)
        notifier.flush()
    # Then "quiet" sent nothing and the others went to their recipients
    by_subject = {mail.subject: mail.rcpt for mail in handler.received}
    assert by_subject == {
        "[shotgunEvents] ERROR - owned": ["owner@studio.test"],
        "[shotgunEvents] ERROR - single": ["lead@studio.test"],
        "[shotgunEvents] ERROR - default": ["pipeline@studio.test", "td@studio.test"],
    }


def test_a_burst_gives_one_immediate_mail_and_one_digest(
    make_notifier: Callable[..., EmailNotifier], clock: FakeClock
) -> None:
    # Given a notifier with a 300 s window
    handler = Collector()
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port, digest_seconds=300.0)
        logger = logging.getLogger("plugin.storm.cb")
        # When one error is logged, then 1,000 more within the window (3 distinct messages)
        _fail(logger, "first failure")
        notifier.flush()
        for i in range(1000):
            clock.now += 0.1
            _fail(logger, f"failure kind {i % 3}")
        # Then only the immediate mail is out while the window is open
        assert len(handler.received) == 1
        # When the window ends
        clock.now += 300.0
        notifier.flush()
        # And another error comes in the next window
        clock.now += 1.0
        logger.error("after the digest")
        notifier.flush()
    # Then there were exactly three mails: immediate, one digest of 1000, the next digest
    first, digest, after = handler.received
    assert first.subject == "[shotgunEvents] ERROR - storm"
    assert "first failure" in first.body
    assert digest.subject == "[shotgunEvents] ERROR - storm (1000 errors)"
    assert "1000 errors (3 distinct) since " in digest.body
    assert "334 x failure kind 0" in digest.body
    assert "333 x failure kind 1" in digest.body
    assert "First error:" in digest.body and "Traceback (most recent call last)" in digest.body
    assert "after the digest" in after.body


def test_a_quiet_window_lets_the_next_error_out_at_once(
    make_notifier: Callable[..., EmailNotifier], clock: FakeClock
) -> None:
    # Given an error mailed at once
    handler = Collector()
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port, digest_seconds=300.0)
        logging.getLogger("engine").error("one")
        notifier.flush()
        # When the window passes without errors and another error comes
        clock.now += 301.0
        logging.getLogger("engine").error("two")
        notifier.flush()
    # Then it is mailed on its own too
    assert [m.subject for m in handler.received] == ["[shotgunEvents] ERROR - engine"] * 2
    assert "two" in handler.received[1].body


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_starttls_with_login(
    make_notifier: Callable[..., EmailNotifier],
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    mechanism: str,
) -> None:
    # Given a server requiring STARTTLS before AUTH, offering one mechanism
    handler, auth = Collector(), Authenticator()
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    with smtp_server(
        handler,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=auth,
        auth_require_tls=True,
        auth_exclude_mechanism=[other],
    ) as server:
        notifier = make_notifier(
            server.port, use_tls=True, username=USER, password=PASSWORD, ssl_context=client_tls
        )
        # When an error is logged
        logging.getLogger("engine").error("over tls")
        notifier.flush()
    # Then the mail arrived after a successful login with that mechanism
    assert [m.subject for m in handler.received] == ["[shotgunEvents] ERROR - engine"]
    assert auth.mechanisms == [mechanism]


def test_smtps_implicit_tls(
    make_notifier: Callable[..., EmailNotifier],
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    # Given a server that speaks TLS from the first byte, with AUTH
    handler, auth = Collector(), Authenticator()
    # (aiosmtpd only counts STARTTLS as TLS for AUTH; here the socket itself is TLS.)
    with smtp_server(
        handler, ssl_context=server_tls, authenticator=auth, auth_require_tls=False
    ) as server:
        notifier = make_notifier(
            server.port, use_ssl=True, username=USER, password=PASSWORD, ssl_context=client_tls
        )
        # When an error is logged
        logging.getLogger("engine").error("over smtps")
        notifier.flush()
    # Then the mail arrived
    assert len(handler.received) == 1 and "over smtps" in handler.received[0].body
    assert len(auth.mechanisms) == 1


def test_wrong_password_is_reported_once_without_the_password(
    make_notifier: Callable[..., EmailNotifier],
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a server that refuses the login
    handler, auth = Collector(), Authenticator()
    with smtp_server(
        handler, tls_context=server_tls, authenticator=auth, auth_require_tls=True
    ) as server:
        notifier = make_notifier(
            server.port,
            use_tls=True,
            username=USER,
            password="wrong-" + PASSWORD,
            ssl_context=client_tls,
        )
        # When errors are logged and flushed twice
        logging.getLogger("engine").error("first")
        notifier.flush()
        logging.getLogger("engine").error("second")
        notifier.flush()
    # Then no mail went out, the failure is logged once, and never with the password
    assert handler.received == []
    failures = [r for r in caplog.records if r.name == "shotgun_events.mailer"]
    assert len(failures) == 1
    assert PASSWORD not in caplog.text


def test_a_refused_mail_is_retried_not_lost(
    make_notifier: Callable[..., EmailNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a server that refuses the first mail (451) and accepts later ones
    handler = Collector(refuse_first=1)
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port)
        # When an error is logged (its mail is refused) and pending mail is flushed
        logging.getLogger("plugin.p").error("refused at first")
        notifier.flush()
    # Then the error went out with the next mail, once
    [mail] = handler.received
    assert mail.subject == "[shotgunEvents] ERROR - p"
    assert "refused at first" in mail.body
    # And the failure and the recovery were logged, not mailed
    assert [r.levelname for r in caplog.records if r.name == "shotgun_events.mailer"] == [
        "ERROR",
        "WARNING",
    ]


def test_a_failing_server_is_retried_once_per_window(
    make_notifier: Callable[..., EmailNotifier], clock: FakeClock
) -> None:
    # Given a server that refuses the first two attempts
    handler = Collector(refuse_first=2)
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port, digest_seconds=300.0)
        # When an error is logged and windows pass (a flush forces one retry each time)
        logging.getLogger("engine").error("persistent")
        notifier.flush()
        clock.now += 300.0
        logging.getLogger("engine").error("persistent")
        notifier.flush()
    # Then the errors were kept and went out together, counted
    [mail] = handler.received
    assert mail.subject == "[shotgunEvents] ERROR - engine (2 errors)"
    assert "2 x persistent" in mail.body


def test_a_down_server_never_blocks_emit(
    make_notifier: Callable[..., EmailNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a notifier pointing at a closed port
    notifier = make_notifier(_free_port())
    # When many errors are logged
    for i in range(200):
        logging.getLogger("plugin.p").error("error %d", i)
    notifier.flush()
    # Then emit returned every time and the failure was logged once, not mailed
    failures = [r for r in caplog.records if r.name == "shotgun_events.mailer"]
    assert len(failures) == 1
    assert "ConnectionRefusedError" in failures[0].getMessage()


def test_a_slow_server_never_blocks_emit(make_notifier: Callable[..., EmailNotifier]) -> None:
    # Given a server that holds the first mail in DATA until told to go on
    handler = Collector()
    handler.release.clear()
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port)
        logging.getLogger("engine").error("first")
        assert handler.entered.wait(10), "the sender never reached the server"
        # When many more errors are logged (in a thread, so a block cannot hang the test)
        emitted = threading.Event()

        def log_many() -> None:
            for i in range(500):
                logging.getLogger("plugin.p").error("error %d", i)
            emitted.set()

        worker = threading.Thread(target=log_many)
        worker.start()
        # Then every emit returned while the server still holds the first mail
        assert emitted.wait(10)
        assert not handler.release.is_set() and handler.received == []
        worker.join()
        # When the server lets go
        handler.release.set()
        notifier.flush()
    # Then the held mail arrived, and the other group's first error and digest
    assert sorted(m.subject for m in handler.received) == [
        "[shotgunEvents] ERROR - engine",
        "[shotgunEvents] ERROR - p",
        "[shotgunEvents] ERROR - p (499 errors)",
    ]


def test_close_sends_pending_digests_and_ignores_later_records(
    make_notifier: Callable[..., EmailNotifier],
) -> None:
    # Given an error mailed and another waiting for the window to end
    handler = Collector()
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port)
        logging.getLogger("engine").error("one")
        logging.getLogger("engine").error("two")
        # When the notifier closes (daemon shutdown)
        notifier.close()
        logging.getLogger("engine").error("after close")
        notifier.flush()
    # Then the waiting error went out as well, and nothing after close
    assert len(handler.received) == 2
    assert "two" in handler.received[1].body
    assert all("after close" not in m.body for m in handler.received)


def test_password_in_a_record_is_masked(make_notifier: Callable[..., EmailNotifier]) -> None:
    # Given a notifier with a password
    handler = Collector()
    with smtp_server(handler) as server:
        notifier = make_notifier(server.port, password=PASSWORD)
        # When a record quotes it
        logging.getLogger("engine").error("config dump: password=%s", PASSWORD)
        notifier.flush()
    # Then the mail does not
    [mail] = handler.received
    assert PASSWORD not in mail.body and "password=***" in mail.body
