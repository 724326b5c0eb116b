"""The fault a handler raises to make the site answer like a real one does on a bad call."""

from __future__ import annotations

import datetime as _dt

#: error_code values a real site uses; the client maps 102 to AuthenticationFault.
AUTH_ERROR = 102
REQUEST_ERROR = 103  # unknown type/field/relation, wrong value, missing entity
PROTOCOL_ERROR = 104  # unknown method, malformed body, wrong path or verb


class ApiError(Exception):
    """A call the site refuses: turned into ``{"exception": true, ...}`` with HTTP 200."""

    def __init__(self, message: str, code: int = REQUEST_ERROR) -> None:
        """Keep the message the client will show and the error_code it dispatches on."""
        super().__init__(message)
        self.message = message
        self.code = code


def utc_now() -> str:
    """Now, in the wire format of every datetime the site stores and sends."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_shift(seconds: float) -> str:
    """Now plus ``seconds`` (may be negative), in the wire format."""
    when = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
