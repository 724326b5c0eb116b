"""What one error mail says: a record as an ``ErrorReport``, a group's records as a ``Batch``.

Pure text and counting, no SMTP and no threads: ``mailer.EmailNotifier``
decides when a batch goes out and to whom. A batch of one record is mailed
in full; a digest lists each distinct message with its count (at most
``MAX_DISTINCT`` of them), then the first error in full.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

#: Distinct messages listed in one digest; further ones are only counted.
MAX_DISTINCT = 50
#: Characters of one message kept to tell messages apart.
MAX_KEY_CHARS = 2000


@dataclass(frozen=True)
class ErrorReport:
    """Everything a mail says about one log record, captured when it was logged."""

    levelno: int
    levelname: str
    created: float
    logger: str
    path: str
    function: str
    line: int
    message: str
    traceback: str

    def details(self) -> str:
        """The body block of one record, in the original daemon's layout."""
        stamp = datetime.fromtimestamp(self.created).astimezone().isoformat(" ", "seconds")
        text = (
            f"Time: {stamp}\nLogger: {self.logger}\nPath: {self.path}\n"
            f"Function: {self.function}\nLine: {self.line}\n\n{self.message}"
        )
        return f"{text}\n\n{self.traceback}" if self.traceback else text


@dataclass
class Batch:
    """Errors of one group that go out together in one mail."""

    first: ErrorReport
    count: int = 1
    levelno: int = logging.ERROR
    levelname: str = "ERROR"
    messages: Counter[str] = field(default_factory=Counter)
    #: Records not listed by message (too many distinct messages).
    unlisted: int = 0

    @classmethod
    def of(cls, report: ErrorReport) -> Batch:
        """Start a batch with one record."""
        batch = cls(first=report, count=0, levelno=report.levelno, levelname=report.levelname)
        batch.add(report.levelno, report.levelname, report.message)
        return batch

    def add(self, levelno: int, levelname: str, message: str) -> None:
        """Count one more record."""
        self.count += 1
        if levelno > self.levelno:
            self.levelno, self.levelname = levelno, levelname
        key = message[:MAX_KEY_CHARS]
        if key in self.messages or len(self.messages) < MAX_DISTINCT:
            self.messages[key] += 1
        else:
            self.unlisted += 1

    def merge(self, later: Batch) -> None:
        """Take in the records of a batch that started after this one."""
        self.count += later.count
        if later.levelno > self.levelno:
            self.levelno, self.levelname = later.levelno, later.levelname
        self.unlisted += later.unlisted
        for key, n in later.messages.items():
            if key in self.messages or len(self.messages) < MAX_DISTINCT:
                self.messages[key] += n
            else:
                self.unlisted += n

    def body(self) -> str:
        """The mail text: one record in full, or a digest with counts."""
        if self.count == 1:
            return self.first.details() + "\n"
        since = datetime.fromtimestamp(self.first.created).astimezone().isoformat(" ", "seconds")
        distinct = len(self.messages) + (1 if self.unlisted else 0)
        lines = [f"{self.count} errors ({distinct} distinct) since {since}.", ""]
        for message, n in self.messages.most_common():
            head, *rest = message.splitlines() or [""]
            more = f" (+{len(rest)} lines)" if rest else ""
            lines.append(f"{n:>8} x {head}{more}")
        if self.unlisted:
            lines.append(f"{self.unlisted:>8} x (other messages, not listed)")
        lines += ["", "First error:", "", self.first.details(), ""]
        return "\n".join(lines)


def report_of(record: logging.LogRecord) -> ErrorReport:
    """Capture what a mail says of ``record`` now, traceback and stack included."""
    traceback = record.exc_text or ""
    if not traceback and record.exc_info:
        traceback = logging.Formatter().formatException(record.exc_info)
    if record.stack_info:
        traceback = f"{traceback}\n{record.stack_info}".strip("\n")
    return ErrorReport(
        levelno=record.levelno,
        levelname=record.levelname,
        created=record.created,
        logger=record.name,
        path=record.pathname,
        function=record.funcName or "",
        line=record.lineno,
        message=record.getMessage(),
        traceback=traceback,
    )
