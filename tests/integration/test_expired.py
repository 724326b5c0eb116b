"""A daemon stopped longer than the site keeps its event log: the real daemon and local site."""

from __future__ import annotations

import json
import re

from shotgun_events.site import LocalSite

from .conftest import DaemonRig, daemon_cli, wait_for


def test_positions_older_than_the_sites_log_are_reported_once_per_plugin_and_skipped(
    rig: DaemonRig, site: LocalSite
) -> None:
    # Given two plugins that handled the site's first events, then a daemon stopped
    rig.add_recorder("alpha")
    rig.add_recorder("beta")
    first, _ = site.append_events(5)
    rig.start("--from-id", str(first))
    wait_for(lambda: len(rig.deliveries()) == 10, 60, "the first events")
    assert rig.stop() == 0
    saved = max(rig.ids_for("alpha"))
    # And while it was stopped, 3,000 events came and the site's retention dropped the
    # oldest 2,000 of them (a hosted site keeps about six months)
    _, last = site.append_events(3000)
    oldest = last - 999
    assert site.drop_events_before(oldest) >= 2000
    # When it starts again
    rig.start()
    wait_for(lambda: len(rig.ids_for("beta")) >= 1005, 120, "delivery from the oldest event")
    report = json.loads(daemon_cli(rig, "status", "--json").stdout)
    assert rig.stop() == 0
    # Then each plugin reported once, at ERROR, the range it can never get, and nothing
    # was waited for: delivery went on from the oldest event the site keeps
    log = rig.log_text()
    pattern = (
        rf"ERROR - events {saved + 1}\.\.{oldest - 1} of plugin (\w+) are no longer in the "
        r"site's event log; they cannot be delivered"
    )
    assert sorted(re.findall(pattern, log)) == ["alpha", "beta"]
    for name in ("alpha", "beta"):
        assert rig.ids_for(name)[5:] == list(range(oldest, last + 1)), name
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["alpha"]["expired"] == oldest - saved - 1
    assert plugins["alpha"]["backlog"] == 0
