"""Reading the INI file: one-line errors, safe parse messages, ``%(NAME)s`` from the environment."""

from __future__ import annotations

import configparser
import math
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from shotgun_events.errors import ConfigError

#: How deep ``%(a)s`` -> ``%(b)s`` -> ... may go before we call it a loop.
MAX_DEPTH = 10
_REFERENCE = re.compile(r"%\(([^()%\s]+)\)s")


def config_error(
    path: Path,
    section: str,
    key: str | None,
    expected: str,
    got: str | None,
    fix: str,
    *,
    secret: bool = False,
) -> ConfigError:
    """Build the one-line error: ``<file>: [section] key: expected X, got 'Y'; fix``."""
    where = f"[{section}] {key}" if key else f"[{section}]"
    if secret and got:
        shown = "a value that is not shown because it is secret"
    elif got is None:
        shown = "nothing"
    else:
        # A multi-line INI value must not break the one-line rule.
        shown = "'" + got.replace("\n", "\\n") + "'"
    return ConfigError(f"{path}: {where}: expected {expected}, got {shown}; {fix}")


def parse_file(
    path: Path, environ: Mapping[str, str], secret_keys: frozenset[str]
) -> configparser.ConfigParser:
    """Read ``path`` into a parser; unreadable or non-INI files raise a one-line ``ConfigError``."""
    parser = configparser.ConfigParser(
        interpolation=EnvInterpolation(environ, path, secret_keys), strict=True
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: expected an INI text file, got bytes that are not UTF-8 text; "
            "point -c at shotgunEventDaemon.conf"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: expected a readable config file, got '{exc.strerror}'; "
            "check the path and that the daemon's user may read it"
        ) from None
    try:
        parser.read_string(text, source=str(path))
    except (configparser.DuplicateSectionError, configparser.DuplicateOptionError) as exc:
        what = f"[{exc.section}] {exc.option}" if hasattr(exc, "option") else f"[{exc.section}]"
        raise ConfigError(
            f"{path}: {what}: expected once, got it again at line {exc.lineno}; remove one of them"
        ) from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"{path}: line {exc.lineno}: expected a '[section]' header first, got a line "
            "outside any section; start the file with [daemon] (is this an INI file?)"
        ) from None
    except configparser.ParsingError as exc:
        # Report line numbers only: the offending line may hold a secret.
        lines = ", ".join(str(number) for number, _ in exc.errors) or "?"
        raise ConfigError(
            f"{path}: line {lines}: expected '[section]' or 'key = value', got neither; "
            "fix the line or comment it out with #"
        ) from None
    return parser


class EnvInterpolation(configparser.BasicInterpolation):
    """Resolve ``%(NAME)s`` from keys of the same section first, then from the environment.

    The original daemon passed the whole environment as parser defaults, so
    every environment variable became a key of every section. Here only the
    references are looked up; a missing one is an error instead of a silent
    fallback. Environment values are taken literally (a ``%`` in a password
    held in the environment needs no escaping); ``%%`` in the file is a ``%``.
    """

    def __init__(self, environ: Mapping[str, str], source: Path, secret_keys: frozenset[str]):
        super().__init__()
        self._environ = environ
        self._source = source
        self._secret_keys = secret_keys

    def before_get(
        self,
        parser: MutableMapping[str, Mapping[str, str]],
        section: str,
        option: str,
        value: str,
        defaults: Mapping[str, str],
    ) -> str:
        """Return ``value`` with every reference expanded (called by ``parser.get``)."""
        return self._expand(section, option, value, defaults, 0)

    def _expand(
        self, section: str, option: str, value: str, scope: Mapping[str, str], depth: int
    ) -> str:
        if depth > MAX_DEPTH:
            raise self._error(section, option, "references that end", value, "remove the loop")
        out: list[str] = []
        pos = 0
        while (mark := value.find("%", pos)) >= 0:
            out.append(value[pos:mark])
            if value.startswith("%%", mark):
                out.append("%")
                pos = mark + 2
                continue
            ref = _REFERENCE.match(value, mark)
            if ref is None:
                expected = "'%%' or '%(NAME)s' at every '%'"
                raise self._error(section, option, expected, value, "write a literal % as %%")
            name = ref.group(1)
            local = _lookup(scope, name)
            if local is not None:
                out.append(self._expand(section, option, local, scope, depth + 1))
            else:
                out.append(self._from_environ(section, option, name))
            pos = ref.end()
        out.append(value[pos:])
        return "".join(out)

    def _from_environ(self, section: str, option: str, name: str) -> str:
        found = _lookup(self._environ, name)
        if found is None:
            raise config_error(
                self._source,
                section,
                option,
                f"environment variable {name} to be set",
                None,
                f"set {name} in the environment or write the value in the file",
            )
        return found

    def _error(self, section: str, option: str, expected: str, value: str, fix: str) -> ConfigError:
        secret = option in self._secret_keys
        return config_error(self._source, section, option, expected, value, fix, secret=secret)


def _lookup(scope: Mapping[str, str], name: str) -> str | None:
    """Find ``name`` exactly, else ignoring case when unambiguous (the original lower-cased all)."""
    if name in scope:
        return scope[name]
    low = name.lower()
    matches = [key for key in scope if key.lower() == low]
    return scope[matches[0]] if len(matches) == 1 else None


class IniReader:
    """Typed, defaulted access to a parsed file; every error names file, section and key.

    Known keys are matched ignoring case, as the original lower-cased every
    key; unknown sections and keys become warnings because old configs carry
    extra ones.
    """

    def __init__(
        self,
        source: Path,
        parser: configparser.ConfigParser,
        defaults: Mapping[tuple[str, str], str],
        known: frozenset[tuple[str, str]],
        secret_keys: frozenset[str],
    ) -> None:
        self.source = source
        self.parser = parser
        self.warnings: list[str] = []
        self._defaults = defaults
        self._secret_keys = secret_keys
        self._names = self._spellings(known)

    def _spellings(self, known: frozenset[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Map each known (section, key) to the spelling used in the file."""
        names: dict[tuple[str, str], str] = {}
        sections = {section for section, _ in known}
        shared = set(self.parser.defaults())  # [DEFAULT] keys: interpolation helpers
        for section in self.parser.sections():
            if section not in sections:
                self.warnings.append(f"{self.source}: [{section}]: unknown section, ignored")
                continue
            by_lower = {key.lower(): key for s, key in known if s == section}
            for written in self.parser[section]:
                canonical = by_lower.get(written.lower())
                if canonical is None:
                    if written not in shared:
                        self.warnings.append(
                            f"{self.source}: [{section}] {written}: unknown key, ignored"
                        )
                elif (section, canonical) in names:
                    raise ConfigError(
                        f"{self.source}: [{section}] {canonical}: expected once, got it "
                        f"again as {written}; remove one of them"
                    )
                else:
                    names[(section, canonical)] = written
        return names

    def fail(self, section: str, key: str, expected: str, got: str | None, fix: str) -> ConfigError:
        """The one-line error for ``[section] key``; secret values are never shown."""
        secret = key in self._secret_keys
        return config_error(self.source, section, key, expected, got, fix, secret=secret)

    def require_section(self, section: str, keys: str) -> None:
        if not self.parser.has_section(section):
            fix = f"add a [{section}] section with {keys}"
            raise config_error(self.source, section, None, "this section", None, fix)

    def has(self, section: str, key: str) -> bool:
        """True when the file writes the key (even empty)."""
        return (section, key) in self._names

    def raw(self, section: str, key: str) -> str:
        """The value as written, stripped, without interpolation; empty when absent."""
        written = self._names.get((section, key))
        return self.parser.get(section, written, raw=True).strip() if written else ""

    def ignore(self, section: str) -> None:
        """Read every key of ``section`` as its default from now on (a switched-off section)."""
        self._names = {name: w for name, w in self._names.items() if name[0] != section}

    def text(self, section: str, key: str) -> str:
        """The interpolated, stripped value; the default when absent or empty."""
        written = self._names.get((section, key))
        value = self.parser.get(section, written).strip() if written else ""
        if value:
            return value
        if (section, key) in self._defaults:
            return self._defaults[(section, key)]
        raw = self.raw(section, key)
        fix = (
            "the environment variables it refers to are empty: set them"
            if "%(" in raw
            else f"add '{key} = ...' to the [{section}] section"
        )
        raise self.fail(section, key, "a value", raw or None, fix)

    def integer(self, section: str, key: str, low: int = 0, high: int | None = None) -> int:
        value = self.text(section, key)
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if number < low or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            raise self.fail(
                section, key, f"a whole number {bounds}", value, self._fix(section, key)
            )
        return number

    def seconds(self, section: str, key: str, *, positive: bool = False) -> float:
        value = self.text(section, key)
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            expected = f"a number of seconds {'>' if positive else '>='} 0"
            raise self.fail(section, key, expected, value, self._fix(section, key))
        return number

    def per_second(self, section: str, key: str) -> float:
        """A rate in calls per second, >= 0 (0: no limit)."""
        value = self.text(section, key)
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0:
            expected = "a number of calls per second >= 0 (0: no limit)"
            raise self.fail(section, key, expected, value, self._fix(section, key))
        return number

    def boolean(self, section: str, key: str) -> bool:
        value = self.text(section, key)
        state = self.parser.BOOLEAN_STATES.get(value.lower())
        if state is None:
            expected = "true or false (or yes/no, on/off, 1/0)"
            raise self.fail(section, key, expected, value, self._fix(section, key))
        return state

    def choice(self, section: str, key: str, options: tuple[str, ...]) -> str:
        value = self.text(section, key)
        if value.lower() not in options:
            expected = " or ".join(repr(option) for option in options)
            raise self.fail(section, key, expected, value, self._fix(section, key))
        return value.lower()

    def path(self, section: str, key: str) -> Path:
        return self.relative(self.text(section, key))

    def relative(self, value: str) -> Path:
        """Resolve against the config file's folder: a daemon's cwd is ``/``, not the user's."""
        given = Path(value).expanduser()
        return Path(os.path.normpath(given if given.is_absolute() else self.source.parent / given))

    def _fix(self, section: str, key: str) -> str:
        default = self._defaults.get((section, key))
        return f"the default is {default}" if default else f"fix {key} in [{section}]"
