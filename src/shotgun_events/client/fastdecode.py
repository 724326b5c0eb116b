"""A ``Shotgun`` client for the engine's own event reads, with a faster inbound transform.

The stock client turns every ``YYYY-MM-DDTHH:MM:SSZ`` string anywhere in a
reply into a local-time datetime, visiting each value through a generic
recursive walker and converting each timestamp with ``mktime``. For the event
log that is most of the client's CPU per event. This subclass produces exactly
the same objects (same values, same tzinfo), walking the reply with type
checks instead of ``isinstance`` chains and converting each distinct
timestamp string once per reply (events written in the same second share it).

Only the engine's reads of ``EventLogEntry`` use it; plugins get the stock
client.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, TypeVar

from shotgun_api3.shotgun import SG_TIMEZONE, Shotgun

T = TypeVar("T")

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


class FastDecodeShotgun(Shotgun):
    """The stock client with a faster, equivalent ``_transform_inbound``."""

    def _transform_inbound(self, data: T) -> T:
        to_local = bool(self.config.convert_datetimes_to_utc)
        seen: dict[str, Any] = {}

        def timestamp(text: str) -> Any:
            try:
                return seen[text]
            except KeyError:
                pass
            value: Any = text
            if _TIMESTAMP.match(text):
                try:
                    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
                except ValueError:
                    moment = None
                if moment is not None:
                    value = (
                        moment.replace(tzinfo=SG_TIMEZONE.utc).astimezone(SG_TIMEZONE.local)
                        if to_local
                        else moment
                    )
            seen[text] = value
            return value

        def walk(value: Any) -> Any:
            kind = type(value)
            if kind is str:
                return timestamp(value) if len(value) == 20 else value
            if kind is dict:
                return {key: walk(item) for key, item in value.items()} if value else value
            if kind is list:
                return [walk(item) for item in value] if value else value
            if kind is tuple:
                return tuple(walk(item) for item in value) if value else value
            return value

        result: T = walk(data)
        return result
