"""Error emails from the real daemon to a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from shotgun_events.site import LocalSite

from .conftest import DaemonRig, daemon_cli, wait_for

SMTP_USER = "mailer"
SMTP_PASSWORD = "Smtp-Pa55word-7e1c-never-logged"
DAEMON_SCRIPT = "event_daemon"
DAEMON_KEY = "Sc1ptKey-83b0d4-never-logged"
TEAM = ("team@example.com", "lead@example.com")

FAILING = '''\
"""Records each event, then raises on it (stopOnError=False); test plugin."""
import os

RECORD = os.environ["RECORD_FILE"]
# Plugins sometimes put configuration in their messages; the daemon must mask secrets.
LEAK = os.environ.get("LEAK_IN_ERRORS", "")
FAIL_ON = {{int(x) for x in os.environ.get("FAIL_ON", "").split(",") if x}}


def registerCallbacks(reg):
    {set_emails}
    reg.registerCallback("shotgun_events", "local", fail, None, None, stopOnError=False)


def fail(sg, logger, event, args):
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("{name} %d\\n" % event["id"]).encode())
    finally:
        os.close(fd)
    if not FAIL_ON or event["id"] in FAIL_ON:
        raise RuntimeError("{name} cannot handle event %d%s" % (event["id"], LEAK))
'''


@dataclass(frozen=True)
class Received:
    """One message as the SMTP server got it."""

    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: str
    tls: bool
    login: tuple[str, str] | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())


class Collector:
    """aiosmtpd handler and authenticator that keeps every message and login."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Received] = []

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == SMTP_USER
            and auth_data.password.decode() == SMTP_PASSWORD
        )
        return AuthResult(success=ok, auth_data=auth_data)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content.decode("utf-8", "replace")
        parsed = email.message_from_string(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = (session.auth_data.login.decode(), session.auth_data.password.decode())
        with self.lock:
            self.messages.append(
                Received(tuple(envelope.rcpt_tos), parsed, raw, session.ssl is not None, login)
            )
        return "250 OK"

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.messages)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SmtpServer:
    port: int
    collector: Collector
    ca_file: Path | None = None


@pytest.fixture
def site() -> Iterator[LocalSite]:
    """A site that also knows the daemon's own script, so the config can use a secret key."""
    with LocalSite(scripts={"shotgun_events": "local", DAEMON_SCRIPT: DAEMON_KEY}) as running:
        yield running


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """Plain SMTP with AUTH LOGIN/PLAIN allowed without TLS."""
    collector = Collector()
    port = free_port()
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        authenticator=collector.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield SmtpServer(port, collector)
    finally:
        controller.stop()


@pytest.fixture
def smtp_starttls(tmp_path: Path) -> Iterator[SmtpServer]:
    """SMTP that requires STARTTLS (certificate from a private CA) before AUTH and mail."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    collector = Collector()
    port = free_port()
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        authenticator=collector.authenticate,
        tls_context=context,
        require_starttls=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield SmtpServer(port, collector, ca_file)
    finally:
        controller.stop()


def configure(rig: DaemonRig, server: SmtpServer, *, use_tls: bool = False) -> None:
    """Use the secret daemon key and point [emails] at the test SMTP server."""
    text = rig.config.read_text().replace(
        "name = shotgun_events\nkey = local\n", f"name = {DAEMON_SCRIPT}\nkey = {DAEMON_KEY}\n"
    )
    assert DAEMON_KEY in text
    rig.config.write_text(
        text
        + f"""
[emails]
enabled = True
server = 127.0.0.1
port = {server.port}
useTLS = {use_tls}
username = {SMTP_USER}
password = {SMTP_PASSWORD}
from = shotgun-events@example.com
to = {", ".join(TEAM)}
subject = [sgEvents]
digest_interval = 300
timeout = 10
"""
    )


def add_failing(rig: DaemonRig, name: str, set_emails: str = "pass") -> None:
    (rig.plugins / f"{name}.py").write_text(FAILING.format(name=name, set_emails=set_emails))


def everything_written(rig: DaemonRig) -> str:
    """Every log file of the daemon, and its stderr."""
    logs = [p.read_text(errors="replace") for p in (rig.folder / "logs").iterdir()]
    return "".join(logs) + rig.stderr_text()


def test_error_burst_sends_one_mail_at_once_and_one_digest_on_exit(
    rig: DaemonRig, smtp: SmtpServer
) -> None:
    # Given three plugins that raise on every event (stopOnError=False): one mails ops,
    # one mails the configured list, one mails nobody; and error messages holding secrets
    configure(rig, smtp)
    add_failing(rig, "noisy", 'reg.setEmails("ops@example.com")')
    add_failing(rig, "teamwide")
    add_failing(rig, "silent", "reg.setEmails(False)")
    rig.env["LEAK_IN_ERRORS"] = f" (key {DAEMON_KEY}, mail password {SMTP_PASSWORD})"
    rig.start()
    rig.wait_ready()
    # When a burst of 1,000 events fails in every plugin
    first, last = rig.site.append_events(1000)
    wait_for(
        lambda: all(rig.ids_for(n)[-1:] == [last] for n in ("noisy", "teamwide", "silent")),
        timeout=60,
        what="the burst to be handled",
    )
    wait_for(lambda: len(smtp.collector.received()) >= 2, what="the immediate mails")
    # Then each mailing plugin sent exactly one mail at once, to its own recipients, with the
    # level of the record: callback failures are CRITICAL, as in the original
    immediate = {m.subject: m for m in smtp.collector.received()}
    assert sorted(immediate) == ["[sgEvents] CRITICAL - noisy", "[sgEvents] CRITICAL - teamwide"]
    noisy = immediate["[sgEvents] CRITICAL - noisy"]
    assert noisy.rcpt_tos == ("ops@example.com",)
    assert immediate["[sgEvents] CRITICAL - teamwide"].rcpt_tos == TEAM
    # And the mail says what failed, with the traceback, and came through a login
    assert "Traceback (most recent call last)" in noisy.body
    assert f"RuntimeError: noisy cannot handle event {first}" in noisy.body
    assert "Logger: plugin.noisy" in noisy.body
    assert noisy.login == (SMTP_USER, SMTP_PASSWORD)
    # When the daemon stops (it sends what is pending on the way out)
    assert rig.stop() == 0
    # Then exactly one digest per mailing plugin follows, counting the other 999 errors
    mails = smtp.collector.received()
    assert len(mails) == 4, [m.subject for m in mails]
    digests = {m.subject: m for m in mails[2:]}
    assert sorted(digests) == [
        "[sgEvents] CRITICAL - noisy (999 errors)",
        "[sgEvents] CRITICAL - teamwide (999 errors)",
    ]
    noisy_digest = digests["[sgEvents] CRITICAL - noisy (999 errors)"]
    assert noisy_digest.rcpt_tos == ("ops@example.com",)
    assert noisy_digest.body.startswith("999 errors")
    assert f"noisy cannot handle event {first + 1}" in noisy_digest.body
    assert digests["[sgEvents] CRITICAL - teamwide (999 errors)"].rcpt_tos == TEAM
    # And the plugin with setEmails(False) sent nothing
    assert not any("silent" in m.raw for m in mails)
    # And neither the SMTP password nor the script key is in any mail, log file or status
    status = daemon_cli(rig, "status", "--json")
    assert status.returncode == 3
    written = everything_written(rig) + status.stdout + status.stderr
    assert "noisy cannot handle event" in written and "***" in written
    for secret in (SMTP_PASSWORD, DAEMON_KEY):
        assert secret not in written
        for mail in mails:
            assert secret not in mail.raw


def test_starttls_and_login_with_a_private_ca(rig: DaemonRig, smtp_starttls: SmtpServer) -> None:
    # Given a server that requires STARTTLS, with a certificate from a private CA that the
    # daemon trusts through SSL_CERT_FILE ([emails] has no CA option of its own)
    assert smtp_starttls.ca_file is not None
    configure(rig, smtp_starttls, use_tls=True)
    add_failing(rig, "broken")
    rig.env["SSL_CERT_FILE"] = str(smtp_starttls.ca_file)
    rig.start()
    rig.wait_ready()
    # When one event fails
    first, _ = rig.site.append_events(1)
    # Then one mail arrives, over TLS, after a login
    wait_for(lambda: len(smtp_starttls.collector.received()) == 1, what="the mail")
    assert rig.stop() == 0
    [mail] = smtp_starttls.collector.received()
    assert mail.tls and mail.login == (SMTP_USER, SMTP_PASSWORD)
    assert mail.subject == "[sgEvents] CRITICAL - broken" and mail.rcpt_tos == TEAM
    assert f"broken cannot handle event {first}" in mail.body
    assert SMTP_PASSWORD not in everything_written(rig)


def test_untrusted_smtp_certificate_is_logged_not_mailed(
    rig: DaemonRig, smtp_starttls: SmtpServer
) -> None:
    # Given a STARTTLS server whose CA the daemon does not trust
    configure(rig, smtp_starttls, use_tls=True)
    add_failing(rig, "broken")
    rig.env.pop("SSL_CERT_FILE", None)
    rig.start()
    rig.wait_ready()
    # When an event fails
    rig.site.append_events(1)
    # Then the daemon logs that it could not send the mail, and why, without the password
    wait_for(lambda: "could not send the error mail" in rig.log_text(), what="the send error")
    assert rig.stop() == 0
    assert "certificate" in rig.log_text().lower()
    assert smtp_starttls.collector.received() == []
    assert SMTP_PASSWORD not in everything_written(rig)
