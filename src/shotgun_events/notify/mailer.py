"""Error emails: who gets them, at most one mail per window, sent in the background.

``EmailNotifier`` is a logging handler for ERROR and above. Records from
``plugin.<name>...`` go to that plugin's recipients (``reg.setEmails``), all
others to the configured ``to`` list. Each recipient group (a plugin, or the
engine) gets at most one mail per ``digest_seconds``: the first error of a
quiet period is mailed at once, later ones are collected and mailed as one
digest when the window ends. ``emit()`` only does bookkeeping and queues; a
sender thread talks SMTP, so a slow or dead mail server never stalls the
daemon. A mail that cannot be sent is folded back into its group's next
digest, and the failure is logged once, never mailed. What a mail says is
``digest``'s.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from shotgun_events.config.model import DEFAULTS
from shotgun_events.notify.digest import Batch, report_of
from shotgun_events.notify.logs import SecretFilter
from shotgun_events.telemetry import NULL, Telemetry

#: Logger for the mailer's own trouble. Never attach the notifier to it.
log = logging.getLogger("shotgun_events.mailer")

ENGINE_GROUP = "engine"
_QUEUE_SIZE = 64
#: How often the sender thread looks for digests whose window is over.
_POLL_SECONDS = 1.0


@dataclass
class _Group:
    window_end: float | None = None
    pending: Batch | None = None


@dataclass(frozen=True)
class _Mail:
    group: str
    recipients: tuple[str, ...]
    batch: Batch


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class EmailNotifier(logging.Handler):
    """Mail ERROR-and-above records, rate limited per plugin, without ever blocking."""

    telemetry: Telemetry = NULL

    def __init__(
        self,
        *,
        server: str,
        port: int,
        use_tls: bool,
        use_ssl: bool,
        username: str | None,
        password: str | None,
        sender: str,
        to: Sequence[str],
        subject: str,
        digest_seconds: float = DEFAULTS.number("emails", "digest_interval"),
        timeout: float = DEFAULTS.number("emails", "timeout"),
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.ERROR,
    ) -> None:
        super().__init__(level)
        self.server = server
        self.port = port
        self.use_tls = use_tls
        self.use_ssl = use_ssl
        self.username = username
        self._password = password
        self.sender = sender
        self.to = tuple(to)
        self.subject = subject
        self.digest_seconds = digest_seconds
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._clock = clock
        if password:
            self.addFilter(SecretFilter([password]))
        self._state_lock = threading.Lock()
        self._groups: dict[str, _Group] = {}
        self._recipients: dict[str, tuple[str, ...]] = {}
        self._queue: queue.Queue[object] = queue.Queue(_QUEUE_SIZE)
        self._failing = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="error-mailer", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<EmailNotifier {self.server}:{self.port} to {', '.join(self.to)}>"

    def set_recipients(self, plugin_name: str, emails: bool | Sequence[str]) -> None:
        """Apply ``reg.setEmails``: True = configured ``to``, False = none, or addresses."""
        if emails is True:
            chosen = self.to
        elif emails is False:
            chosen = ()
        elif isinstance(emails, str):
            chosen = (emails,)
        else:
            chosen = tuple(emails)
        with self._state_lock:
            self._recipients[plugin_name] = chosen

    def recipients(self, group: str) -> tuple[str, ...]:
        """Who gets the mails of a group (a plugin name, or ``engine``)."""
        with self._state_lock:
            return self._recipients_locked(group)

    def handle(self, record: logging.LogRecord) -> bool:
        """Refuse the mailer's own records before taking the handler lock.

        The sender thread logs SMTP trouble; mailing that would loop, and
        taking the lock from that thread could deadlock with ``close()``.
        """
        if record.name == log.name or threading.current_thread() is self._thread:
            return False
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        """Count the record and queue a mail if its group's window is open; never blocks."""
        if self._closed:
            return
        try:
            group = _group_of(record.name)
            if not self.recipients(group):
                self.telemetry.email("suppressed")
                return
            now = self._clock()
            with self._state_lock:
                state = self._groups.setdefault(group, _Group())
                quiet = state.window_end is None or now >= state.window_end
                if state.pending is None and quiet:
                    state.window_end = now + self.digest_seconds
                    mail: _Mail | None = _Mail(
                        group, self._recipients_locked(group), Batch.of(report_of(record))
                    )
                elif state.pending is None:
                    state.pending = Batch.of(report_of(record))
                    mail = None
                    self.telemetry.email("suppressed")
                else:
                    state.pending.add(record.levelno, record.levelname, record.getMessage())
                    mail = None
                    self.telemetry.email("suppressed")
            if mail is not None:
                try:
                    self._queue.put_nowait(mail)
                except queue.Full:
                    # The sender is stuck: keep the record for the next digest instead.
                    self._fold_back(mail.group, mail.batch)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Send every pending digest now and wait until the queue is empty."""
        if self._closed or not self._thread.is_alive():
            return
        marker = _Flush()
        self._queue.put(marker)
        while not marker.done.wait(1.0):
            if not self._thread.is_alive():
                return

    def close(self) -> None:
        """Send what is pending, stop the sender thread, and close the handler."""
        if not self._closed:
            self.flush()
            self._closed = True
            if self._thread.is_alive():
                self._queue.put(_STOP)
                self._thread.join()
        super().close()

    # -- sender thread -------------------------------------------------------

    def _recipients_locked(self, group: str) -> tuple[str, ...]:
        return self.to if group == ENGINE_GROUP else self._recipients.get(group, self.to)

    def _fold_back(self, group: str, batch: Batch) -> None:
        """Put a batch that was not sent in front of the group's next digest."""
        now = self._clock()
        with self._state_lock:
            state = self._groups.setdefault(group, _Group())
            if state.pending is not None:
                batch.merge(state.pending)
            state.pending = batch
            if state.window_end is None or state.window_end <= now:
                state.window_end = now + self.digest_seconds

    def _due_digests(self, *, force: bool) -> list[_Mail]:
        now = self._clock()
        mails = []
        with self._state_lock:
            for group, state in self._groups.items():
                due = state.window_end is None or now >= state.window_end
                if state.pending is None or not (force or due):
                    continue
                recipients = self._recipients_locked(group)
                if recipients:
                    mails.append(_Mail(group, recipients, state.pending))
                state.pending = None
                # The digest opens a new window: still at most one mail per window.
                state.window_end = now + self.digest_seconds
        return mails

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                item = None
            if isinstance(item, _Mail):
                self._send(item)
            elif isinstance(item, _Flush) or item is _STOP:
                for mail in self._due_digests(force=True):
                    self._send(mail)
                if isinstance(item, _Flush):
                    item.done.set()
                else:
                    return
            for mail in self._due_digests(force=False):
                self._send(mail)

    def _send(self, mail: _Mail) -> None:
        try:
            self._deliver(self._message(mail))
        except Exception as exc:  # smtplib raises OSError, SMTPException, ssl errors
            self._fold_back(mail.group, mail.batch)
            self.telemetry.email("failed")
            if not self._failing:
                self._failing = True
                log.error(
                    "could not send the error mail to %s through %s:%s (%s: %s); "
                    "its errors will be in the next mail",
                    ", ".join(mail.recipients),
                    self.server,
                    self.port,
                    type(exc).__name__,
                    exc,
                )
            return
        self.telemetry.email("sent")
        if self._failing:
            self._failing = False
            log.warning("error mails are being sent again through %s:%s", self.server, self.port)

    def _message(self, mail: _Mail) -> EmailMessage:
        batch = mail.batch
        subject = f"{self.subject} {batch.levelname} - {mail.group}"
        if batch.count > 1:
            subject += f" ({batch.count} errors)"
        message = EmailMessage()
        # Header values must be single lines; a plugin name is a file name.
        message["Subject"] = " ".join(subject.split())
        message["From"] = self.sender
        message["To"] = ", ".join(mail.recipients)
        message.set_content(batch.body())
        return message

    def _deliver(self, message: EmailMessage) -> None:
        context = self._ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.use_ssl:
            smtp = smtplib.SMTP_SSL(self.server, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.server, self.port, timeout=self.timeout)
        with smtp:
            if self.use_tls and not self.use_ssl:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self._password or "")
            smtp.send_message(message)


def _group_of(logger_name: str) -> str:
    parts = logger_name.split(".")
    if parts[0] == "plugin" and len(parts) > 1:
        return parts[1]
    return ENGINE_GROUP
