"""The latency control: every API call waits before it is served, without holding the others."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite

from .conftest import MakeClient, control


def _timed_find(sg: shotgun_api3.Shotgun) -> float:
    start = time.monotonic()
    assert sg.find_one("Shot", [["id", "is", 1]], ["code"])["code"] == "SQ010_0010"
    return time.monotonic() - start


def test_set_latency_delays_every_call(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a connected client and a 300 ms latency set through the method
    _timed_find(sg)
    assert site.set_latency(300) == 300
    # When a call is made, Then it is served no sooner than the latency
    assert _timed_find(sg) >= 0.3
    # And with the latency off again the result is unchanged
    site.set_latency(0)
    _timed_find(sg)


def test_set_latency_endpoint(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a latency set over HTTP, as a test in another process would
    assert control(site.url, "set_latency", ms=250) == 250
    # When a call is made, Then it waits at least that long
    assert _timed_find(sg) >= 0.25
    assert site.latency.ms == 250


def test_bad_latency_refused(site: LocalSite) -> None:
    # Given / When a negative latency is asked for, Then it is refused with a clear error
    with pytest.raises(ValueError, match="latency must be between"):
        site.set_latency(-1)


def test_latency_does_not_serialize_concurrent_calls(site: LocalSite, make_sg: MakeClient) -> None:
    # Given 8 clients (one connection each) and a 1 s latency
    clients = [make_sg() for _ in range(8)]
    for sg in clients:
        _timed_find(sg)
    site.set_latency(1000)
    took: list[float] = []
    threads = [threading.Thread(target=lambda s=sg: took.append(_timed_find(s))) for sg in clients]
    # When all of them call at once
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    # Then each waited its latency, and together they took far less than the 8 s sum
    assert len(took) == 8 and min(took) >= 1.0
    assert wall < 6.0


def test_site_command_latency_option(tmp_path: Path) -> None:
    # Given the site command started with --latency 200
    exe = Path(sys.executable).with_name("shotgunEventDaemon")
    proc = subprocess.Popen(
        [str(exe), "site", "--db", str(tmp_path / "s.sqlite3"), "--latency", "200"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split("serving at ", 1)[1].split()[0]
        sg = shotgun_api3.Shotgun(url, "shotgun_events", "local")
        try:
            # When a call is made, Then it waits at least the latency
            start = time.monotonic()
            sg.find("HumanUser", [], ["id"])
            assert time.monotonic() - start >= 0.2
            assert control(url, "set_latency", ms=0) == 0
        finally:
            sg.close()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        if proc.stdout is not None:
            proc.stdout.close()
