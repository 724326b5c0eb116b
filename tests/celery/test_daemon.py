"""The real daemon with ``dispatch = celery``: foreground process, redis-server, workers."""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from collections import defaultdict
from pathlib import Path

from shotgun_events.site import LocalSite
from tests.celery.conftest import CeleryRig, DaemonProcess, free_port
from tests.integration.conftest import daemon_command, wait_for


def append(site: LocalSite, count: int, keys: int) -> list[int]:
    """Append ``count`` events, one at a time, cycling over ``keys`` shots."""
    ids = []
    for n in range(count):
        first, _ = site.append_events(1, entity={"type": "Shot", "id": 100 + n % keys})
        ids.append(first)
    return ids


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        text: str = reply.read().decode()
        return text


def sample(metrics: str, name: str) -> float | None:
    """The value of one sample line of a Prometheus text page, or None."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def finished(daemon: DaemonProcess, last: int, name: str) -> bool:
    """Whether the plugin's watermark (not only its read position) passed ``last``."""
    shown = daemon.plugin(name)
    return bool(shown.get("watermark") == last and shown.get("in_flight") == 0)


def recorded(rig: CeleryRig, name: str = "rec") -> list[tuple[int, int]]:
    """(event id, entity id) of every callback run, in the order they ran."""
    return [(int(r[1]), int(r[6])) for r in rig.records() if r[0] == name]


def test_every_event_runs_once_in_order_per_key_and_status_shows_the_celery_fields(
    celery_rig: CeleryRig, daemon: DaemonProcess
) -> None:
    # Given the daemon with dispatch = celery, a worker, a plugin, and [http] on
    http_port = free_port()
    with open(celery_rig.config_path, "a") as conf:
        conf.write(f"\n[http]\nlisten = 127.0.0.1:{http_port}\n")
    celery_rig.add_plugin("rec")
    worker = celery_rig.start_worker("--concurrency", "2", "--hostname", "w1@%h")
    celery_rig.wait_workers(1)
    daemon.start()
    # When 40 events over 4 shots arrive
    ids = append(celery_rig.site, 40, keys=4)
    wait_for(lambda: len(recorded(celery_rig)) >= 40, 60, "40 callbacks on the worker")
    # Then each ran once, on the worker, in id order per shot
    runs = recorded(celery_rig)
    assert sorted(i for i, _ in runs) == ids
    per_key: dict[int, list[int]] = defaultdict(list)
    for event_id, entity in runs:
        per_key[entity].append(event_id)
    assert len(per_key) == 4 and all(v == sorted(v) for v in per_key.values())
    # And status --json shows the executor, tasks in flight, queue length and workers
    wait_for(lambda: finished(daemon, ids[-1], "rec"), 30, "cursor at the end")
    shown = daemon.plugin("rec")
    assert shown["executor"] == "celery"
    assert shown["tasks_in_flight"] == 0 and shown["queue_length"] == 0
    assert shown["queue"].endswith(".rec")
    assert len(shown["workers"]) == 1 and shown["workers"][0].startswith("w1@")
    # And the plain status prints them on the plugin's line
    text = daemon.cli("status").stdout
    assert "celery queue" in text and "tasks in flight 0" in text and "workers w1@" in text
    # And /metrics exports the tasks sent, re-sent and in flight, the page shows them
    metrics = fetch(http_port, "/metrics")
    sent = sample(metrics, 'shotgun_events_celery_tasks_sent_total{plugin="rec"}')
    assert sent is not None and 1 <= sent <= 40
    assert sample(metrics, 'shotgun_events_celery_tasks_in_flight{plugin="rec"}') == 0
    retried = 'shotgun_events_celery_tasks_resent_total{plugin="rec",reason="retry"}'
    assert sample(metrics, retried) == 0
    assert sample(metrics, 'shotgun_events_plugin_in_flight{plugin="rec"}') == 0
    page = fetch(http_port, "/")
    assert 'data-executor="celery"' in page
    assert f"on Celery: 0 tasks in flight, {int(sent)} sent, 0 re-sent" in page
    assert daemon.stop() == 0
    assert worker.poll() is None


def test_daemon_sigkill_with_tasks_in_flight_loses_nothing_and_runs_nothing_twice(
    celery_rig: CeleryRig, daemon: DaemonProcess
) -> None:
    # Given the daemon and one slow single-threaded worker
    celery_rig.add_plugin("rec")
    celery_rig.start_worker("--concurrency", "1", env={"SLOW": "0.1"})
    celery_rig.wait_workers(1)
    daemon.start()
    # When 30 events over 3 shots are out and the daemon is killed mid-way
    ids = append(celery_rig.site, 30, keys=3)
    wait_for(lambda: len(recorded(celery_rig)) >= 5, 60, "some callbacks run")
    assert daemon.plugin("rec")["tasks_in_flight"] >= 1
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert len(recorded(celery_rig)) < 30, "everything ran before the kill: nothing tested"
    # And started again
    daemon.start()
    wait_for(lambda: finished(daemon, ids[-1], "rec"), 60, "cursor at the end")
    # Then every event ran exactly once: the re-sent ones done before were skipped
    runs = [i for i, _ in recorded(celery_rig)]
    assert sorted(runs) == ids
    assert daemon.stop() == 0


def test_start_with_redis_unreachable_says_so_and_exits_non_zero(celery_rig: CeleryRig) -> None:
    # Given a config whose broker is a port nothing listens on
    text = celery_rig.config_path.read_text()
    dead = free_port()
    celery_rig.config_path.write_text(
        text.replace(f"127.0.0.1:{celery_rig.redis.port}", f"127.0.0.1:{dead}")
    )
    celery_rig.add_plugin("rec")
    # When the daemon is started
    result = subprocess.run(
        [*daemon_command(), "-c", str(celery_rig.config_path), "start"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then start fails with one line naming Redis and the fix, and no daemon is left
    assert result.returncode == 69
    lines = [line for line in result.stderr.splitlines() if "Redis" in line]
    assert len(lines) == 1
    assert f"127.0.0.1:{dead}" in lines[0] and "[celery] broker_url" in lines[0]
    assert not Path(celery_rig.folder / "daemon.pid").exists()


def test_one_plugin_on_celery_the_other_in_the_daemon(
    celery_rig: CeleryRig, daemon: DaemonProcess
) -> None:
    # Given dispatch left at its default and [plugin:remote] executor = celery
    text = celery_rig.config_path.read_text().replace("dispatch = celery\n", "")
    celery_rig.config_path.write_text(text + "\n[plugin:remote]\nexecutor = celery\n")
    celery_rig.add_plugin("remote")
    celery_rig.add_plugin("here")
    daemon.start()
    # When events arrive while no worker runs
    ids = append(celery_rig.site, 6, keys=2)
    # Then the local plugin gets them in the daemon and the remote one waits in its queue
    wait_for(lambda: sorted(i for i, _ in recorded(celery_rig, "here")) == ids, 60, "local")
    wait_for(lambda: daemon.plugin("remote")["queue_length"] == 2, 30, "2 tasks queued")
    assert recorded(celery_rig, "remote") == []
    shown = {p["name"]: p for p in daemon.status()["plugins"]}
    assert shown["here"]["executor"] == "inline" and "queue" not in shown["here"]
    assert shown["remote"]["executor"] == "celery" and shown["remote"]["workers"] == []
    assert "no worker seen" in daemon.cli("status").stdout
    # And once a worker starts, the remote plugin's events run there, once each
    celery_rig.start_worker()
    wait_for(lambda: finished(daemon, ids[-1], "remote"), 60, "remote plugin caught up")
    assert sorted(i for i, _ in recorded(celery_rig, "remote")) == ids
    assert daemon.stop() == 0


def test_a_reload_while_redis_is_away_keeps_the_daemon_running_and_loses_nothing(
    celery_rig: CeleryRig, daemon: DaemonProcess
) -> None:
    # Given the daemon with dispatch = celery, running
    celery_rig.add_plugin("rec")
    daemon.start()
    # When Redis goes away and the daemon is told to reload
    celery_rig.redis.stop()
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: configuration re-read" in daemon.log_file.read_text(), 60, "reload")
    # And events arrive before Redis and a worker come back
    ids = append(celery_rig.site, 6, keys=2)
    wait_for(lambda: "unreachable" in daemon.log_file.read_text(), 60, "the outage logged")
    celery_rig.redis.start()
    celery_rig.start_worker()
    # Then the daemon never exited and every event ran once
    wait_for(lambda: sorted(i for i, _ in recorded(celery_rig)) == ids, 60, "all events run")
    wait_for(lambda: finished(daemon, ids[-1], "rec"), 60, "watermark at the end")
    assert daemon.proc.poll() is None
    assert sorted(i for i, _ in recorded(celery_rig)) == ids
    assert daemon.stop() == 0
