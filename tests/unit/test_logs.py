"""Log files, per-plugin files, rotation, stderr, secret scrubbing and the timing log."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shotgun_events.notify.logs import LOG_FORMAT, LogSetup, configure_logging

SECRET = "s3cr3t-api-key-0042"
PASSWORD = "mail-password-77"
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - (\S+) - ([A-Z]+) - (.*)$")


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "shotgunEventDaemon.log"


@pytest.fixture
def setups() -> Iterator[list[LogSetup]]:
    made: list[LogSetup] = []
    yield made
    for setup in made:
        setup.close()


def _configure(setups: list[LogSetup], log_file: Path, **kwargs: object) -> LogSetup:
    options: dict[str, object] = {
        "log_mode": 0,
        "level": logging.INFO,
        "foreground": False,
        "timing_log": False,
    }
    options.update(kwargs)
    setup = configure_logging(log_file=log_file, **options)  # type: ignore[arg-type]
    setups.append(setup)
    return setup


def _file_handlers() -> list[logging.handlers.TimedRotatingFileHandler]:
    return [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.handlers.TimedRotatingFileHandler)
    ]


def test_log_mode_0_writes_engine_and_plugins_to_the_main_file(
    setups: list[LogSetup], log_file: Path
) -> None:
    # Given log mode 0
    setup = _configure(setups, log_file, log_mode=0)
    # When the engine, a plugin and one of its callbacks log
    logging.getLogger("engine.source").info("fetched 3 events")
    plugin = setup.plugin_logger("myPlugin")
    plugin.info("registered")
    plugin.getChild("onShot").warning("slow shot")
    setup.close()
    # Then everything is in the main file, and no plugin file exists
    text = log_file.read_text()
    assert "engine.source - INFO - fetched 3 events" in text
    assert "plugin.myPlugin - INFO - registered" in text
    assert "plugin.myPlugin.onShot - WARNING - slow shot" in text
    assert sorted(p.name for p in log_file.parent.iterdir()) == [log_file.name]


def test_log_mode_1_gives_each_plugin_its_own_file(setups: list[LogSetup], log_file: Path) -> None:
    # Given log mode 1 and two plugins
    setup = _configure(setups, log_file, log_mode=1)
    first = setup.plugin_logger("first")
    second = setup.plugin_logger("second")
    # When the engine and both plugins (and a callback) log
    logging.getLogger("engine").info("engine line")
    first.info("first line")
    first.getChild("cb").error("first callback line")
    second.info("second line")
    setup.close()
    # Then each plugin's records are in its own file and not in the main file
    main = log_file.read_text()
    first_text = (log_file.parent / "plugin.first").read_text()
    second_text = (log_file.parent / "plugin.second").read_text()
    assert "engine line" in main
    assert "first line" not in main and "second line" not in main
    assert "first line" in first_text and "first callback line" in first_text
    assert "second line" not in first_text
    assert "second line" in second_text and "engine line" not in second_text


def test_plugin_records_still_reach_the_plugin_logger_in_mode_1(
    setups: list[LogSetup], log_file: Path
) -> None:
    # Given log mode 1 and a handler on "plugin" (where the mailer sits)
    setup = _configure(setups, log_file, log_mode=1)
    seen: list[str] = []
    catcher = logging.Handler()
    catcher.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    setup.attach(catcher, "plugin")
    # When a plugin callback logs an error
    setup.plugin_logger("p").getChild("cb").error("failure")
    # Then the handler on "plugin" sees it
    assert seen == ["failure"]


def test_lines_use_the_original_format(setups: list[LogSetup], log_file: Path) -> None:
    # Given a configured log
    _configure(setups, log_file)
    # When the engine logs with lazy arguments
    logging.getLogger("engine").warning("retrying in %.1f s", 8)
    # Then the line is "<asctime> - <name> - <level> - <message>"
    [line] = log_file.read_text().splitlines()
    match = LINE.match(line)
    assert match is not None
    assert match.groups() == ("engine", "WARNING", "retrying in 8.0 s")
    assert LOG_FORMAT == "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def test_levels_come_from_config_and_plugins_may_change_theirs(
    setups: list[LogSetup], log_file: Path
) -> None:
    # Given level WARNING
    setup = _configure(setups, log_file, level=logging.WARNING)
    plugin = setup.plugin_logger("chatty")
    # When the plugin lowers its own level and asks for its logger again
    plugin.setLevel(logging.DEBUG)
    setup.plugin_logger("chatty")
    logging.getLogger("engine").info("engine info")
    plugin.debug("plugin debug")
    # Then the engine follows the config and the plugin keeps its choice
    text = log_file.read_text()
    assert "engine info" not in text
    assert "plugin debug" in text
    assert logging.getLogger("engine").level == logging.WARNING


def test_files_rotate_at_midnight_and_keep_old_files(
    setups: list[LogSetup], log_file: Path
) -> None:
    # Given log mode 1 with a plugin file
    setup = _configure(setups, log_file, log_mode=1)
    setup.plugin_logger("p")
    handlers = _file_handlers() + [
        h for h in logging.getLogger("plugin.p").handlers if isinstance(h, logging.FileHandler)
    ]
    # Then every file rotates at midnight keeping 10 files
    assert len(handlers) == 2
    for handler in handlers:
        assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
        assert (handler.when, handler.backupCount) == ("MIDNIGHT", 10)
    # When the main file rolls over between two lines
    engine = logging.getLogger("engine")
    engine.info("before midnight")
    [main] = _file_handlers()
    main.doRollover()
    engine.info("after midnight")
    # Then the old lines are kept in a dated file and the new file starts fresh
    rotated = [p for p in log_file.parent.iterdir() if p.name.startswith(log_file.name + ".")]
    assert len(rotated) == 1
    assert "before midnight" in rotated[0].read_text()
    assert "before midnight" not in log_file.read_text()
    assert "after midnight" in log_file.read_text()


def test_log_folder_is_created(setups: list[LogSetup], tmp_path: Path) -> None:
    # Given a log path that does not exist yet
    log_file = tmp_path / "a" / "b" / "daemon.log"
    # When logging is configured
    _configure(setups, log_file)
    # Then the folder and the file exist
    assert log_file.is_file()


def test_foreground_also_logs_to_stderr(
    setups: list[LogSetup], log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given foreground mode
    _configure(setups, log_file, foreground=True)
    # When the engine logs
    logging.getLogger("engine").info("to the terminal")
    # Then the line is on stderr in the log format
    err = capsys.readouterr().err
    assert re.search(r" - engine - INFO - to the terminal$", err, re.MULTILINE)


def test_background_does_not_log_to_stderr(
    setups: list[LogSetup], log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the daemon mode (not foreground)
    _configure(setups, log_file, foreground=False)
    # When the engine logs
    logging.getLogger("engine").info("only in the file")
    # Then nothing goes to stderr
    assert "only in the file" not in capsys.readouterr().err


def _fail_with_secret() -> None:
    raise RuntimeError("login refused for key s3cr3t-api-key-0042")


def test_secrets_are_scrubbed_from_messages_and_tracebacks(
    setups: list[LogSetup], log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given secrets, log mode 1 and foreground
    setup = _configure(
        setups, log_file, log_mode=1, foreground=True, secrets=[SECRET, PASSWORD, "abc", ""]
    )
    plugin = setup.plugin_logger("leaky")
    # When secrets appear in arguments, in the message, and in an exception
    logging.getLogger("engine").info("connecting with key %s", SECRET)
    logging.getLogger("engine").warning(f"password is {PASSWORD}")
    try:
        _fail_with_secret()
    except RuntimeError:
        logging.getLogger("engine").exception("callback failed")
        plugin.exception("plugin failed with %r", {"key": SECRET})
    setup.close()
    # Then no file and not stderr holds them; the masks and tracebacks are there
    texts = [
        log_file.read_text(),
        (log_file.parent / "plugin.leaky").read_text(),
        capsys.readouterr().err,
    ]
    for text in texts:
        assert SECRET not in text and PASSWORD not in text
        assert "***" in text
        assert "Traceback (most recent call last)" in text
        assert "RuntimeError: login refused for key ***" in text
    assert "connecting with key ***" in texts[0]


def test_short_secrets_are_not_masked(setups: list[LogSetup], log_file: Path) -> None:
    # Given a secret shorter than 4 characters
    _configure(setups, log_file, secrets=["abc"])
    # When a message contains it
    logging.getLogger("engine").info("abcdef")
    # Then the message is unchanged
    assert "- abcdef" in log_file.read_text()


def test_timing_log_has_one_line_per_call_with_all_columns(
    setups: list[LogSetup], log_file: Path
) -> None:
    # Given the timing log switched on
    setup = _configure(setups, log_file, timing_log=True)
    assert setup.timing is not None
    created = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    start = created.timestamp() + 2.5
    # When two callback calls are recorded, one failing, one without created_at
    setup.timing.record(
        event_id=42,
        created_at=created,
        callback="myPlugin.onShot",
        start=start,
        end=start + 0.25,
        error=False,
    )
    setup.timing.record(
        event_id=43, created_at=None, callback="myPlugin.onTask", start=start, end=start, error=True
    )
    setup.close()
    # Then <log_file>.timing has one line per call with every column
    lines = Path(f"{log_file}.timing").read_text().splitlines()
    rows = [dict(field.split("=", 1) for field in line.split()) for line in lines]
    assert rows[0] == {
        "event_id": "42",
        "created_at": "2026-01-01T12:00:00.000000+00:00",
        "callback": "myPlugin.onShot",
        "start": "2026-01-01T12:00:02.500000+00:00",
        "end": "2026-01-01T12:00:02.750000+00:00",
        "duration": "0.250000",
        "error": "False",
        "delay": "2.500000",
    }
    assert rows[1]["error"] == "True"
    assert rows[1]["created_at"] == "-" and rows[1]["delay"] == "-"
    # And nothing of it is in the main log
    assert "event_id" not in log_file.read_text()


def test_no_timing_file_without_the_option(setups: list[LogSetup], log_file: Path) -> None:
    # Given the timing log off
    setup = _configure(setups, log_file, timing_log=False)
    # Then there is no timing log
    assert setup.timing is None
    assert not Path(f"{log_file}.timing").exists()


def test_file_descriptors_cover_every_open_log_file(setups: list[LogSetup], log_file: Path) -> None:
    # Given mode 1 with a plugin and the timing log
    setup = _configure(setups, log_file, log_mode=1, timing_log=True)
    setup.plugin_logger("p")
    # When the service asks which descriptors to keep
    fds = setup.file_descriptors()
    # Then they are the three files
    paths = sorted(Path(os.readlink(f"/proc/self/fd/{fd}")).name for fd in fds)
    assert paths == sorted([log_file.name, "plugin.p", f"{log_file.name}.timing"])


def test_release_plugin_closes_its_file_and_a_reload_reopens_it(
    setups: list[LogSetup], log_file: Path
) -> None:
    # Given a plugin with its own file
    setup = _configure(setups, log_file, log_mode=1)
    setup.plugin_logger("p").info("first life")
    [handler] = logging.getLogger("plugin.p").handlers
    assert isinstance(handler, logging.FileHandler)
    # When the plugin is released and loaded again
    setup.release_plugin("p")
    assert handler.stream is None
    assert logging.getLogger("plugin.p").handlers == []
    setup.plugin_logger("p").info("second life")
    setup.close()
    # Then both lives are in its file, none in the main file
    text = (log_file.parent / "plugin.p").read_text()
    assert "first life" in text and "second life" in text
    assert "life" not in log_file.read_text()


def test_close_removes_and_closes_every_handler(setups: list[LogSetup], log_file: Path) -> None:
    # Given everything switched on
    root_before = list(logging.getLogger().handlers)
    setup = _configure(setups, log_file, log_mode=1, foreground=True, timing_log=True)
    setup.plugin_logger("p")
    files = _file_handlers() + list(logging.getLogger("plugin.p").handlers)
    # When it is closed (twice: close is idempotent)
    setup.close()
    setup.close()
    # Then no handler is left and every file is closed
    assert logging.getLogger().handlers == root_before
    assert logging.getLogger("plugin.p").handlers == []
    assert all(isinstance(h, logging.FileHandler) and h.stream is None for h in files)
    assert setup.file_descriptors() == []


def test_invalid_log_mode_is_refused(log_file: Path) -> None:
    # When the log mode is neither 0 nor 1 / Then it is refused before opening anything
    with pytest.raises(ValueError, match="log mode"):
        configure_logging(
            log_file=log_file, log_mode=2, level=20, foreground=False, timing_log=False
        )
