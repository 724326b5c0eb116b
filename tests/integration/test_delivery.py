"""The daemon as users run it: a subprocess on a local site, with recording plugins."""

from __future__ import annotations

import itertools
import random
import signal
import time

from .conftest import DaemonRig, wait_for


def test_every_event_reaches_every_matching_callback_once_in_order(rig: DaemonRig) -> None:
    # Given three plugins with different matchEvents
    rig.add_recorder("everything")
    rig.add_recorder("shots", {"Shotgun_Shot_Change": ["sg_status_list"]})
    rig.add_recorder("tasks", {"Shotgun_Task_Change": None})
    rig.start()
    rig.wait_ready()
    # When the site logs shot and task changes
    first, _ = rig.site.append_events(
        150, event_type="Shotgun_Shot_Change", attribute_name="sg_status_list"
    )
    rig.site.append_events(120, event_type="Shotgun_Task_Change", attribute_name="content")
    _, last = rig.site.append_events(30, event_type="Shotgun_Shot_Change", attribute_name="code")
    wait_for(lambda: rig.ids_for("everything")[-1:] == [last], what="all events delivered")
    wait_for(lambda: len(rig.ids_for("tasks")) == 120, what="task events delivered")
    assert rig.stop() == 0
    # Then each plugin got exactly its events, once each, in id order
    everything = rig.ids_for("everything")
    assert everything == list(range(first, last + 1))
    assert rig.ids_for("shots") == list(range(first, first + 150))
    assert rig.ids_for("tasks") == list(range(first + 150, first + 270))


def test_no_state_starts_at_newest_event_and_restart_resumes(rig: DaemonRig) -> None:
    # Given a site whose log already holds 50 events
    rig.site.append_events(50)
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    assert "no saved state" in rig.log_text()
    # When 10 new events come, then the daemon stops
    first, last = rig.site.append_events(10)
    wait_for(lambda: len(rig.ids_for("rec")) == 10, what="new events")
    assert rig.stop() == 0
    # And 20 events arrive while it is down
    down_first, down_last = rig.site.append_events(20)
    rig.start()
    wait_for(lambda: rig.ids_for("rec")[-1:] == [down_last], what="catch-up after restart")
    assert rig.stop() == 0
    # Then nothing older was replayed and nothing was lost or repeated
    assert rig.ids_for("rec") == list(range(first, last + 1)) + list(
        range(down_first, down_last + 1)
    )


def test_from_id_starts_there(rig: DaemonRig) -> None:
    first, last = rig.site.append_events(30)
    rig.add_recorder("rec")
    rig.start("--from-id", str(first + 10))
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="replay from id")
    assert rig.stop() == 0
    assert rig.ids_for("rec") == list(range(first + 10, last + 1))


def test_kill_9_loses_nothing_and_repeats_at_most_one_event_per_plugin(rig: DaemonRig) -> None:
    # Given two plugins and a daemon catching up on 3,000 events in small batches
    rig.write_config(batch=100)
    rig.add_recorder("a")
    rig.add_recorder("b")
    rig.start()
    rig.wait_ready()
    first, last = rig.site.append_events(3000)
    rng = random.Random(7)
    kills = 0
    # When it is killed with SIGKILL at random moments and restarted each time
    while kills < 6 and len(rig.ids_for("a")) < 2500:
        time.sleep(rng.uniform(0.05, 0.4))
        rig.kill()
        kills += 1
        ups = rig.log_text().count("operator commands accepted")
        rig.start()
    wait_for(
        lambda: rig.ids_for("a")[-1:] == [last] and rig.ids_for("b")[-1:] == [last],
        timeout=60,
        what="catch-up after kills",
    )
    # The last restart may still be starting (the events came before the last kill):
    # wait until it is up, or SIGTERM lands before its handlers are installed.
    wait_for(
        lambda: rig.log_text().count("operator commands accepted") > ups,
        what="the last restart up",
    )
    assert rig.stop() == 0
    # Then every event was delivered, and repeats are bounded by one per plugin per kill
    for name in ("a", "b"):
        ids = rig.ids_for(name)
        assert set(ids) == set(range(first, last + 1))
        assert len(ids) - len(set(ids)) <= kills
        # each repeat is the event right before a restart point: order never goes back further
        for previous, current in itertools.pairwise(ids):
            assert current >= previous


def test_late_ids_are_delivered_once_and_never_repeat_later_events(rig: DaemonRig) -> None:
    # Given a daemon that sees ids 2 and 4 of 1..6 only later (open transactions)
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    before, _ = rig.site.append_events(1)
    reserved = rig.site.reserve_event_ids(2)
    _, last = rig.site.append_events(5)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="fresh events")
    assert not set(reserved) & set(rig.ids_for("rec"))
    # When the reserved ids commit
    rig.site.commit_reserved(reserved)
    wait_for(lambda: set(reserved) <= set(rig.ids_for("rec")), what="late events")
    # And more events come after
    _, newest = rig.site.append_events(3)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [newest], what="events after the late ones")
    time.sleep(1.0)  # several backlog polls: nothing may be delivered again
    assert rig.stop() == 0
    # Then every id was delivered exactly once
    ids = rig.ids_for("rec")
    assert sorted(ids) == list(range(before, newest + 1))
    assert len(ids) == len(set(ids))


def test_ids_that_never_commit_are_dropped_after_the_timeout(rig: DaemonRig) -> None:
    # Given a backlog timeout of 2 s
    rig.write_config(backlog_timeout=2)
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    reserved = rig.site.reserve_event_ids(1)
    _, last = rig.site.append_events(2)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="fresh events")
    # When the reserved id is never committed
    rig.site.discard_reserved(reserved)
    # Then the daemon gives up on it and says so
    wait_for(lambda: "never appeared" in rig.log_text(), what="backlog expiry message")
    assert rig.stop() == 0
    assert f"{reserved[0]}" in rig.log_text()


def test_crashing_plugin_stops_alone_and_resumes_from_failed_event_after_edit(
    rig: DaemonRig,
) -> None:
    # Given a plugin that fails on one event, next to a healthy one
    first, _ = rig.site.append_events(1)
    bad = rig.add_recorder("bad")
    rig.add_recorder("good")
    rig.env["FAIL_ON_bad"] = str(first + 3)
    rig.start()
    rig.wait_ready()
    start, last = rig.site.append_events(6)
    assert start == first + 1
    wait_for(lambda: rig.ids_for("good")[-1:] == [last], what="healthy plugin")
    wait_for(lambda: "plugin bad deactivated" in rig.log_text(), what="plugin switched off")
    # Then the failing plugin stopped before the failing event
    assert rig.ids_for("bad") == [first + 1, first + 2]
    # When its file is fixed (the failure is now skipped by the edited plugin)
    bad.write_text(bad.read_text().replace('if event["id"] in FAIL_ON:', "if False:"))
    wait_for(lambda: rig.ids_for("bad")[-1:] == [last], what="plugin resumes")
    assert rig.stop() == 0
    # Then it resumed from the failed event, and the healthy plugin saw nothing twice
    assert rig.ids_for("bad") == list(range(first + 1, last + 1))
    assert rig.ids_for("good") == list(range(first + 1, last + 1))


def test_stop_on_error_false_moves_on(rig: DaemonRig) -> None:
    first, _ = rig.site.append_events(1)
    rig.add_recorder("lenient", stop_on_error=False)
    rig.env["FAIL_ON_lenient"] = str(first + 2)
    rig.start()
    rig.wait_ready()
    _, last = rig.site.append_events(4)
    wait_for(lambda: rig.ids_for("lenient")[-1:] == [last], what="delivery past the failure")
    assert rig.stop() == 0
    assert rig.ids_for("lenient") == [first + 1, first + 3, first + 4]
    assert "failing on purpose" in (rig.folder / "logs" / "plugin.lenient").read_text()


def test_sigint_stops_cleanly(rig: DaemonRig) -> None:
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    assert rig.stop(signal.SIGINT) == 0
