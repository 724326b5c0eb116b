"""The plugin-facing API: ``Registrar`` (``reg``), ``Callback`` and ``Timer``.

Everything a plugin passes in is validated here, when ``registerCallbacks(reg)``
runs, so a mistake switches the plugin off at load time with a message naming
the plugin file and the function, instead of failing at its first event.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shotgun_events.errors import PluginError
from shotgun_events.plugins.matching import MatchFn, compile_match

#: The shortest ``every`` of a timer, in seconds.
MIN_TIMER_EVERY = 1.0
#: Upper bound of ``setConcurrency`` (the same as the config's ``concurrency``).
MAX_CONCURRENCY = 256


@dataclass(eq=False, kw_only=True)
class Registered:
    """What a callback and a timer share: the function, its args, credentials and failure rules."""

    plugin_name: str
    name: str
    func: Callable[..., object]
    args: object
    stop_on_error: bool
    script_name: str
    script_key: str = field(repr=False)
    logger: logging.Logger = field(repr=False)
    #: Extra attempts after a failure, and the first wait (doubling); None: the config's default.
    retries: int | None = None
    retry_delay: float | None = None


@dataclass(eq=False, kw_only=True)
class Callback(Registered):
    """One registered callback: what to call, for which events, and with which credentials."""

    matches: MatchFn
    match_events: object


@dataclass(eq=False, kw_only=True)
class Timer(Registered):
    """One registered timer: ``func(sg, logger, args)`` every ``every`` seconds.

    Runs fall on a fixed grid, the instants when the UTC clock is a whole
    multiple of ``every`` (``every=600`` runs at :00, :10, :20 ...;
    ``every=86400`` at midnight UTC), so restarts neither add nor move runs.
    """

    every: float


def callback_name(callback: object) -> str:
    """Name a callback as the original does: its ``__name__``, else ``<Class>_<hex id>``.

    Each instance of a callable class gets a name (and so a logger and timing
    lines) of its own, as in the original, where a plugin may register several.
    """
    name = getattr(callback, "__name__", None)
    return name if isinstance(name, str) else f"{type(callback).__name__}_{hex(id(callback))}"


class Registrar:
    """The ``reg`` object handed to a plugin's ``registerCallbacks(reg)``."""

    def __init__(self, plugin_name: str, plugin_path: Path, logger: logging.Logger) -> None:
        self.plugin_name = plugin_name
        self.plugin_path = plugin_path
        self._logger = logger
        #: Registered callbacks and timers, in registration order.
        self.callbacks: list[Callback] = []
        self.timers: list[Timer] = []
        #: True = the configured ``to`` list, False = no email, or explicit addresses.
        self.emails: bool | tuple[str, ...] = True
        #: Scope asked for in code; a [plugin:NAME] section of the config overrides it.
        self.projects: tuple[int | str, ...] | None = None
        self.ignore_own_events: bool | None = None
        #: Events run at once, and the ordering key (``setConcurrency``); 1 = strict id order.
        self.concurrency = 1
        self.order_by = "entity"

    @property
    def logger(self) -> logging.Logger:
        """The plugin logger (``plugin.<name>``); plugins may set its level."""
        return self._logger

    def getLogger(self) -> logging.Logger:
        """Return the plugin logger (same as ``reg.logger``)."""
        return self._logger

    def getEmails(self) -> bool | tuple[str, ...]:
        """Return what ``setEmails`` chose (True = the configured ``to`` list)."""
        return self.emails

    def setEmails(self, *emails: object) -> None:
        """Choose who gets this plugin's error emails.

        ``True`` = the configured ``to`` list, ``False`` (or nothing) = no email,
        otherwise one or more addresses, given as arguments or as one list.
        """
        if len(emails) == 1 and isinstance(emails[0], bool):
            self.emails = emails[0]
            return
        if len(emails) == 1 and isinstance(emails[0], list | tuple | set | frozenset):
            emails = tuple(emails[0])
        if not emails:
            self.emails = False
            return
        bad = [e for e in emails if not isinstance(e, str) or not e.strip()]
        if bad:
            raise self._error(
                "setEmails",
                f"expects True, False or email address strings, got {bad[0]!r}",
            )
        self.emails = tuple(str(e).strip() for e in emails)

    def setProjects(self, *projects: object) -> None:
        """Deliver only events of these projects (ids or names; none given: every project)."""
        if len(projects) == 1 and isinstance(projects[0], list | tuple | set | frozenset):
            projects = tuple(projects[0])
        chosen: list[int | str] = []
        for item in projects:
            if isinstance(item, dict) and isinstance(item.get("id"), int):
                item = item["id"]  # a Project entity dict
            if isinstance(item, bool) or not isinstance(item, int | str) or item in ("", 0):
                raise self._error("setProjects", f"takes project ids or names, not {item!r}")
            chosen.append(int(item) if isinstance(item, str) and item.isdigit() else item)
        self.projects = tuple(chosen) or None

    def setIgnoreOwnEvents(self, ignore: bool = True) -> None:
        """Skip events made by the script a callback is registered with (loop protection)."""
        self.ignore_own_events = bool(ignore)

    def setConcurrency(self, concurrency: int, order_by: str = "entity") -> None:
        """Let up to ``concurrency`` events run at once, one at a time per ordering key.

        ``order_by``: ``entity`` (type + id, the default), ``project``, ``none``
        (no order) or a dotted field of the event such as ``meta.entity_id``.
        Events with the same key run in id order; a ``[plugin:NAME]`` section
        of the config overrides both values.
        """
        if (
            not isinstance(concurrency, int)
            or isinstance(concurrency, bool)
            or not 1 <= concurrency <= MAX_CONCURRENCY
        ):
            raise self._error(
                "setConcurrency",
                f"concurrency must be an int from 1 to {MAX_CONCURRENCY}, got {concurrency!r}",
            )
        parts = order_by.split(".") if isinstance(order_by, str) else []
        if not parts or not all(part.isidentifier() for part in parts):
            raise self._error(
                "setConcurrency",
                f"order_by must be 'entity', 'project', 'none' or a dotted field of the "
                f"event such as 'meta.entity_id', got {order_by!r}",
            )
        self.concurrency = concurrency
        self.order_by = order_by

    def registerCallback(
        self,
        sgScriptName: str,
        sgScriptKey: str,
        callback: Callable[..., object],
        matchEvents: object = None,
        args: object = None,
        stopOnError: bool = True,
        *,
        retries: int | None = None,
        retry_delay: float | None = None,
    ) -> None:
        """Register ``callback(sg, logger, event, args)`` for the events ``matchEvents`` selects.

        ``sg`` connects with ``sgScriptName``/``sgScriptKey``; ``args`` is passed back
        untouched; with ``stopOnError`` an exception switches the whole plugin off.
        """
        for argument, value in (("sgScriptName", sgScriptName), ("sgScriptKey", sgScriptKey)):
            if not isinstance(value, str):
                raise self._error(
                    "registerCallback",
                    f"argument {argument} must be a string, got {type(value).__name__}",
                )
        if not callable(callback):
            raise self._error(
                "registerCallback",
                f"argument callback must be a function or a callable object, "
                f"got {type(callback).__name__} {callback!r}",
            )
        name = callback_name(callback)
        self._check_signature(callback, name)
        try:
            matches = compile_match(matchEvents)
        except PluginError as exc:
            raise self._error(f"registerCallback({name})", f"argument {exc}") from None
        retries, retry_delay = self._retry_values(f"registerCallback({name})", retries, retry_delay)
        self.callbacks.append(
            Callback(
                plugin_name=self.plugin_name,
                name=name,
                func=callback,
                matches=matches,
                match_events=matchEvents,
                args=args,
                stop_on_error=bool(stopOnError),
                script_name=sgScriptName,
                script_key=sgScriptKey,
                logger=self._logger.getChild(name),
                retries=retries,
                retry_delay=retry_delay,
            )
        )

    def registerTimer(
        self,
        callback: Callable[..., object],
        every: float,
        args: object = None,
        stopOnError: bool = True,
        *,
        sgScriptName: str | None = None,
        sgScriptKey: str | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
    ) -> None:
        """Call ``callback(sg, logger, args)`` every ``every`` seconds, one run at a time.

        Runs fall when the UTC clock is a multiple of ``every``; a run still
        going at the next time skips that time. ``sg`` connects with
        ``sgScriptName``/``sgScriptKey``, by default the credentials of the
        plugin's first callback (else the daemon's own). A failure is handled
        as a callback's: retries, then with ``stopOnError`` the plugin is
        switched off, otherwise the run is given up until its next time.
        """
        if not callable(callback):
            raise self._error(
                "registerTimer",
                f"argument callback must be a function or a callable object, "
                f"got {type(callback).__name__} {callback!r}",
            )
        name = callback_name(callback)
        where = f"registerTimer({name})"
        self._check_signature(callback, name, "registerTimer", "sg, logger, args")
        if (
            not isinstance(every, int | float)
            or isinstance(every, bool)
            or not every >= MIN_TIMER_EVERY
        ):
            raise self._error(
                where, f"every must be a number of seconds >= {MIN_TIMER_EVERY:g}, got {every!r}"
            )
        if any(timer.name == name for timer in self.timers):
            raise self._error(
                where,
                f"a timer named {name} is already registered; give each timer its own function",
            )
        for argument, value in (("sgScriptName", sgScriptName), ("sgScriptKey", sgScriptKey)):
            if value is not None and not isinstance(value, str):
                raise self._error(
                    where, f"argument {argument} must be a string, got {type(value).__name__}"
                )
        if (sgScriptName is None) != (sgScriptKey is None):
            raise self._error(where, "give both sgScriptName and sgScriptKey, or neither")
        retries, retry_delay = self._retry_values(where, retries, retry_delay)
        self.timers.append(
            Timer(
                plugin_name=self.plugin_name,
                name=name,
                func=callback,
                every=float(every),
                args=args,
                stop_on_error=bool(stopOnError),
                script_name=sgScriptName or "",
                script_key=sgScriptKey or "",
                logger=self._logger.getChild(name),
                retries=retries,
                retry_delay=retry_delay,
            )
        )

    def _retry_values(
        self, where: str, retries: object, retry_delay: object
    ) -> tuple[int | None, float | None]:
        """Check a callback's or timer's own ``retries`` and ``retry_delay``."""
        if retries is not None and (
            not isinstance(retries, int) or isinstance(retries, bool) or retries < 0
        ):
            raise self._error(where, f"retries must be an int >= 0, got {retries!r}")
        if retry_delay is not None and (
            not isinstance(retry_delay, int | float)
            or isinstance(retry_delay, bool)
            or retry_delay < 0
        ):
            raise self._error(where, f"retry_delay must be a number >= 0, got {retry_delay!r}")
        return retries, None if retry_delay is None else float(retry_delay)

    def _check_signature(
        self,
        callback: Callable[..., object],
        name: str,
        function: str = "registerCallback",
        arguments: str = "sg, logger, event, args",
    ) -> None:
        """Refuse a function that could not be called with ``arguments``."""
        try:
            signature = inspect.signature(callback)
        except (TypeError, ValueError):
            return  # some builtins and extension callables expose no signature: trust them
        try:
            signature.bind(*(None for _ in arguments.split(",")))
        except TypeError as exc:
            raise self._error(
                function,
                f"callback {name}{signature} cannot be called as {name}({arguments}): {exc}",
            ) from None

    def _error(self, function: str, problem: str) -> PluginError:
        return PluginError(f"plugin {self.plugin_path}: {function}: {problem}")
