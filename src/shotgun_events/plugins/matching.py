"""matchEvents: which events a callback wants, compiled once into the cheapest predicate.

The rules are the original's (compatibility.md, "matchEvents"); ``Registrar``
compiles a plugin's value when ``registerCallbacks`` runs, and the engine asks
``wanted_event_types`` for the site-side pre-filter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from shotgun_events.errors import PluginError
from shotgun_events.events import Event

#: A compiled matchEvents: tells whether a callback wants an event.
MatchFn = Callable[[Event], bool]

_ALL: Final = "*"
_MISSING: Final = object()
_LIST_TYPES = (list, tuple, set, frozenset)


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
