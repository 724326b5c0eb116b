"""Read-ahead during catch-up: id order and exactly-once across gaps and late ids."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tests.unit.fakes import DISPATCH_MODES

from .conftest import Rig

PLUGINS = ["alpha", "beta"]


@pytest.mark.parametrize("dispatch", DISPATCH_MODES)
def test_read_ahead_keeps_order_and_exactly_once_across_gaps_and_late_ids(
    rig: Rig, dispatch: str
) -> None:
    # Given a daemon that saved its position and stopped
    settings = {
        "batch": 100,
        "backlog_timeout": 120,
        "dispatch": dispatch,
        "daemon_extra": "read_ahead = 4",
    }
    rig.write_config(**settings)  # type: ignore[arg-type]
    for name in PLUGINS:
        rig.add_recorder(name)
    rig.start()
    rig.wait_ready()
    base = rig.site.newest_event_id()
    assert rig.stop() == 0
    # And, while it was down, a log of 2,400 events with ids that commit late and a gap
    # wider than a batch that never commits
    rig.site.append_events(700)
    late = rig.site.reserve_event_ids(7)
    rig.site.append_events(800)
    never = rig.site.reserve_event_ids(250)
    rig.site.discard_reserved(never)
    late += rig.site.reserve_event_ids(3)
    _, last = rig.site.append_events(900)
    # When it catches up from a distant site, reading windows ahead, and the late ids
    # commit meanwhile
    rig.site.reset_counts()
    rig.site.set_latency(30)
    rig.start()
    rig.site.commit_reserved(late)
    rig.wait_delivered(PLUGINS, last, timeout=180)
    rig.wait_delivered(PLUGINS, late[-1], timeout=180)
    rig.site.set_latency(0)
    assert rig.stop() == 0
    # Then every event reached every plugin exactly once
    report = rig.check(base, PLUGINS)
    assert report.lost_count == 0 and report.duplicate_count() == 0, report.describe()
    # And apart from the late ids (delivered from the backlog), each plugin got them in
    # id order
    for name in PLUGINS:
        fresh = [i for n, i in rig.deliveries() if n == name and i > base and i not in late]
        assert all(a < b for a, b in pairwise(fresh)), name
    # And the windows were read on connections of their own, beside the engine's
    assert rig.site.connection_count() >= 3

