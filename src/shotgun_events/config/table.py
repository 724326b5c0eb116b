"""The defaults table's type: every optional key's shipped value, read as the type it stands for.

Structures built from the config (``Config`` itself, the engine's
``Settings``, the retry policy, the watcher, the connection pool ...) take
the defaults of their arguments from this table, so code and tests that name
no value run what a user who wrote no value runs.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterator, Mapping

Key = tuple[str, str]


class DefaultsTable(Mapping[Key, str]):
    """``(section, key) -> default`` as written in a file, with typed reads."""

    def __init__(self, values: Mapping[Key, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: Key) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def text(self, section: str, key: str) -> str:
        """The default as written."""
        return self._values[(section, key)]

    def integer(self, section: str, key: str) -> int:
        """The default of a whole-number key."""
        return int(self.text(section, key))

    def number(self, section: str, key: str) -> float:
        """The default of a number key (seconds, mostly)."""
        return float(self.text(section, key))

    def flag(self, section: str, key: str) -> bool:
        """The default of a true/false key."""
        return configparser.ConfigParser.BOOLEAN_STATES[self.text(section, key).lower()]
