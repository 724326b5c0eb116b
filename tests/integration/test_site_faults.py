"""A misbehaving site: the daemon retries with backoff, never exits, and loses nothing."""

from __future__ import annotations

from .conftest import DaemonRig, wait_for


def test_faults_during_catch_up_lose_nothing_and_repeat_nothing(rig: DaemonRig) -> None:
    # Given a daemon catching up in batches of 100, with a 1 s request timeout
    rig.write_config(batch=100, request_timeout=1)
    rig.add_recorder("rec")
    rig.start()
    rig.wait_ready()
    first, last = rig.site.append_events(3000)
    # When reads fail in every way a site can fail
    for kind, options in (
        ("status", {"status": 500}),
        ("status", {"status": 503}),
        ("garbage", {}),
        ("drop", {}),
        ("reset", {}),
        ("hang", {"seconds": 3}),
        ("status", {"status": 504}),
    ):
        rig.site.inject_fault(kind, 1, method="read", **options)  # type: ignore[arg-type]
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], timeout=120, what="catch-up under faults")
    # Then the daemon is still running, said what happened, and every event came once
    assert rig.proc is not None and rig.proc.poll() is None
    assert rig.stop() == 0
    ids = rig.ids_for("rec")
    assert ids == list(range(first, last + 1))
    log = rig.log_text()
    assert "retrying in" in log


def test_wrong_script_key_is_critical_with_the_fix_and_the_daemon_waits(rig: DaemonRig) -> None:
    # Given a config with a wrong script key
    rig.write_config(key="not-the-right-key-4711")
    rig.add_recorder("rec")
    # When the daemon starts
    rig.start()
    # Then it logs CRITICAL naming the fix, keeps running, and stops cleanly
    wait_for(lambda: "CRITICAL" in rig.log_text(), what="critical log line")
    log = rig.log_text()
    assert "fix the script name and key" in log
    assert str(rig.config) in log
    assert "not-the-right-key-4711" not in log
    assert rig.proc is not None and rig.proc.poll() is None
    assert rig.stop() == 0
