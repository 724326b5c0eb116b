"""The webhook receiver over real HTTP on 127.0.0.1: signatures, shapes, limits, coalescing."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator, Sequence

import pytest

from shotgun_events.engine.wakeup import WakeUps
from shotgun_events.webhooks.payload import sign
from shotgun_events.webhooks.receiver import MAX_BODY, WebhookReceiver

SECRET = "tok-3f9a1c"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def seen() -> list[Sequence[int]]:
    return []


@pytest.fixture
def wake() -> WakeUps:
    return WakeUps()


@pytest.fixture
def receiver(clock: Clock, seen: list[Sequence[int]], wake: WakeUps) -> Iterator[WebhookReceiver]:
    def on_delivery(ids: Sequence[int]) -> None:
        seen.append(list(ids))
        wake.notify(ids)

    r = WebhookReceiver(
        host="127.0.0.1",
        port=0,
        secret=SECRET,
        path="/sg",
        on_delivery=on_delivery,
        monotonic=clock,
    )
    r.start()
    try:
        yield r
    finally:
        r.close()


def post(
    receiver: WebhookReceiver,
    body: bytes,
    *,
    signature: str | None = None,
    path: str = "/sg",
    conn: http.client.HTTPConnection | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    sent = {"Content-Type": "application/json", **(headers or {})}
    if signature is not None:
        sent["X-SG-SIGNATURE"] = signature
    try:
        conn.request("POST", path, body, sent)
        reply = conn.getresponse()
        reply.read()
        return reply.status
    finally:
        if own:
            conn.close()


def single(event_id: int) -> bytes:
    return json.dumps(
        {
            "data": {"id": "1.2.0", "event_log_entry_id": event_id, "event_type": "X"},
            "timestamp": "2026-12-01T10:00:00Z",
        }
    ).encode()


def test_a_signed_single_delivery_is_accepted_and_wakes_the_loop(
    receiver: WebhookReceiver, seen: list[Sequence[int]], wake: WakeUps
) -> None:
    # Given a delivery signed with the secret token
    body = single(4711)
    # When it is POSTed
    status = post(receiver, body, signature=sign(SECRET.encode(), body))
    # Then it gets 200 and the loop is woken for event 4711
    assert status == 200
    assert seen == [[4711]]
    assert wake.take() == 4711


def test_a_batched_delivery_names_every_event(
    receiver: WebhookReceiver, seen: list[Sequence[int]]
) -> None:
    # Given a batched body of 50 deliveries
    items = [{"id": f"{n}.0.0", "event_log_entry_id": 100 + n} for n in range(50)]
    body = json.dumps({"data": {"deliveries": items}, "timestamp": "t"}).encode()
    # When it is POSTed
    status = post(receiver, body, signature=sign(SECRET.encode(), body))
    # Then every event id reaches the engine side in one call
    assert status == 200
    assert seen == [list(range(100, 150))]
    assert receiver.stats.deliveries == 50


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha1=" + "0" * 40, "sha256=abc", "garbage", "sha1=" + "é" * 40],
)
def test_a_bad_signature_gets_401_and_reaches_nothing(
    receiver: WebhookReceiver, seen: list[Sequence[int]], wake: WakeUps, signature: str | None
) -> None:
    # Given a body that is not signed with the secret
    # When it is POSTed
    status = post(receiver, single(5), signature=signature)
    # Then it is refused with 401, counted, and nothing is woken
    assert status == 401
    assert seen == []
    assert wake.take() is None
    assert receiver.stats.bad_signature == 1


def test_a_body_signed_for_another_body_is_refused(receiver: WebhookReceiver) -> None:
    # Given the signature of a different body (replayed header)
    signature = sign(SECRET.encode(), single(1))
    # Then the changed body is refused
    assert post(receiver, single(2), signature=signature) == 401


def test_bad_signatures_are_logged_at_most_once_a_minute_without_secrets(
    receiver: WebhookReceiver, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # Given many mis-signed deliveries within one minute
    caplog.set_level(logging.WARNING, logger="engine.webhooks")
    wrong = sign(b"not-the-secret", single(9))
    for _ in range(20):
        assert post(receiver, single(9), signature=wrong) == 401
    # Then one line reports them
    lines = [r.getMessage() for r in caplog.records if r.name == "engine.webhooks"]
    assert len(lines) == 1
    # When a minute passes and another one arrives
    clock.now += 61
    post(receiver, single(9), signature=wrong)
    lines = [r.getMessage() for r in caplog.records if r.name == "engine.webhooks"]
    # Then a second line counts what came since the first
    assert len(lines) == 2
    assert lines[1].startswith("20 webhook deliveries refused")
    # And neither the secret nor the signatures appear in the log
    assert all(SECRET not in line and wrong[5:] not in line for line in lines)
    assert receiver.stats.bad_signature == 21


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"timestamp": "t"}',
        b'{"data": []}',
        b'{"data": {"event_log_entry_id": "12"}}',
        b'{"data": {"event_log_entry_id": -3}}',
        b'{"data": {"event_log_entry_id": true}}',
        b'{"data": {"deliveries": []}}',
        b'{"data": {"deliveries": [5]}}',
        json.dumps(
            {"data": {"deliveries": [{"event_log_entry_id": i} for i in range(51)]}}
        ).encode(),
        b"\xff\xfe",
    ],
)
def test_a_signed_but_malformed_body_gets_400(
    receiver: WebhookReceiver, seen: list[Sequence[int]], body: bytes
) -> None:
    # Given a correctly signed body that is not a delivery
    # When it is POSTed
    status = post(receiver, body, signature=sign(SECRET.encode(), body))
    # Then it gets 400 and reaches nothing
    assert status == 400
    assert seen == []
    assert receiver.stats.malformed == 1


def test_a_body_over_one_megabyte_gets_413_unread(
    receiver: WebhookReceiver, seen: list[Sequence[int]]
) -> None:
    # Given a body one byte over the limit
    body = b"x" * (MAX_BODY + 1)
    # When it is POSTed
    status = post(receiver, body, signature=sign(SECRET.encode(), body))
    # Then it gets 413 and reaches nothing
    assert status == 413
    assert seen == []
    assert receiver.stats.too_large == 1


def test_wrong_path_and_verb_are_refused(receiver: WebhookReceiver) -> None:
    # Given a properly signed delivery
    body = single(3)
    signature = sign(SECRET.encode(), body)
    # Then another path gets 404 and another verb 405
    assert post(receiver, body, signature=signature, path="/other") == 404
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    conn.request("GET", "/sg")
    assert conn.getresponse().status == 405
    conn.close()
    assert receiver.stats.accepted == 0


def test_a_burst_on_one_keepalive_connection_coalesces_into_one_wakeup(
    receiver: WebhookReceiver, seen: list[Sequence[int]], wake: WakeUps
) -> None:
    # Given 500 deliveries on one keep-alive connection, as the site sends them
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    statuses = set()
    for event_id in range(1, 501):
        body = single(event_id)
        statuses.add(post(receiver, body, signature=sign(SECRET.encode(), body), conn=conn))
    conn.close()
    # Then every one got 200, and the loop has a single pending wake-up naming the highest id
    assert statuses == {200}
    assert len(seen) == 500
    assert wake.take() == 500
    assert wake.take() is None


def test_a_silent_connection_is_closed_after_the_timeout(
    clock: Clock, seen: list[Sequence[int]]
) -> None:
    # Given a receiver with a short per-connection timeout
    r = WebhookReceiver(
        host="127.0.0.1",
        port=0,
        secret=SECRET,
        on_delivery=seen.append,
        connection_timeout=0.2,
    )
    r.start()
    try:
        # When a client sends headers promising a body it never sends
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
        conn.putrequest("POST", "/")
        conn.putheader("Content-Length", "100")
        conn.endheaders()
        # Then the receiver hangs up instead of waiting forever (the read sees EOF)
        assert conn.sock is not None
        assert conn.sock.recv(1) == b""
        conn.close()
    finally:
        r.close()
    assert seen == []
