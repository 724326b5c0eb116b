"""Checking and reading one webhook delivery: HMAC-SHA1 signature, single or batched JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

#: The header the site signs each request in: ``sha1=<hex>`` of the raw body.
SIGNATURE_HEADER = "X-SG-SIGNATURE"
#: Most deliveries one batched request carries on a real site.
MAX_BATCH = 50


class MalformedDeliveryError(ValueError):
    """The body is signed correctly but is not a delivery (HTTP 400)."""


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-SG-SIGNATURE`` value the site sends for ``body``."""
    return "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the body's signature; compared in constant time."""
    if not header:
        return False
    expected = sign(secret, body).encode("ascii")
    given = header.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, given)


def event_ids(body: bytes) -> list[int]:
    """The event_log_entry_id of every delivery in a single or batched body (0: none given).

    Raises ``MalformedDeliveryError`` when the body is not JSON of either shape.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedDeliveryError(f"body is not JSON ({exc})") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise MalformedDeliveryError('expected a JSON object with a "data" object')
    deliveries = data.get("deliveries")
    if deliveries is None:
        return [_entry_id(data)]
    if not isinstance(deliveries, list) or not deliveries:
        raise MalformedDeliveryError('"deliveries" must be a non-empty list')
    if len(deliveries) > MAX_BATCH:
        raise MalformedDeliveryError(f"a batch holds at most {MAX_BATCH} deliveries")
    return [_entry_id(item) for item in deliveries]


def _entry_id(item: Any) -> int:
    if not isinstance(item, dict):
        raise MalformedDeliveryError("each delivery must be a JSON object")
    value = item.get("event_log_entry_id")
    if value is None:
        # Some subscriptions carry no event id; the loop then reads once to find out.
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedDeliveryError("event_log_entry_id must be a whole number >= 0")
    return value
