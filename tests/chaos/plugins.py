"""The plugins of the chaos run, what each may receive, and the deliveries they record.

Every plugin appends one line per callback run, after its work, to a file of
its own per process (``<records>/<plugin>.<pid>.log``): event id, ordering
key, pid, wall time and the plugin's version. One ``os.write`` with
``O_APPEND`` per line, so a SIGKILL loses no line that was written and never
leaves half of one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEADER = '''\
"""Chaos test plugin {name} ({what}): records every event it handled."""
import os
import time

RECORDS = os.environ["CHAOS_RECORDS"]
VERSION = {version}


def _record(event):
    entity = event.get("entity") or {{}}
    key = "%s:%s" % (entity["type"], entity["id"]) if entity else "-"
    line = "%d %s %d %.6f %d\\n" % (event["id"], key, os.getpid(), time.time(), VERSION)
    path = os.path.join(RECORDS, "{name}.%d.log" % os.getpid())
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def registerCallbacks(reg):
    reg.registerCallback(
        os.environ["SG_ED_SCRIPT_NAME"], os.environ["SG_ED_API_KEY"], handle, {match!r}{extra}
    )
'''

QUICK = """

def handle(sg, logger, event, args):
    _record(event)
"""

#: One site call per event, as most real plugins make; retried through the daemon's policy.
SITE_CALL = """

def handle(sg, logger, event, args):
    entity = event.get("entity")
    if entity:
        sg.find_one(entity["type"], [["id", "is", entity["id"]]], ["id"])
    else:
        sg.find_one("Project", [], ["id"])
    time.sleep({sleep})
    _record(event)
"""

#: Retries for plugins calling a site that faults now and then: a realistic plugin's choice.
RETRIES = ", retries=5, retry_delay=1"

ALL_TYPES = None
CHANGES = {"Shotgun_Shot_Change": None, "Shotgun_Task_Change": None}
STATUS = {"Shotgun_Shot_Change": ["sg_status_list"]}


@dataclass(frozen=True)
class PluginSpec:
    """One chaos plugin: its source, how it runs, and its delivery rules."""

    name: str
    what: str
    match: dict[str, Any] | None
    body: str
    extra: str = ""
    #: "strict" (id order), "keyed" (order per key, up to ``concurrency`` at once), "celery".
    kind: str = "strict"
    concurrency: int = 1
    section: str = ""

    def source(self, version: int) -> str:
        """The plugin file at ``version``."""
        head = HEADER.format(
            name=self.name, what=self.what, version=version, match=self.match, extra=self.extra
        )
        return head + self.body

    def wants(self, event_type: str, attribute: str | None) -> bool:
        """Whether the plugin's matchEvents selects an event (README: matchEvents)."""
        if self.match is None:
            return True
        if event_type not in self.match:
            return False
        fields = self.match[event_type]
        return fields is None or attribute in fields


PLUGINS: tuple[PluginSpec, ...] = (
    PluginSpec("quick_all", "quick, every event", ALL_TYPES, QUICK),
    PluginSpec("quick_status", "quick, shot status changes", STATUS, QUICK),
    PluginSpec(
        "site_caller", "one site call per event", CHANGES, SITE_CALL.format(sleep=0), RETRIES
    ),
    PluginSpec(
        "keyed",
        "concurrency 4 ordered by entity, one site call per event",
        ALL_TYPES,
        SITE_CALL.format(sleep=0.005),
        RETRIES,
        kind="keyed",
        concurrency=4,
        section="[plugin:keyed]\nconcurrency = 4\norder_by = entity\n",
    ),
    PluginSpec(
        "celery_rec",
        "on Celery workers, one site call per event",
        CHANGES,
        SITE_CALL.format(sleep=0.01),
        RETRIES,
        kind="celery",
        section="[plugin:celery_rec]\nexecutor = celery\n",
    ),
)


@dataclass(frozen=True)
class Delivery:
    """One recorded callback run."""

    plugin: str
    event_id: int
    key: str
    pid: int
    at: float
    version: int


def read_deliveries(records: Path) -> dict[str, list[Delivery]]:
    """Every plugin's deliveries from every process, in time order."""
    found: dict[str, list[Delivery]] = {spec.name: [] for spec in PLUGINS}
    for path in sorted(records.glob("*.log")):
        plugin = path.name.split(".", 1)[0]
        text = path.read_text()
        # A process killed in the middle of a write leaves a last line without its newline.
        for line in text.splitlines()[: text.count("\n")]:
            event_id, key, pid, at, version = line.split()
            found.setdefault(plugin, []).append(
                Delivery(plugin, int(event_id), key, int(pid), float(at), int(version))
            )
    for rows in found.values():
        rows.sort(key=lambda d: d.at)
    return found


def write_plugins(folder: Path, version: Callable[[str], int]) -> None:
    """Write every plugin file at its current version."""
    for spec in PLUGINS:
        (folder / f"{spec.name}.py").write_text(spec.source(version(spec.name)))
