"""Injected faults make the real client fail exactly as it does against a real site."""

from __future__ import annotations

import json

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite

from .conftest import MakeClient


def _still_serving(sg: shotgun_api3.Shotgun) -> None:
    assert sg.find_one("Shot", [["id", "is", 1]], ["code"])["code"] == "SQ010_0010"


@pytest.mark.parametrize("status", [500, 503, 403])
def test_error_status_raises_protocol_error_at_once(site: LocalSite, sg: shotgun_api3.Shotgun,
                                                    status: int) -> None:
    # Given one injected HTTP error status
    site.inject_fault("status", status=status)
    site.reset_counts()
    # When a call is made, Then ProtocolError is raised without a retry
    with pytest.raises(shotgun_api3.ProtocolError) as info:
        sg.find("Shot", [])
    assert info.value.errcode == status
    assert site.call_counts() == {"read": 1}
    _still_serving(sg)


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_retried_then_raised(site: LocalSite, sg: shotgun_api3.Shotgun,
                                                status: int) -> None:
    # Given a gateway error on three calls in a row
    site.inject_fault("status", 3, status=status)
    site.reset_counts()
    # When a call is made, Then the client tries three times and raises ProtocolError
    with pytest.raises(shotgun_api3.ProtocolError):
        sg.find("Shot", [])
    assert site.call_counts() == {"read": 3}
    # And with only two failures the third attempt succeeds
    site.inject_fault("status", 2, status=status)
    _still_serving(sg)


def test_fault_limited_to_one_method(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a fault that only hits create calls
    site.inject_fault("status", status=503, method="create")
    # When a read and a create are made, Then only the create fails
    _still_serving(sg)
    with pytest.raises(shotgun_api3.ProtocolError):
        sg.create("Shot", {"code": "X"})
    sg.create("Shot", {"code": "Y"})


def test_hang_times_out_a_client_with_a_timeout(site: LocalSite, make_sg: MakeClient) -> None:
    # Given a client with a short timeout (read when it connects) and a hanging site
    sg = make_sg(connect=False)
    sg.config.timeout_secs = 0.3
    site.inject_fault("hang", seconds=None, method="read")
    # When a read is made, Then the socket times out
    with pytest.raises(TimeoutError):
        sg.find("Shot", [])
    # And once the hang is released the site serves again
    site.clear_faults()
    _still_serving(sg)


def test_short_hang_answers_late(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a hang shorter than the client's patience
    site.inject_fault("hang", seconds=0.05)
    # When a call is made, Then it is answered normally
    _still_serving(sg)


def test_one_dropped_connection_is_retried_silently(site: LocalSite,
                                                    sg: shotgun_api3.Shotgun) -> None:
    # Given one call whose connection is closed without an answer
    sg.info()
    site.inject_fault("drop")
    site.reset_counts()
    # When a call is made, Then the client re-sends it once and succeeds
    _still_serving(sg)
    assert site.call_counts() == {"read": 2}


def test_two_drops_raise_a_connection_error(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given two calls in a row dropped
    site.inject_fault("drop", 2)
    # When a call is made, Then the client gives up with a connection error
    with pytest.raises(ConnectionError):
        sg.find("Shot", [])
    _still_serving(sg)


def test_reset_raises_connection_reset(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a call answered by a TCP reset
    sg.info()
    site.inject_fault("reset")
    # When it is made, Then ConnectionResetError is raised at once
    with pytest.raises(ConnectionResetError):
        sg.find("Shot", [])
    _still_serving(sg)


def test_garbage_body_raises_json_error(site: LocalSite, sg: shotgun_api3.Shotgun) -> None:
    # Given a reply body that is not JSON
    site.inject_fault("garbage")
    # When a call is made, Then the client's JSON decoder fails
    with pytest.raises(json.JSONDecodeError):
        sg.find("Shot", [])
    _still_serving(sg)


def test_counts_calls_and_keeps_connections_alive(site: LocalSite,
                                                  make_sg: MakeClient) -> None:
    # Given fresh counters
    site.reset_counts()
    # When a new client connects and makes several calls
    sg = make_sg()
    for _ in range(3):
        sg.find("Shot", [])
    sg.create("Shot", {"code": "Z"})
    # Then every call is counted by method over one TCP connection
    assert site.call_counts() == {"info": 1, "read": 3, "create": 1}
    assert site.connection_count() == 1


def test_unknown_fault_kind_is_refused(site: LocalSite) -> None:
    # Given a typo in a fault kind, When injected, Then it is refused
    with pytest.raises(ValueError, match="unknown fault kind"):
        site.inject_fault("explode")
