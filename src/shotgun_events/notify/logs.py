"""Log files: the main file, one file per plugin, the timing log and secret scrubbing.

Loggers: the engine logs under ``engine`` (``engine.source``, ``engine.state``,
...), a plugin under ``plugin.<name>`` and its callbacks under
``plugin.<name>.<callback>``. Files rotate at local midnight and keep
``backup_count`` old files, in the original daemon's line format.

Log mode 0 writes everything to the main file. Log mode 1 gives each plugin
its own file ``plugin.<name>`` next to the main file, and that plugin's
records stay out of the main file. Either way plugin records still propagate
to the ``plugin`` logger, so an error mailer attached there sees them.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"

ENGINE_LOGGER = "engine"
PLUGIN_LOGGER = "plugin"

#: Secrets shorter than this are not scrubbed: masking "ab" everywhere would
#: make logs unreadable and protect nothing.
MIN_SECRET_LENGTH = 4
MASK = "***"

_SCRUBBED_BY = "_shotgun_events_scrubbed_by"


class SecretFilter(logging.Filter):
    """Replace secrets with ``***`` in a record's message, arguments and traceback.

    The record is changed in place, so every handler after this one (and any
    other handler on the way) sees the scrubbed text. It never drops a record.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        kept = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret containing another one is masked whole.
        self.secrets: tuple[str, ...] = tuple(sorted(kept, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """Return ``text`` with every secret masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record once per filter and let it through."""
        if not self.secrets:
            return True
        done: set[int] = record.__dict__.setdefault(_SCRUBBED_BY, set())
        if id(self) in done:
            return True
        done.add(id(self))
        try:
            message = record.getMessage()
        except Exception:
            # A bad format string: the handler reports it; still mask the raw parts.
            record.msg = self.scrub(str(record.msg))
            record.args = None
            return True
        # Freeze the merged message: the arguments could hold the secret.
        record.msg = self.scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


class TimingLog:
    """One line per callback call, in ``<log_file>.timing``.

    Each line is space-separated ``key=value`` columns, in this order:

    - ``event_id``: the EventLogEntry id.
    - ``created_at``: when the site created the event (ISO 8601, UTC), or ``-``.
    - ``callback``: ``<plugin>.<callback>``.
    - ``start``, ``end``: when the call began and returned (ISO 8601, UTC).
    - ``duration``: ``end - start`` in seconds.
    - ``error``: ``True`` if the callback raised, else ``False``.
    - ``delay``: seconds from ``created_at`` to ``start`` (how far behind the
      daemon is), or ``-`` without ``created_at``.
    """

    def __init__(self, path: Path, *, backup_count: int) -> None:
        self.path = path
        # The handler brings midnight rotation and a lock shared by all threads.
        self._handler = logging.handlers.TimedRotatingFileHandler(
            path, when="midnight", backupCount=backup_count, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    @property
    def handler(self) -> logging.handlers.TimedRotatingFileHandler:
        """The file handler (for rotation and file descriptors)."""
        return self._handler

    def record(
        self,
        *,
        event_id: int,
        created_at: datetime | None,
        callback: str,
        start: float,
        end: float,
        error: bool,
    ) -> None:
        """Write one line for one callback call; ``start`` and ``end`` are epoch seconds."""
        if created_at is None:
            created, delay = "-", "-"
        else:
            aware = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
            created = _iso(aware.timestamp())
            delay = f"{start - aware.timestamp():.6f}"
        line = (
            f"event_id={event_id} created_at={created} callback={callback} "
            f"start={_iso(start)} end={_iso(end)} duration={end - start:.6f} "
            f"error={bool(error)} delay={delay}"
        )
        self._handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def close(self) -> None:
        """Close the file."""
        self._handler.close()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


class _MainFileGate(logging.Filter):
    """Keep records of plugins that have their own file out of the main file."""

    def __init__(self, own_file: dict[str, logging.Handler]) -> None:
        super().__init__()
        self._own_file = own_file

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not name.startswith("plugin.") or not self._own_file:
            return True
        # A plugin name may itself hold dots: try every prefix.
        parts = name.split(".")
        return not any(".".join(parts[1:i]) in self._own_file for i in range(2, len(parts) + 1))


class LogSetup:
    """The handlers made by :func:`configure_logging`; ``close()`` undoes them all."""

    def __init__(
        self,
        *,
        log_file: Path,
        log_mode: int,
        level: int,
        secret_filter: SecretFilter,
        backup_count: int,
    ) -> None:
        self.log_file = log_file
        self.log_mode = log_mode
        self.level = level
        self.secret_filter = secret_filter
        self.backup_count = backup_count
        self.timing: TimingLog | None = None
        self._lock = threading.Lock()
        self._attached: list[tuple[logging.Logger, logging.Handler]] = []
        self._plugin_files: dict[str, logging.Handler] = {}
        self._plugins_seen: set[str] = set()
        self._saved_levels: dict[str, int] = {}
        self.main_gate = _MainFileGate(self._plugin_files)

    def attach(self, handler: logging.Handler, *logger_names: str) -> None:
        """Attach a handler (scrubbed, owned, closed by ``close()``) to loggers.

        The wiring code uses it for the error mailer, so mailed records are
        scrubbed too.
        """
        handler.addFilter(self.secret_filter)
        for name in logger_names:
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            with self._lock:
                self._attached.append((logger, handler))

    def plugin_logger(self, plugin_name: str) -> logging.Logger:
        """Return the logger ``plugin.<name>``, with its own file in log mode 1."""
        logger = logging.getLogger(f"{PLUGIN_LOGGER}.{plugin_name}")
        with self._lock:
            fresh = plugin_name not in self._plugins_seen
            self._plugins_seen.add(plugin_name)
            if self.log_mode == 1 and plugin_name not in self._plugin_files:
                handler = _file_handler(
                    self.log_file.parent / f"plugin.{plugin_name}",
                    self.backup_count,
                    self.secret_filter,
                )
                logger.addHandler(handler)
                self._attached.append((logger, handler))
                self._plugin_files[plugin_name] = handler
        # Only when first seen: the plugin may set its own level afterwards.
        if fresh:
            logger.setLevel(self.level)
        return logger

    def release_plugin(self, plugin_name: str) -> None:
        """Forget a removed or reloading plugin and close its file."""
        with self._lock:
            self._plugins_seen.discard(plugin_name)
            handler = self._plugin_files.pop(plugin_name, None)
            if handler is None:
                return
            logger = logging.getLogger(f"{PLUGIN_LOGGER}.{plugin_name}")
            self._attached.remove((logger, handler))
        logger.removeHandler(handler)
        handler.close()

    def file_descriptors(self) -> list[int]:
        """File descriptors of every open log file, to keep open when daemonizing."""
        with self._lock:
            handlers = {h for _, h in self._attached}
        if self.timing is not None:
            handlers.add(self.timing.handler)
        fds = []
        for handler in handlers:
            if isinstance(handler, logging.FileHandler) and handler.stream is not None:
                fds.append(handler.stream.fileno())
        return sorted(fds)

    def save_level(self, logger: logging.Logger) -> None:
        """Remember a logger's level so that ``close()`` puts it back."""
        self._saved_levels.setdefault(logger.name, logger.level)

    def close(self) -> None:
        """Remove and close every handler made or attached here."""
        with self._lock:
            attached, self._attached = self._attached, []
            self._plugin_files.clear()
            self._plugins_seen.clear()
        for logger, handler in attached:
            logger.removeHandler(handler)
        for handler in dict.fromkeys(h for _, h in attached):
            handler.close()
        if self.timing is not None:
            self.timing.close()
            self.timing = None
        for name, level in self._saved_levels.items():
            logging.getLogger(name).setLevel(level)
        self._saved_levels.clear()


def _file_handler(
    path: Path, backup_count: int, secret_filter: SecretFilter
) -> logging.handlers.TimedRotatingFileHandler:
    handler = logging.handlers.TimedRotatingFileHandler(
        path, when="midnight", backupCount=backup_count, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(secret_filter)
    return handler


def configure_logging(
    *,
    log_file: Path,
    log_mode: int,
    level: int,
    foreground: bool,
    timing_log: bool,
    secrets: Sequence[str] = (),
    backup_count: int = 10,
) -> LogSetup:
    """Open the main log file (and stderr, timing log) and set the engine and plugin levels.

    The main handlers go on the root logger, so warnings of libraries such as
    ``shotgun_api3`` reach the main file too.
    """
    if log_mode not in (0, 1):
        raise ValueError(f"log mode must be 0 or 1, not {log_mode!r}")
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    setup = LogSetup(
        log_file=log_file,
        log_mode=log_mode,
        level=level,
        secret_filter=SecretFilter(secrets),
        backup_count=backup_count,
    )
    try:
        main = _file_handler(log_file, backup_count, setup.secret_filter)
        main.addFilter(setup.main_gate)
        setup.attach(main, "")
        if foreground:
            stderr = logging.StreamHandler(sys.stderr)
            stderr.setFormatter(logging.Formatter(LOG_FORMAT))
            setup.attach(stderr, "")
        if timing_log:
            setup.timing = TimingLog(Path(f"{log_file}.timing"), backup_count=backup_count)
    except BaseException:
        setup.close()
        raise
    for name in (ENGINE_LOGGER, PLUGIN_LOGGER):
        logger = logging.getLogger(name)
        setup.save_level(logger)
        logger.setLevel(level)
    return setup
