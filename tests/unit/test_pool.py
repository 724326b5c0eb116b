"""The connection pool per credential: exclusive lending, the cap, failed connections dropped."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import shotgun_api3
from shotgun_api3.lib.httplib2 import Http

from shotgun_events.client.connections import ConnectionFactory, ConnectionPool
from shotgun_events.client.pool import CredentialPool
from shotgun_events.site import LocalSite


class FakeHttp(Http):  # type: ignore[misc]
    """An httplib2 object that is never used on the network."""

    def __init__(self) -> None:
        super().__init__(timeout=1)


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_never_lends_one_connection_to_two_threads_and_respects_the_cap() -> None:
    # Given a pool of at most 3 connections and 12 threads borrowing in a tight loop
    pool = CredentialPool(3)
    holders: dict[int, int] = {}
    lock = threading.Lock()
    clash: list[str] = []
    most = [0]
    start = threading.Barrier(12)

    def borrower() -> None:
        start.wait()
        for _ in range(300):
            http = pool.acquire(FakeHttp)
            with lock:
                if id(http) in holders:
                    clash.append("lent twice")
                holders[id(http)] = threading.get_ident()
                most[0] = max(most[0], len(holders))
            with lock:
                del holders[id(http)]
            pool.release(http)

    threads = [threading.Thread(target=borrower) for _ in range(12)]
    # When they all run
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then no connection was ever held by two threads, and never more than 3 were open
    assert clash == []
    assert 1 <= most[0] <= 3
    assert pool.opened <= 3 and pool.peak_busy <= 3
    assert pool.lent == 0


def test_opens_a_new_connection_only_when_all_are_busy() -> None:
    # Given a pool where one connection was used and given back
    pool = CredentialPool(8)
    first = pool.acquire(FakeHttp)
    pool.release(first)
    # When two calls follow one after the other, Then both reuse it
    assert pool.acquire(FakeHttp) is first
    # And a second concurrent call opens a second one
    second = pool.acquire(FakeHttp)
    assert second is not first
    assert pool.opened == 2


def test_callers_beyond_the_cap_wait_for_a_connection() -> None:
    # Given a pool of one connection, lent out
    pool = CredentialPool(1)
    held = pool.acquire(FakeHttp)
    got: list[Http] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(FakeHttp)))
    waiter.start()
    # When another thread asks, Then it waits (nothing new is opened)
    waiter.join(0.3)
    assert waiter.is_alive() and got == [] and pool.opened == 1
    # And it gets the same connection once it is given back
    pool.release(held)
    waiter.join(10)
    assert got == [held]


def test_a_failed_connection_is_dropped_not_returned() -> None:
    # Given a pool with a connection that failed
    pool = CredentialPool(2)
    bad = pool.acquire(FakeHttp)
    pool.discard(bad)
    # When a late release of it arrives and the next call borrows, Then it never comes back
    pool.release(bad)
    again = pool.acquire(FakeHttp)
    assert again is not bad
    assert pool.dropped == 1 and pool.open_count == 1


def test_idle_connections_are_closed_after_the_idle_timeout() -> None:
    # Given a connection idle for longer than the timeout
    clock = Clock()
    pool = CredentialPool(4, idle_timeout=60, monotonic=clock)
    old = pool.acquire(FakeHttp)
    pool.release(old)
    clock.now += 61
    # When a call borrows, Then a new connection is opened and the idle one closed
    fresh = pool.acquire(FakeHttp)
    assert fresh is not old
    assert pool.expired == 1 and pool.open_count == 1


def test_a_failed_create_frees_its_place() -> None:
    # Given a pool of one whose connection cannot be created
    pool = CredentialPool(1)

    def broken() -> Http:
        raise OSError("no route")

    # When creating fails, Then the caller sees the error and the place is free again
    with pytest.raises(OSError):
        pool.acquire(broken)
    assert pool.open_count == 0
    assert pool.acquire(FakeHttp) is not None


def test_real_client_drops_a_reset_connection_and_keeps_sessions_apart() -> None:
    # Given a pooled plugin connection on a local site that resets the next call
    with LocalSite(seed=True) as site:
        pool = ConnectionPool(ConnectionFactory(server=site.url, timeout=10), 4)
        try:
            sg = pool.get("shotgun_events", "local")
            sg.find_one("Shot", [], ["id"])
            link = pool.credential("shotgun_events", "local")
            assert link is not None and link.opened == 1
            site.inject_fault("reset")
            # When the call fails on the connection
            with pytest.raises(Exception):  # noqa: B017 - the client raises the socket error as is
                sg.find_one("Shot", [], ["id"])
            # Then that connection is dropped and the next call works on a new one
            assert link.dropped == 1
            assert sg.find_one("Shot", [], ["id"]) is not None
            assert link.opened == 2 and link.lent == 0
            # And the session uuid set on one thread's object is not on another's
            sg.set_session_uuid("mine")
            other: list[Any] = []
            t = threading.Thread(target=lambda: other.append(pool.get("shotgun_events", "local")))
            t.start()
            t.join(10)
            assert other[0] is not sg and other[0].config.session_uuid is None
            assert isinstance(other[0], shotgun_api3.Shotgun)
        finally:
            pool.close()
