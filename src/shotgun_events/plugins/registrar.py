"""The plugin-facing API: ``Registrar.registerCallback``, ``Callback`` and matchEvents.

Everything a plugin passes in is validated here, when ``registerCallbacks(reg)``
runs, so a mistake switches the plugin off at load time with a message naming
the plugin file and the function, instead of failing at its first event.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from shotgun_events.errors import PluginError
from shotgun_events.events import Event

#: A compiled matchEvents: tells whether a callback wants an event.
MatchFn = Callable[[Event], bool]

_ALL: Final = "*"
_MISSING: Final = object()
_LIST_TYPES = (list, tuple, set, frozenset)
#: Upper bound of ``setConcurrency`` (the same as the config's ``concurrency``).
MAX_CONCURRENCY = 256


def _match_all(event: Event) -> bool:
    return True


def compile_match(match_events: object) -> MatchFn:
    """Turn a plugin's ``matchEvents`` into the cheapest predicate that implements it.

    Rules (compatibility.md, "matchEvents"): a falsy value matches everything;
    otherwise a dict ``{event_type: attribute_names}`` where a ``'*'`` key
    applies its value to every type and hides the other keys. A value of None
    or a list containing ``'*'`` matches every event of the type; otherwise the
    event's attribute_name must be in the list, so events without an attribute
    (``_New``, ``_Retirement``) only match None or ``['*']``. A string value is
    tested with ``in`` (a substring test), as the original does.

    Raises ``PluginError`` (without a file name; ``Registrar`` adds it) for a
    value of the wrong shape.
    """
    if not match_events:
        return _match_all
    if not isinstance(match_events, Mapping):
        raise PluginError(
            "matchEvents must be a dict {event_type: [attribute_name, ...]} or None, "
            f"got {type(match_events).__name__} {match_events!r}"
        )
    table: dict[str, frozenset[str] | str | None] = {}
    for event_type, attributes in match_events.items():
        if not isinstance(event_type, str):
            raise PluginError(
                f"matchEvents keys must be event type strings, got {event_type!r} "
                f"({type(event_type).__name__})"
            )
        table[event_type] = _compile_attributes(event_type, attributes)
    if _ALL in table:
        return _match_attributes(table[_ALL])
    return _match_table(table)


def event_types_of(match_events: object) -> frozenset[str] | None:
    """Return the event types a (valid) ``matchEvents`` can match; None when it is every type."""
    if not match_events or not isinstance(match_events, Mapping) or _ALL in match_events:
        return None
    return frozenset(str(event_type) for event_type in match_events)


def wanted_event_types(plugins: Iterable[Any]) -> frozenset[str] | None:
    """The event types the active plugins' callbacks can match; None when some match any type.

    Used by the server-side pre-filter. Events of other types then look like
    gaps to the cursors; the backlog is re-read by id without this filter, so
    those ids are settled as events no callback wants instead of being waited
    for until they expire.
    """
    types: set[str] = set()
    for plugin in plugins:
        if not plugin.active:
            continue
        for callback in plugin.callbacks:
            wanted = event_types_of(callback.match_events)
            if wanted is None:
                return None
            types |= wanted
    return frozenset(types) if types else None


def _compile_attributes(event_type: str, attributes: object) -> frozenset[str] | str | None:
    """Normalise one matchEvents value: None = every attribute, a frozenset, or a substring."""
    if attributes is None:
        return None
    if isinstance(attributes, str):
        # `'*' in value` is a substring test in the original too: a string holding '*' matches all.
        return None if _ALL in attributes else attributes
    if isinstance(attributes, _LIST_TYPES):
        names: set[str] = set()
        for name in attributes:
            if name is None:
                continue  # accepted by the original but never matched: attribute_name None is falsy
            if not isinstance(name, str):
                raise PluginError(
                    f"matchEvents[{event_type!r}] must list attribute name strings, "
                    f"got {name!r} ({type(name).__name__})"
                )
            names.add(name)
        return None if _ALL in names else frozenset(names)
    raise PluginError(
        f"matchEvents[{event_type!r}] must be None, '*' or a list of attribute names, "
        f"got {type(attributes).__name__} {attributes!r}"
    )


def _match_attributes(spec: frozenset[str] | str | None) -> MatchFn:
    """Predicate for a ``'*'`` key: the event type does not matter."""
    if spec is None:
        return _match_all
    if isinstance(spec, frozenset):
        names = spec

        def match_names(event: Event) -> bool:
            # None is never in `names`, so _New/_Retirement events miss without a test.
            return event.get("attribute_name") in names

        return match_names
    text = spec

    def match_substring(event: Event) -> bool:
        attribute = event.get("attribute_name")
        return bool(attribute) and isinstance(attribute, str) and attribute in text

    return match_substring


def _match_table(table: dict[str, frozenset[str] | str | None]) -> MatchFn:
    """Predicate for a dict keyed by event type; a miss costs one dict lookup."""
    all_types = frozenset(t for t, spec in table.items() if spec is None)
    if len(all_types) == len(table):

        def match_types(event: Event) -> bool:
            return event.get("event_type") in all_types

        return match_types
    if not any(isinstance(spec, str) for spec in table.values()):
        sets: dict[str, frozenset[str] | None] = {
            t: spec for t, spec in table.items() if not isinstance(spec, str)
        }

        def match_sets(event: Event) -> bool:
            names = sets.get(event.get("event_type"), _MISSING)  # type: ignore[arg-type]
            if names is _MISSING:
                return False
            return names is None or event.get("attribute_name") in names  # type: ignore[operator]

        return match_sets

    def match_general(event: Event) -> bool:
        spec = table.get(event.get("event_type"), _MISSING)  # type: ignore[arg-type]
        if spec is _MISSING:
            return False
        if spec is None:
            return True
        attribute = event.get("attribute_name")
        if not attribute or not isinstance(attribute, str):
            return False
        return attribute in spec  # type: ignore[operator]

    return match_general


@dataclass(eq=False)
class Callback:
    """One registered callback: what to call, for which events, and with which credentials."""

    plugin_name: str
    name: str
    func: Callable[..., object]
    matches: MatchFn
    match_events: object
    args: object
    stop_on_error: bool
    script_name: str
    script_key: str = field(repr=False)
    logger: logging.Logger = field(repr=False)
    #: Extra attempts after a failure, and the first wait (doubling); None: the config's default.
    retries: int | None = None
    retry_delay: float | None = None


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
        #: Registered callbacks, in registration order.
        self.callbacks: list[Callback] = []
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
        if retries is not None and (
            not isinstance(retries, int) or isinstance(retries, bool) or retries < 0
        ):
            raise self._error(
                f"registerCallback({name})", f"retries must be an int >= 0, got {retries!r}"
            )
        if retry_delay is not None and (
            not isinstance(retry_delay, int | float)
            or isinstance(retry_delay, bool)
            or retry_delay < 0
        ):
            raise self._error(
                f"registerCallback({name})",
                f"retry_delay must be a number >= 0, got {retry_delay!r}",
            )
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
                retry_delay=None if retry_delay is None else float(retry_delay),
            )
        )

    def _check_signature(self, callback: Callable[..., object], name: str) -> None:
        """Refuse a callback that could not be called as ``callback(sg, logger, event, args)``."""
        try:
            signature = inspect.signature(callback)
        except (TypeError, ValueError):
            return  # some builtins and extension callables expose no signature: trust them
        try:
            signature.bind(None, None, None, None)
        except TypeError as exc:
            raise self._error(
                "registerCallback",
                f"callback {name}{signature} cannot be called as "
                f"{name}(sg, logger, event, args): {exc}",
            ) from None

    def _error(self, function: str, problem: str) -> PluginError:
        return PluginError(f"plugin {self.plugin_path}: {function}: {problem}")
