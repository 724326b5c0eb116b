"""kill -9 at random instants, and inside a callback: nothing lost, at most one repeat per kill."""

from __future__ import annotations

import random
import time

import pytest

from shotgun_events.state.store import read_state
from tests.integration.conftest import wait_for

from .conftest import Rig, Scale
from .summary import SUMMARY

SEED = 20260601


def _processing(rig: Rig, before: int) -> bool:
    return len(rig.deliveries()) > before


@pytest.mark.parametrize(
    ("plugins", "fsync", "sleep"),
    [
        pytest.param(3, "interval", 0.0005, id="3-plugins"),
        # Many plugins and an fsync per record: most of the time goes into state writes.
        pytest.param(8, "always", 0.0, id="state-writes-dominate"),
    ],
)
def test_kill9_at_random_instants_loses_nothing(
    rig: Rig, scale: Scale, plugins: int, fsync: str, sleep: float
) -> None:
    # Given a daemon with several plugins catching up on a backlog
    names = [f"p{n}" for n in range(plugins)]
    rig.write_config(batch=200, daemon_extra=f"state_fsync = {fsync}")
    for name in names:
        rig.add_recorder(name, sleep=sleep)
    rig.start()
    rig.wait_ready()
    base = rig.site.newest_event_id()
    size = scale.catch_up_events * (2 if scale.soak else 1)
    _, last = rig.site.append_events(size)
    rng = random.Random(SEED + plugins)
    kills = 0
    # When it is killed with SIGKILL at random instants while delivering, and restarted
    for _ in range(scale.kills):
        seen = len(rig.deliveries())
        # No deadline: a daemon restarting on a loaded machine can take long to resume,
        # and a kill before it does would not test anything. It must not exit meanwhile.
        while not _processing(rig, seen):
            assert rig.alive(), f"daemon exited: {rig.stderr_text()[-2000:]}"
            time.sleep(0.01)
        if {n for n, i in rig.deliveries() if i == last} == set(names):
            break  # all delivered already: more kills would not land during processing
        time.sleep(rng.uniform(0.0, 0.3))
        rig.kill9()
        kills += 1
        # The state files are readable after every kill (the original's were often empty).
        assert read_state(rig.state_file) is not None
        rig.start()
    # A catch-up with an fsync per record takes as long as the disk makes it (measured:
    # 14 s with two CPU hogs beside it, 43-57 s with an fsync-heavy neighbour): wait on
    # progress, not on a fixed time.
    rig.wait_delivered_while_progressing(names, last)
    # Then every event reached every plugin, with at most one repeat per plugin per kill
    report = rig.check(base, names, allowed_duplicates=kills * plugins)
    assert kills >= min(3, scale.kills), "the kills did not land during processing"
    assert report.lost_count == 0, report.describe()
    for name in names:
        assert report.duplicate_count(name) <= kills, report.describe()
        # (An event can come three times when two kills land before its position is saved.)
    SUMMARY.notes.append(
        f"kill -9 ({plugins} plugins, state_fsync={fsync}): {kills} kills, "
        f"{report.duplicate_count()} repeats, seed {SEED + plugins}"
    )
    assert rig.stop() == 0


def test_kill_inside_a_callback_right_after_a_state_write(rig: Rig) -> None:
    # Given a plugin that SIGKILLs the daemon from inside its callback at one event,
    # so the state write of the event before it is the last thing the daemon did
    rig.write_config(batch=50, daemon_extra="state_fsync = always")
    base = rig.site.newest_event_id()
    first, last = rig.site.append_events(400)
    rig.add_recorder("killer", kill_at=first + 123)
    rig.add_recorder("other")
    rig.start("--from-id", str(first))
    # When the daemon dies that way
    assert rig.proc is not None
    assert rig.proc.wait(timeout=120) == -9
    SUMMARY.kills += 1
    saved = read_state(rig.state_file)
    assert saved is not None
    position = saved.positions[(str(rig.plugins), "killer")].last_id
    # Then the saved position is the event before the fatal one, and a restart finishes
    assert position == first + 122
    rig.start()
    rig.wait_delivered(["killer", "other"], last)
    report = rig.check(base, ["killer", "other"], allowed_duplicates=2)
    assert report.lost_count == 0, report.describe()
    assert report.duplicate_count("killer") == 0, report.describe()
    assert report.duplicate_count("other") <= 1, report.describe()
    assert rig.stop() == 0


def test_torn_last_journal_line_is_ignored_and_nothing_is_lost(rig: Rig) -> None:
    # Given a daemon killed while delivering, whose journal then ends in half a line
    # (what a power cut during a write leaves; kill -9 cannot tear one write())
    rig.write_config(batch=50)
    rig.add_recorder("rec", sleep=0.002)
    rig.start()
    rig.wait_ready()
    base = rig.site.newest_event_id()
    _, last = rig.site.append_events(1500)
    wait_for(lambda: len(rig.deliveries()) > 100, what="deliveries")
    rig.kill9()
    journal = rig.state_file.with_name(rig.state_file.name + ".journal")
    with journal.open("ab") as f:
        f.write(b'{"k":["' + str(rig.plugins).encode() + b'","rec"],"l":99999')
    # When it starts again
    rig.start()
    rig.wait_delivered(["rec"], last)
    # Then the torn line was ignored with a warning, and everything arrived
    assert "torn last line" in rig.log_text()
    report = rig.check(base, ["rec"], allowed_duplicates=1)
    assert report.lost_count == 0 and report.duplicate_count() <= 1, report.describe()
    assert rig.stop() == 0
