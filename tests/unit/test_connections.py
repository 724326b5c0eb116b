"""Plugins' connections: a pool of HTTP connections per credential, one object per thread."""

from __future__ import annotations

import threading

import shotgun_api3

from shotgun_events.client.connections import ConnectionFactory, ConnectionPool
from shotgun_events.site import LocalSite


def test_threads_share_a_pool_per_credential_and_keep_their_session() -> None:
    # Given a pool on a local site, used by four plugin threads with one credential
    with LocalSite(scripts={"shotgun_events": "local", "other": "key2"}, seed=True) as site:
        setup = shotgun_api3.Shotgun(site.url, "shotgun_events", "local")
        shot_ids = [s["id"] for s in setup.find("Shot", [], ["id"])]
        setup.close()
        site.reset_counts()
        pool = ConnectionPool(ConnectionFactory(server=site.url, timeout=10))
        errors: list[BaseException] = []

        def plugin(n: int) -> None:
            try:
                sg = pool.get("shotgun_events", "local")
                for i in range(10):
                    # As the dispatcher does before each callback: this thread's session
                    sg.set_session_uuid(f"session-{n}")
                    sg.update("Shot", shot_ids[n], {"description": f"thread {n} pass {i}"})
                    assert sg.find_one("Shot", [["id", "is", shot_ids[n]]], ["description"])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        # When they all write at once
        threads = [threading.Thread(target=plugin, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        other = pool.get("other", "key2")
        other.find("Shot", [], ["id"])
        try:
            # Then every call worked, over at most one connection per thread (plus one for
            # the other credential), with one info call per credential
            assert errors == []
            assert 2 <= site.connection_count() <= 5
            assert site.connection_count() == pool.opened
            assert site.call_counts().get("info") == 2
            # And each thread's writes carry its own session uuid in the event log
            events = other.find(
                "EventLogEntry",
                [
                    ["attribute_name", "is", "description"],
                    ["event_type", "is", "Shotgun_Shot_Change"],
                ],
                ["entity", "session_uuid"],
            )
            by_shot = {(e["entity"] or {}).get("id"): set() for e in events}
            for event in events:
                by_shot[(event["entity"] or {}).get("id")].add(event["session_uuid"])
            for n in range(4):
                assert by_shot[shot_ids[n]] == {f"session-{n}"}
        finally:
            pool.close()
