"""The pacing rule (engine/pacing.py) and WakeUps, driven with plain numbers for time."""

from __future__ import annotations

import itertools
import threading

from shotgun_events.engine.pacing import Pacing
from shotgun_events.engine.wakeup import WakeUps


def test_idle_reads_every_fetch_interval_exactly() -> None:
    # Given a pacing of fetch_interval 5 s and active interval 1 s
    pacing = Pacing(idle=5.0, active=1.0)
    now = 0.0
    reads = []
    # When every read for one simulated minute comes back empty
    while now < 60.0:
        due = pacing.next_read(now)
        now = max(now, due)
        if now >= 60.0:
            break
        reads.append(now)
        pacing.read_done(now, found=False, head=100)
    # Then it read 12 times, 5 s apart, as without adaptive polling
    assert len(reads) == 12
    assert all(b - a == 5.0 for a, b in itertools.pairwise(reads))


def test_events_shorten_the_wait_then_it_steps_back_to_idle() -> None:
    # Given a read that returned events
    pacing = Pacing(idle=5.0, active=0.5)
    pacing.read_done(10.0, found=True, head=7)
    # Then the next read comes after the active interval
    assert pacing.next_read(10.0) == 10.5
    # When the following reads come back empty
    waits = []
    now = 10.0
    for _ in range(6):
        now = pacing.next_read(now)
        pacing.read_done(now, found=False, head=7)
        waits.append(pacing.interval)
    # Then the wait doubles step by step up to fetch_interval and stays there
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_active_interval_above_fetch_interval_means_plain_polling() -> None:
    # Given active_fetch_interval larger than fetch_interval
    pacing = Pacing(idle=2.0, active=10.0)
    # When events arrive
    pacing.read_done(0.0, found=True, head=1)
    # Then the wait is fetch_interval
    assert pacing.next_read(0.0) == 2.0


def test_wake_brings_the_read_forward_but_not_closer_than_the_gap() -> None:
    # Given an idle pacing that just read (next read due in 5 s)
    pacing = Pacing(idle=5.0, active=1.0, wake_gap=0.15)
    pacing.read_done(100.0, found=False, head=40)
    assert pacing.next_read(100.0) == 105.0
    # When a wake-up names event 41, 0.01 s after the read
    pacing.wake(41)
    # Then the read is due one gap after the previous read, not at once
    assert pacing.next_read(100.01) == 100.15
    # And once a read brought event 41, the pace is the active one
    pacing.read_done(100.15, found=True, head=41)
    assert pacing.wanted == 0
    assert pacing.next_read(100.15) == 101.15


def test_a_wanted_event_not_visible_yet_is_looked_for_with_backoff_then_left_to_polls() -> None:
    # Given a wake-up for event 50, which no read brings (not visible on the site yet)
    pacing = Pacing(idle=5.0, active=1.0, wake_gap=0.25)
    pacing.read_done(0.0, found=False, head=40)
    pacing.wake(50)
    now = 0.0
    early = []
    for _ in range(8):
        due = pacing.next_read(now)
        if pacing.wanted == 0:
            break
        now = due
        early.append(round(now, 3))
        pacing.read_done(now, found=False, head=40)
    # Then it looked again after waits of 0.25, 0.5, 1, 2 and 4 s, then stopped reading early
    assert early == [0.25, 0.75, 1.75, 3.75, 7.75]
    assert pacing.wanted == 0
    assert pacing.next_read(now) == now + 5.0


def test_many_wakeups_between_reads_become_one() -> None:
    # Given a mailbox fed by 500 notifications from several threads
    wake = WakeUps()

    def burst(start: int) -> None:
        for i in range(start, start + 100):
            wake.notify([i])

    threads = [threading.Thread(target=burst, args=(n * 100,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # When the loop takes them
    assert wake.wait(0)
    highest = wake.take()
    # Then it sees one wake-up with the highest id, and nothing after it
    assert highest == 499
    assert wake.take() is None
    assert not wake.wait(0)
    assert wake.notified == 500


def test_a_wakeup_without_id_still_wakes() -> None:
    # Given a delivery without an event id
    wake = WakeUps()
    wake.notify([0])
    # Then the loop is woken, with 0 meaning "unknown id"
    assert wake.take() == 0
