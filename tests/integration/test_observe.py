"""[http] on the real daemon: metrics follow events, probes follow the site, the page renders.

The daemon runs as a subprocess against the local site, with ``[http] listen``
on a free loopback port; every request goes through a real TCP connection.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import DaemonRig, daemon_cli, wait_for

FAILING = '''\
"""Fails on every event (test plugin)."""


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", explode, None, None)


def explode(sg, logger, event, args):
    raise RuntimeError("broken on purpose on event %d" % event["id"])
'''
SLOW = '''\
"""Takes 5 ms per event (test plugin)."""
import time


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", slow, None, None)


def slow(sg, logger, event, args):
    time.sleep(0.005)
'''
TOKEN = "t0ken-for-the-observe-tests-1234"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def enable_http(rig: DaemonRig, *, token: str | None = None, batch: int = 500) -> str:
    """Turn [http] on at a free port; return the base URL."""
    port = free_port()
    lines = f"\n[http]\nlisten = 127.0.0.1:{port}\n" + (f"token = {token}\n" if token else "")
    rig.write_config(plugins_extra=lines, batch=batch)
    return f"http://127.0.0.1:{port}"


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def sample(base: str, name: str, **labels: str) -> float | None:
    """The value of one sample of /metrics, or None when absent."""
    status, text = get(f"{base}/metrics")
    if status != 200:
        return None
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return float(item.value)
    return None


def test_metrics_readyz_and_page_follow_events_and_a_failing_plugin(rig: DaemonRig) -> None:
    # Given the daemon with [http] on, a working plugin and one that fails on every event
    base = enable_http(rig)
    rig.add_recorder("good")
    (rig.plugins / "bad.py").write_text(FAILING)
    rig.start()
    wait_for(lambda: get(f"{base}/readyz")[0] == 200, what="/readyz 200")
    assert get(f"{base}/livez")[0] == 200
    before = sample(base, "shotgun_events_events_fetched_total") or 0.0
    # When events flow
    _, last = rig.site.append_events(5)
    wait_for(lambda: rig.ids_for("good")[-1:] == [last], what="delivery to good")
    # Then the metrics moved with them, labelled by plugin
    wait_for(
        lambda: sample(base, "shotgun_events_callbacks_total", plugin="good", outcome="ok") == 5,
        what="5 good callbacks counted",
    )
    assert (sample(base, "shotgun_events_events_fetched_total") or 0) >= before + 5
    assert sample(base, "shotgun_events_plugin_position", plugin="good") == last
    assert sample(base, "shotgun_events_callback_duration_seconds_count", plugin="good") == 5
    assert sample(base, "shotgun_events_state_writes_total") or 0 > 0
    assert sample(base, "process_resident_memory_bytes") is not None
    # And the failing plugin shows as failed and switched off
    assert (sample(base, "shotgun_events_callbacks_total", plugin="bad", outcome="error") or 0) >= 1
    assert sample(base, "shotgun_events_plugin_active", plugin="bad") == 0
    assert sample(base, "shotgun_events_plugin_active", plugin="good") == 1
    status, text = get(f"{base}/metrics")
    assert 'event_id="' not in text and "event=" not in text  # never labelled by event
    # And /readyz counts it, the page shows it with its reason and its last error
    status, reason = get(f"{base}/readyz")
    assert status == 200 and "1 of 2 plugins active" in reason
    status, page = get(f"{base}/")
    assert status == 200
    assert 'data-plugin="bad" data-state="inactive"' in page
    assert "RuntimeError" in page and "broken on purpose" in page
    assert 'data-plugin="good" data-state="active"' in page
    assert 'id="events-chart"' in page and "<script" not in page
    assert "local" not in page.split("<h1>")[1].split("Recent")[0].replace("127.0.0.1", "")
    # And /status.json is the data of `status --json`
    status, body = get(f"{base}/status.json")
    assert status == 200 and '"name": "bad"' in body and '"state": "inactive"' in body
    served = json.loads(body)
    printed = json.loads(daemon_cli(rig, "status", "--json").stdout)
    assert set(served) == set(printed) and served["source"] == printed["source"] == "daemon"
    assert [p["name"] for p in served["plugins"]] == [p["name"] for p in printed["plugins"]]
    # When the working plugin goes away, only the failing one is left
    (rig.plugins / "good.py").unlink()
    # Then the daemon is not ready, and says why
    wait_for(lambda: get(f"{base}/readyz")[0] == 503, what="/readyz 503")
    assert "no plugin is active: bad (inactive)" in get(f"{base}/readyz")[1]
    assert get(f"{base}/livez")[0] == 200
    assert rig.stop() == 0


def test_site_outage_turns_readyz_503_and_back_while_livez_stays_200(rig: DaemonRig) -> None:
    # Given a ready daemon with [http] on
    base = enable_http(rig)
    rig.add_recorder("rec")
    rig.start()
    wait_for(lambda: get(f"{base}/readyz")[0] == 200, what="/readyz 200")
    # When the site answers 503 to every read
    rig.site.inject_fault("status", count=100000, status=503, method="read")
    try:
        # Then /readyz turns 503 with the reason, and /livez stays 200 throughout
        wait_for(lambda: get(f"{base}/readyz")[0] == 503, what="/readyz 503")
        assert "site unreachable" in get(f"{base}/readyz")[1]
        wait_for(lambda: "failed 3 times in a row" in rig.log_text(), what="a failed burst")
        for _ in range(5):
            assert get(f"{base}/livez")[0] == 200
        assert sample(base, "shotgun_events_site_reachable") == 0
        assert (sample(base, "shotgun_events_site_read_errors_total", error="protocol") or 0) > 0
    finally:
        rig.site.clear_faults()
    # When the site is back, then so is readiness, and events flow again
    wait_for(lambda: get(f"{base}/readyz")[0] == 200, what="/readyz 200 again")
    _, last = rig.site.append_events(2)
    wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="delivery after the outage")
    assert rig.stop() == 0


def test_unknown_paths_tokens_and_slow_clients(rig: DaemonRig) -> None:
    # Given the daemon with [http] on and a token
    base = enable_http(rig, token=TOKEN)
    rig.add_recorder("rec")
    rig.start()
    wait_for(lambda: get(f"{base}/livez", TOKEN)[0] == 200, what="/livez")
    # Then no token or a wrong one is refused, on every path
    for path in ("/", "/metrics", "/livez", "/readyz", "/status.json"):
        assert get(f"{base}{path}")[0] == 401
        assert get(f"{base}{path}", "wrong-token-wrong-token")[0] == 401
    # And unknown paths are 404 with the token, and nothing but GET and HEAD is served
    assert get(f"{base}/nope", TOKEN)[0] == 404
    post = urllib.request.Request(f"{base}/metrics", data=b"x", method="POST")
    post.add_header("Authorization", f"Bearer {TOKEN}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=10)
    refused.value.close()
    assert refused.value.code == 405
    assert get(f"{base}/metrics/../etc/passwd", TOKEN)[0] == 404
    # When clients open connections and never finish their request
    host, port = base.removeprefix("http://").split(":")
    stalled = []
    for _ in range(8):
        conn = socket.create_connection((host, int(port)))
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # no blank line: half a request
        stalled.append(conn)
    try:
        # Then others are still served, and events still flow
        assert get(f"{base}/livez", TOKEN)[0] == 200
        assert get(f"{base}/metrics", TOKEN)[0] == 200
        _, last = rig.site.append_events(3)
        wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="delivery with stalled clients")
    finally:
        for conn in stalled:
            conn.close()
    # And the token never reaches the log
    assert TOKEN not in rig.log_text()
    assert rig.stop() == 0


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", ":9464", "[::]:9464"])
def test_a_wildcard_address_without_a_token_is_refused(rig: DaemonRig, listen: str) -> None:
    # Given [http] on every interface and no token
    rig.write_config(plugins_extra=f"\n[http]\nlisten = {listen}\n")
    # When the daemon starts, then it refuses with one line and the config exit code
    result = daemon_cli(rig, "foreground")
    assert result.returncode == 78
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "[http] listen" in lines[0] and "token" in lines[0], lines


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_status_page_renders_in_a_real_browser(rig: DaemonRig, tmp_path: Path) -> None:
    # Given the daemon with [http] on, one working and one failing plugin, events delivered
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium: install Debian's chromium (apt-get install -y chromium)")
    base = enable_http(rig)
    rig.add_recorder("good")
    (rig.plugins / "bad.py").write_text(FAILING)
    rig.start()
    wait_for(lambda: get(f"{base}/readyz")[0] == 200, what="/readyz 200")
    _, last = rig.site.append_events(4)
    wait_for(lambda: rig.ids_for("good")[-1:] == [last], what="delivery")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    # When Chromium renders the page (no JavaScript needed, none present)
    dom = subprocess.run(
        [*command, "--dump-dom", f"{base}/"], capture_output=True, text=True, timeout=120
    ).stdout
    shot = tmp_path / "status-page.png"
    subprocess.run(
        [*command, "--window-size=1280,900", f"--screenshot={shot}", f"{base}/"],
        capture_output=True,
        timeout=120,
    )
    # Then the DOM holds one row per plugin with its state, and the chart
    assert 'data-plugin="good" data-state="active"' in dom
    assert 'data-plugin="bad" data-state="inactive"' in dom
    assert dom.count('class="plugin"') == 2
    assert 'id="events-chart"' in dom and "<rect" in dom
    assert 'id="head-event"' in dom
    # And a screenshot was saved as an artifact
    assert shot.exists() and shot.stat().st_size > 10_000
    assert rig.stop() == 0


def test_catch_up_progress_shows_in_the_log_status_and_page(rig: DaemonRig) -> None:
    # Given 4,000 events to catch up on with a plugin taking 5 ms per event
    base = enable_http(rig, batch=100)
    (rig.plugins / "slow.py").write_text(SLOW)
    first, _ = rig.site.append_events(4000)
    # When the daemon starts at the first of them
    rig.start("--from-id", str(first))
    # Then the log says how far behind it is, how old the oldest event is, the rate and the ETA
    wait_for(lambda: "catching up: " in rig.log_text(), timeout=60, what="a progress line")
    line = next(x for x in rig.log_text().splitlines() if "catching up: " in x)
    assert "events behind" in line and "oldest undelivered" in line
    wait_for(lambda: "events/s" in rig.log_text(), timeout=60, what="a progress line with a rate")
    # And `status` and the page show the same figures
    result = daemon_cli(rig, "status")
    assert "catching up: " in result.stdout and "events behind" in result.stdout, result.stdout
    status, page = get(f"{base}/")
    assert status == 200 and 'id="progress"' in page and "events behind" in page
    assert (sample(base, "shotgun_events_catch_up_behind_events") or 0) > 0
    assert rig.stop() == 0


def test_a_busy_port_is_logged_and_events_still_flow(rig: DaemonRig) -> None:
    # Given something else already listening on the configured port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        rig.write_config(plugins_extra=f"\n[http]\nlisten = 127.0.0.1:{port}\n")
        rig.add_recorder("rec")
        # When the daemon starts
        rig.start()
        # Then it says why there is no status page, and delivers events all the same
        wait_for(lambda: "cannot listen there" in rig.log_text(), what="the bind error")
        # (events made before the first read are history a new daemon starts after)
        rig.wait_ready()
        _, last = rig.site.append_events(2)
        wait_for(lambda: rig.ids_for("rec")[-1:] == [last], what="delivery without [http]")
        assert rig.stop() == 0
