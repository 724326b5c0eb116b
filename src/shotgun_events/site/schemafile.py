"""Reading a studio's schema files without running anything in them.

mockgun's ``generate_schema`` pickles the results of ``schema_read()`` and
``schema_entity_read()``. A pickle can name any Python callable to run while it
loads, so these files are read with a check first: every instruction in the file is
listed (``pickletools``, which runs nothing) and only those that build dicts, lists,
strings, numbers, booleans and None are allowed. A file with anything else is refused
with one line naming the file and what it held; nothing of it is loaded. JSON files
(a dump of either result, or ``{"schema": ..., "schema_entity": ...}`` with both) are
read as JSON.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
from pathlib import Path
from typing import Any

#: The pickle instructions that make plain data (all protocols, Python 2 strings too).
SAFE_OPCODES = frozenset(
    {
        "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
        "NONE", "NEWTRUE", "NEWFALSE",
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING",
        "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
        "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
        "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
        "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET", "MEMOIZE",
    }
)  # fmt: skip


class SchemaFileError(ValueError):
    """A schema file that cannot be used; the message is one line naming the file."""


class _DataOnly(pickle.Unpickler):
    """Refuses every class and persistent id (the opcode check already kept them out)."""

    def find_class(self, module: str, name: str) -> Any:
        """Never import anything."""
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")

    def persistent_load(self, pid: Any) -> Any:
        """Never resolve outside references."""
        raise pickle.UnpicklingError("persistent ids are not plain data")


def load_pickle(data: bytes, path: Path) -> Any:
    """The plain data in a pickle, or SchemaFileError; nothing in the file is run."""
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name not in SAFE_OPCODES:
                what = f" ({arg})" if op.name in ("GLOBAL", "INST") and arg else ""
                raise SchemaFileError(
                    f"{path}: refused, the pickle holds a {op.name} instruction{what}, which"
                    " would build a Python object or run code; a schema file may hold only"
                    " dicts, lists, strings, numbers, booleans and None"
                )
        value = _DataOnly(io.BytesIO(data), encoding="utf-8").load()
    except SchemaFileError:
        raise
    except Exception as e:  # a truncated or corrupt file: say so, in one line
        raise SchemaFileError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
    _check_plain(value, path)
    return value


def _check_plain(value: Any, path: Path) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                raise SchemaFileError(f"{path}: refused, a dict key is not a string")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise SchemaFileError(f"{path}: refused, it holds a {type(item).__name__}")


def read_file(path: Path) -> Any:
    """A schema file's data: JSON when it starts with ``{``, a (checked) pickle otherwise."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SchemaFileError(f"{path}: cannot read it ({e.strerror or e})") from e
    if data.lstrip()[:1] == b"{":
        try:
            return json.loads(data)
        except ValueError as e:
            raise SchemaFileError(f"{path}: not valid JSON ({e})") from e
    return load_pickle(data, path)


def read_schema_files(
    schema_path: Path, entity_path: Path | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(schema_read result, schema_entity_read result or None) from a studio's files."""
    first = read_file(schema_path)
    if not isinstance(first, dict):
        raise SchemaFileError(f"{schema_path}: expected a dict of entity types")
    entities: Any = None
    if set(first) == {"schema", "schema_entity"}:  # one JSON file holding both results
        first, entities = first["schema"], first["schema_entity"]
    if entity_path is not None:
        entities = read_file(entity_path)
    _check_fields(first, schema_path)
    if entities is not None and not (
        isinstance(entities, dict) and all(isinstance(v, dict) for v in entities.values())
    ):
        raise SchemaFileError(f"{entity_path or schema_path}: expected schema_entity_read()")
    return first, entities


def _check_fields(schema: Any, path: Path) -> None:
    if not isinstance(schema, dict) or not schema:
        raise SchemaFileError(f"{path}: expected schema_read(), a dict of entity types")
    for type_name, fields in schema.items():
        if not isinstance(fields, dict):
            raise SchemaFileError(f"{path}: {type_name} is not a dict of fields")
        for name, reply in fields.items():
            kind = reply.get("data_type") if isinstance(reply, dict) else None
            if not isinstance(kind, dict) or not isinstance(kind.get("value"), str):
                raise SchemaFileError(f"{path}: {type_name}.{name} has no data_type")
