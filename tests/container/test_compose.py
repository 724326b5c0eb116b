"""compose.yaml run with podman-compose: Redis with a password, the daemon, two workers, the site.

Given the image, a stand-in for the official Redis image (no registry here) and
a .env made from .env.example the way docs/containers.md says, the whole stack
comes up on its own podman network (podman-compose 1.0 starts every service,
the local-site profile included) and events flow from the local site through
the daemon and Redis to the plugin callbacks on the workers.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container import podman
from tests.container.conftest import REPO, TIMINGS, free_port, logs, run_ok, unique, wait_for

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

REDIS_IMAGE = "docker.io/library/redis:7-bookworm"
RECORDER = '''\
"""Compose test plugin: looks each event's entity up on the site, then logs the event id."""
import os
import socket


def registerCallbacks(reg):
    reg.registerCallback(
        os.environ["SG_ED_SCRIPT_NAME"], os.environ["SG_ED_API_KEY"], record, None, None
    )


def record(sg, logger, event, args):
    entity = event.get("entity") or {}
    if entity.get("type"):
        sg.find_one(entity["type"], [["id", "is", entity["id"]]], ["id"])
    logger.info("recorded event %d on %s", event["id"], socket.gethostname())
'''
RECORDED = re.compile(r"recorded event (\d+) on (\S+)")


class Stack:
    """One compose project in a folder of its own, brought up and down with podman-compose."""

    def __init__(self, folder: Path, image: str) -> None:
        self.folder = folder
        self.project = unique("sgetest").replace("-", "")
        shutil.copy(REPO / "compose.yaml", folder)
        plugins = folder / "plugins"
        plugins.mkdir()
        (plugins / "recorder.py").write_text(RECORDER)
        # .env as the docs make it: the example, a Redis password, then our own choices.
        self.password = secrets.token_hex(24)
        overrides = {
            "SG_ED_REDIS_PASSWORD": self.password,
            "SG_ED_PLUGINS": str(plugins),
            "SG_ED_IMAGE": image,
            "SG_ED_HTTP_PORT": str(free_port()),
        }
        kept = [
            line
            for line in (REPO / ".env.example").read_text().splitlines()
            if line.partition("=")[0] not in overrides
        ]
        env = folder / ".env"
        env.write_text("\n".join([*kept, *(f"{k}={v}" for k, v in overrides.items())]) + "\n")
        env.chmod(0o600)

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [
                "podman-compose",
                "--project-name",
                self.project,
                "--podman-args",
                " ".join(podman.GLOBAL_OPTIONS),
                *args,
            ],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"podman-compose {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def containers(self) -> dict[str, list[str]]:
        """Service -> container names of this project."""
        listed = podman.podman(
            "ps",
            "--all",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--format",
            '{{.Names}} {{index .Labels "com.docker.compose.service"}}',
        ).stdout
        found: dict[str, list[str]] = {}
        for line in listed.splitlines():
            name, _, service = line.partition(" ")
            found.setdefault(service, []).append(name)
        return {service: sorted(names) for service, names in found.items()}

    def down(self) -> None:
        """Stop and remove everything of the project: containers, volumes, network."""
        names = [n for names in self.containers().values() for n in names]
        podman.podman("rm", "--force", "--volumes", "--time", "5", *names, check=False)
        volumes = podman.podman(
            "volume", "ls", "--quiet", "--filter", f"label=io.podman.compose.project={self.project}"
        ).stdout.split()
        if volumes:
            podman.podman("volume", "rm", "--force", *volumes, check=False)
        podman.podman("network", "rm", "--force", f"{self.project}_default", check=False)

    def recorded(self) -> dict[int, list[str]]:
        """Event id -> hosts of the workers that logged it."""
        found: dict[int, list[str]] = {}
        for name in self.containers()["worker"]:
            for event, host in RECORDED.findall(logs(name)):
                found.setdefault(int(event), []).append(host)
        return found

    def site_call(self, action: str) -> object:
        """POST a control action to the local site, from inside its container."""
        code = (
            "import json, urllib.request; print(json.dumps(json.load(urllib.request.urlopen("
            f"urllib.request.Request('http://127.0.0.1:8000/_local/{action}', data=b'{{}}'),"
            " timeout=10))['result']))"
        )
        site = self.containers()["site"][0]
        return json.loads(run_ok("exec", site, "python3", "-c", code).stdout)


@pytest.fixture
def stack(image: str, tmp_path: Path) -> Iterator[Stack]:
    if shutil.which("podman-compose") is None:
        pytest.skip("podman cannot run compose.yaml here: podman-compose is not installed")
    with podman.machine_lock():
        podman.build_simple(Path(__file__).with_name("redis.Containerfile"), REDIS_IMAGE, TIMINGS)
    running = Stack(tmp_path, image)
    try:
        yield running
    finally:
        running.down()


def healthy(name: str) -> bool:
    """One run of the container's health check (podman runs none by itself without systemd)."""
    return podman.podman("healthcheck", "run", name, check=False).returncode == 0


def test_compose_stack_runs_plugins_on_two_workers_through_redis(stack: Stack) -> None:
    # Given the stack of compose.yaml with the local site (and its live activity)
    started = time.monotonic()
    stack.compose("up", "--detach")
    services = stack.containers()
    assert sorted(services) == ["daemon", "redis", "site", "worker"], services
    assert len(services["worker"]) == 2, services["worker"]
    daemon = services["daemon"][0]
    # When events flow for a while
    wait_for(lambda: len(stack.recorded()) >= 20, 240, "20 events recorded by the workers")
    TIMINGS.append(f"compose: first 20 events on the workers {time.monotonic() - started:.0f} s")
    stack.site_call("stop_activity")
    newest = int(stack.site_call("newest_event_id"))  # type: ignore[call-overload]
    # Then every event from the first one recorded to the newest ran once, on a worker
    # (events of different keys finish in any order: the newest can run before others)

    def missing() -> list[int]:
        recorded = stack.recorded()
        return sorted(set(range(min(recorded), newest + 1)) - set(recorded))

    try:
        wait_for(lambda: not missing(), 120, f"every event up to {newest} recorded")
    except AssertionError:
        raise AssertionError(f"events never run on a worker: {missing()[:20]}") from None
    recorded = stack.recorded()
    twice = {event: hosts for event, hosts in recorded.items() if len(hosts) > 1}
    assert not twice, f"events run more than once: {twice}"
    # And the daemon sees both workers serving the plugin
    report = json.loads(run_ok("exec", daemon, "shotgunEventDaemon", "status", "--json").stdout)
    plugin = next(p for p in report["plugins"] if p["name"] == "recorder")
    assert len(plugin["workers"]) == 2, plugin
    assert plugin["last_event_id"] >= newest
    # And every service passes its health check (retried: podman's DNS blinks when the
    # network changes, which the checks' retries absorb the same way)
    for name in [n for names in services.values() for n in names]:
        wait_for(lambda name=name: healthy(name), 60, f"the health check of {name}")
    # And Redis wants its password and keeps an append-only file on its volume
    redis = services["redis"][0]
    anonymous = run_ok("exec", redis, "sh", "-c", "REDISCLI_AUTH= redis-cli ping 2>&1").stdout
    assert "NOAUTH" in anonymous or "WRONGPASS" in anonymous, anonymous
    assert "appendonly" in run_ok("exec", redis, "ls", "/data/appendonlydir").stdout
    # And the password is in no log
    everything = "".join(logs(n) for names in services.values() for n in names)
    assert stack.password not in everything
