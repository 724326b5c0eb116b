"""Broken configs, plugins and state files: each gets a clear answer, and nothing is lost."""

from __future__ import annotations

import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import daemon_command, wait_for

from .conftest import SCRIPT_NAME, Rig
from .summary import SUMMARY


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "(nothing)")


def _answer(rig: Rig, env: dict[str, str] | None = None) -> tuple[int | None, str]:
    """Start ``foreground``; return (exit code or None if it runs, first stderr line or log)."""
    with open(rig.folder / "cfg-stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [*daemon_command(), "-c", str(rig.config), "foreground"],
            env=env or rig.env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    err_path = rig.folder / "cfg-stderr.txt"
    try:
        # Done when it exits, or when it runs and has printed its warnings.
        wait_for(
            lambda: proc.poll() is not None or "warning" in err_path.read_text(errors="replace"),
            what="the daemon to exit or warn",
        )
        code = proc.poll()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    stderr = (rig.folder / "cfg-stderr.txt").read_text(errors="replace")
    warning = [line for line in stderr.splitlines() if "warning" in line.lower()]
    return code, _first_line("\n".join(warning) or stderr)


def _replace(old: str, new: str) -> Callable[[str], str]:
    return lambda text: text.replace(old, new, 1)


CONFIGS: dict[str, tuple[Callable[[str], str], int | None]] = {
    # name: (edit of a working config, expected exit code; None = starts with a warning)
    "missing section [plugins]": (lambda t: t[: t.index("[plugins]")], 78),
    "missing key [shotgun] name": (_replace(f"name = {SCRIPT_NAME}\n", ""), 78),
    "bad number fetch_interval = soon": (
        _replace("fetch_interval = 0.2", "fetch_interval = soon"),
        78,
    ),
    "negative max_event_batch_size": (
        _replace("max_event_batch_size = 500", "max_event_batch_size = -5"),
        78,
    ),
    "bad URL server = ftp//site": (lambda t: _sub_server(t, "ftp//site"), 78),
    "unknown key fetch_intervall": (
        _replace("[daemon]\n", "[daemon]\nfetch_intervall = 3\n"),
        None,
    ),
    "missing variable %(SG_ED_NOT_SET)s": (
        lambda t: t.replace("logging = 10", "logging = %(SG_ED_NOT_SET)s"),
        78,
    ),
    "not an INI file": (lambda t: "this is not\x00 an ini file\n", 78),
}


def _sub_server(text: str, value: str) -> str:
    lines = [
        f"server = {value}" if line.startswith("server = ") else line for line in text.splitlines()
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_broken_config_is_answered_clearly(rig: Rig, name: str) -> None:
    # Given a working config broken in one way
    edit, expected = CONFIGS[name]
    rig.config.write_text(edit(rig.config.read_text()))
    # When the daemon starts
    code, line = _answer(rig)
    # Then it exits 78 with one line naming the file (or starts and warns, for unknown keys)
    SUMMARY.answered(
        "config", name, f"exit {code}: {line}" if code is not None else f"runs; {line}"
    )
    assert code == expected, line
    if expected is not None:
        assert str(rig.config) in line or "config" in line.lower(), line
    else:
        assert "fetch_intervall" in line


def test_missing_and_unreadable_config_files(rig: Rig, tmp_path: Path) -> None:
    # Given config paths that do not exist, are folders, or are not text
    cases = {
        "config file missing": tmp_path / "nope.conf",
        "config path is a folder": tmp_path,
    }
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfe[daemon]\x00\x81")
    cases["config file not UTF-8"] = binary
    for name, path in cases.items():
        # When the daemon is pointed at it
        result = subprocess.run(
            [*daemon_command(), "-c", str(path), "foreground"],
            env=rig.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # Then exit 78 with one clear line, no traceback
        SUMMARY.answered("config", name, f"exit {result.returncode}: {result.stderr}")
        assert result.returncode == 78, result.stderr
        assert "Traceback" not in result.stderr
        if path.is_dir():
            assert "got a folder" in result.stderr


PLUGINS = {
    "syntax_error": "def registerCallbacks(reg)\n    pass\n",
    "import_error": "import no_such_module_4711\n",
    "no_register": "X = 1\n",
    "raises_in_register": "def registerCallbacks(reg):\n    raise RuntimeError('cannot start')\n",
    "non_callable": "def registerCallbacks(reg):\n"
    "    reg.registerCallback('s', 'k', 'not a function')\n",
    "bad_match_types": "def registerCallbacks(reg):\n"
    "    reg.registerCallback('s', 'k', lambda *a: None, matchEvents=42)\n",
    "exits": "import sys\ndef registerCallbacks(reg):\n"
    "    reg.registerCallback('s', 'k', cb)\ndef cb(sg, logger, event, args):\n    sys.exit(3)\n",
    "prints": "def registerCallbacks(reg):\n    reg.registerCallback('s', 'k', cb)\n"
    "def cb(sg, logger, event, args):\n    print('noise ' * 1000, event['id'])\n",
    "hangs": "import time\ndef registerCallbacks(reg):\n    reg.registerCallback('s', 'k', cb)\n"
    "def cb(sg, logger, event, args):\n    time.sleep(3600)\n",
}


def test_broken_plugins_are_switched_off_alone_and_others_get_everything(rig: Rig) -> None:
    # Given every kind of broken plugin next to a good one, and a 1 s callback limit
    rig.write_config(batch=50, daemon_extra="callback_timeout = 1")
    for name, code in PLUGINS.items():
        (rig.plugins / f"{name}.py").write_text(code)
    rig.add_recorder("good")
    rig.start()
    rig.wait_ready()
    base = rig.site.newest_event_id()
    # When events arrive
    _, last = rig.site.append_events(200)
    rig.wait_delivered(["good"], last)
    wait_for(lambda: "has been handling one event" in rig.log_text(), what="callback_timeout")
    # Then the good plugin got every event once, and the daemon is still up
    report = rig.check(base, ["good"])
    assert report.lost_count == 0 and report.duplicate_count() == 0, report.describe()
    assert rig.alive()
    log = "\n".join(p.read_text(errors="replace") for p in sorted((rig.folder / "logs").iterdir()))
    for name in PLUGINS:
        line = _plugin_line(log, name)
        if name == "prints":
            line = "nothing to report; output goes to stdout (the null device once detached)"
        SUMMARY.answered("plugin", name, line)
        assert line != "(nothing)", name
    assert "time.sleep" in log[log.index("has been handling one event") :]
    rig.kill()  # the hung callback would hold a clean stop for stop_timeout


def _plugin_line(log: str, name: str) -> str:
    """The first WARNING/ERROR/CRITICAL line about a plugin, without the timestamp."""
    levels = (" - CRITICAL - ", " - ERROR - ", " - WARNING - ")
    for line in log.splitlines():
        if name in line and any(level in line for level in levels):
            return line.split(" - ", 2)[-1]
    return "(nothing)"


def _malicious_pickle(marker: Path) -> bytes:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, (f"touch {marker}",))

    return pickle.dumps({"/plugins": {"p": (1, {}), "x": Evil()}}, protocol=2)


STATES: dict[str, Callable[[Path], bytes]] = {
    "empty state file": lambda folder: b"",
    "truncated state file": lambda folder: b'{"format": "shotgun_events.state", "vers',
    "state file not JSON": lambda folder: b"hello, world\n",
    "state file of the wrong schema": lambda folder: (
        b'{"format": "shotgun_events.state", '
        b'"version": 1, "journal_generation": 1, "plugins": {"/p": {"a": {"last_id": "ten"}}}}'
    ),
    "legacy pickle that runs code": lambda folder: _malicious_pickle(folder / "PWNED"),
}


@pytest.mark.parametrize("name", list(STATES))
def test_bad_state_file_stops_with_its_name_and_the_way_out(rig: Rig, name: str) -> None:
    # Given a state file damaged in one way
    data = STATES[name](rig.folder)
    rig.state_file.write_bytes(data)
    rig.add_recorder("rec")
    # When the daemon starts
    result = rig.run_cli("foreground")
    # Then it refuses with a non-zero code naming the file and the recovery command
    SUMMARY.answered("state", name, f"exit {result.returncode}: {result.stderr}")
    assert result.returncode not in (0, None), result.stderr
    assert str(rig.state_file) in result.stderr
    assert "Traceback" not in result.stderr
    # And leaves the file as it was, and runs no code from it
    assert rig.state_file.read_bytes() == data
    assert not (rig.folder / "PWNED").exists()
    if name == "state file not JSON":
        assert "not JSON" in result.stderr  # not taken for a damaged pickle
