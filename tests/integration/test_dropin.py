"""Drop-in gaps found with real studios' plugins (issue 11), through the real daemon.

Helper modules kept beside the config, the original's plugin order, failures
at CRITICAL in the plugin's own file with the frame's locals, the DEBUG
dispatch line, and print() lines from plugins running side by side.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .conftest import DaemonRig, daemon_command, wait_for

RECORD = '''\
"""Records '<plugin> <id> <value>' lines (drop-in test plugin)."""
import os
{imports}
RECORD = os.environ["RECORD_FILE"]
NAME = os.path.basename(__file__)[:-3]


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", record, None, None)


def record(sg, logger, event, args):
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("%s %d %s\\n" % (NAME, event["id"], {value})).encode())
    finally:
        os.close(fd)
'''

CRASHER = '''\
"""Raises on every event, with locals worth reading (drop-in test plugin)."""


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", crash, None, None, stopOnError=False)


def crash(sg, logger, event, args):
    shot_code = "sh010"
    api_key = "Plugin-Secret-5f1e"
    raise ValueError("no task for shot %s" % shot_code)
'''

BROKEN_REGISTER = '''\
"""registerCallbacks raises (drop-in test plugin)."""


def registerCallbacks(reg):
    wanted_field = "sg_missing_field"
    raise KeyError(wanted_field)
'''

PRINTER = '''\
"""Prints long lines made of many pieces, then records the event (drop-in test plugin)."""
import os

RECORD = os.environ["RECORD_FILE"]


def registerCallbacks(reg):
    reg.registerCallback("shotgun_events", "local", shout, None, None)


def shout(sg, logger, event, args):
    for n in range(200):
        print(*(["{letter}" * 60] * 50), "%d" % n)
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("printed %d\\n" % event["id"]).encode())
    finally:
        os.close(fd)
'''


def rows(rig: DaemonRig) -> list[list[str]]:
    if not rig.record_file.exists():
        return []
    return [line.split() for line in rig.record_file.read_text().splitlines()]


def plugin_log(rig: DaemonRig, name: str) -> str:
    path = rig.folder / "logs" / f"plugin.{name}"
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_helper_beside_the_config_is_imported_and_reloads_its_plugin(rig: DaemonRig) -> None:
    # Given a studio helper module kept beside the config file (not in a plugin folder)
    helper = rig.folder / "handler_config.py"
    helper.write_text("VALUE = 'v1'\n")
    (rig.plugins / "rollup.py").write_text(
        RECORD.format(imports="import handler_config", value="handler_config.VALUE")
    )
    rig.start()
    rig.wait_ready()
    # When an event arrives
    _, last = rig.site.append_events(1)
    # Then the plugin loaded and used the helper
    wait_for(lambda: ["rollup", str(last), "v1"] in rows(rig), what="v1 delivery")
    # When the helper changes
    helper.write_text("VALUE = 'v2-changed'\n")
    wait_for(
        lambda: "reloading plugin rollup: helper" in rig.log_text(), what="the helper's reload"
    )
    _, later = rig.site.append_events(1)
    # Then the next event runs the new helper code
    wait_for(lambda: ["rollup", str(later), "v2-changed"] in rows(rig), what="v2 delivery")
    assert rig.stop() == 0


def test_config_dir_off_gives_the_module_not_found_error(rig: DaemonRig) -> None:
    # Given the same helper beside the config, with config_dir_on_path turned off
    rig.write_config(plugins_extra="config_dir_on_path = false")
    (rig.folder / "handler_config.py").write_text("VALUE = 'v1'\n")
    (rig.plugins / "rollup.py").write_text(
        RECORD.format(imports="import handler_config", value="handler_config.VALUE")
    )
    rig.start()
    rig.wait_ready()
    # Then the plugin does not load: its own log has the exact error, the main log says so
    expected = "ModuleNotFoundError: No module named 'handler_config'"
    wait_for(lambda: expected in plugin_log(rig, "rollup"), what="the error in plugin.rollup")
    assert "plugin rollup failed to load" in rig.log_text()
    assert rig.stop() == 0


def test_serial_order_is_by_file_name_with_py_as_the_original(rig: DaemonRig) -> None:
    # Given order.py and order-2.py in serial mode ('-' sorts before '.')
    rig.write_config(extra="dispatch = serial")
    for name in ("order", "order-2"):
        (rig.plugins / f"{name}.py").write_text(RECORD.format(imports="", value="'x'"))
    rig.start()
    rig.wait_ready()
    # When three events arrive
    first, last = rig.site.append_events(3)
    wait_for(lambda: len(rows(rig)) == 6, what="six deliveries")
    # Then for every event order-2 ran before order
    expected = [[n, str(i), "x"] for i in range(first, last + 1) for n in ("order-2", "order")]
    assert rows(rig) == expected
    assert rig.stop() == 0


def test_failures_are_critical_in_the_plugin_file_with_locals(rig: DaemonRig) -> None:
    # Given a callback that raises with locals (one a credential) and a failing registerCallbacks
    (rig.plugins / "crasher.py").write_text(CRASHER)
    (rig.plugins / "broken.py").write_text(BROKEN_REGISTER)
    rig.start()
    rig.wait_ready()
    # When an event arrives
    _, last = rig.site.append_events(1)
    wait_for(lambda: "no task for shot" in plugin_log(rig, "crasher"), what="the failure")
    crasher = plugin_log(rig, "crasher")
    # Then the DEBUG dispatch line (logging = 10) precedes a CRITICAL record in the plugin's file
    assert f"- plugin.crasher - DEBUG - Dispatching event {last} to callback crash." in crasher
    assert "- plugin.crasher.crash - CRITICAL - crash failed on event" in crasher
    # And the record holds the callback frame's locals, with the credential masked
    assert "Local variables in the outermost plugin frame (crash," in crasher
    assert "    shot_code = 'sh010'" in crasher and "    api_key = ***" in crasher
    assert "Plugin-Secret-5f1e" not in crasher
    assert "ValueError: no task for shot sh010" in crasher
    # And the failing registerCallbacks is CRITICAL in its own file, with its locals
    broken = plugin_log(rig, "broken")
    assert "- plugin.broken - CRITICAL - registerCallbacks of plugin broken failed" in broken
    assert "    wanted_field = 'sg_missing_field'" in broken
    # And neither record is in the main log (logMode 1), which names the load failure once
    main = rig.log_text()
    assert " - CRITICAL - " not in main and "plugin broken failed to load" in main
    assert rig.stop() == 0


def test_print_from_two_parallel_plugins_never_mixes_lines(rig: DaemonRig, tmp_path: Path) -> None:
    # Given two plugins that print long lines made of many pieces, in parallel mode
    rig.write_config(extra="dispatch = parallel")
    for letter in "AB":
        (rig.plugins / f"printer{letter}.py").write_text(PRINTER.format(letter=letter))
    out_path = tmp_path / "stdout.txt"
    with open(out_path, "wb") as out, open(tmp_path / "stderr.txt", "ab") as err:
        proc = subprocess.Popen(
            [*daemon_command(), "-c", str(rig.config), "foreground"],
            env=rig.env,
            stdout=out,
            stderr=err,
        )
    rig.proc = proc
    rig.wait_ready()
    # When three events reach both plugins at once
    rig.site.append_events(3)
    wait_for(lambda: len(rows(rig)) == 6, what="both plugins done printing")
    assert rig.stop() == 0
    # Then stdout holds every line whole: one letter per line, none mixed
    lines = out_path.read_text().splitlines()
    assert len(lines) == 2 * 3 * 200
    pattern = re.compile(r"^(?:A{60} ){50}\d+$|^(?:B{60} ){50}\d+$")
    mixed = [line[:80] for line in lines if not pattern.match(line)]
    assert mixed == []
    assert {line[0] for line in lines} == {"A", "B"}
