"""``shotgunEventDaemon schema-dump``: the configured site's schema, as a studio keeps it.

Writes the results of ``schema_read()`` and ``schema_entity_read()`` of the site the
daemon's config names, with its script credentials: ``schema.pickle`` and
``schema_entity.pickle`` (the two files mockgun's ``generate_schema`` writes, so
mockgun reads them too), or ``schema.json`` and ``schema_entity.json``. Either pair
starts a local site on that schema (``shotgunEventDaemon site --schema ...``, the
``--sg-schema`` option of the ``local_site`` fixture). The client turns date-time
strings into datetimes; they are written back as the site sent them, so the files hold
only plain data (a local site refuses a pickle holding anything else).
"""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from shotgun_api3.shotgun import Shotgun

FORMATS = ("pickle", "json")
#: mockgun's generate_schema writes protocol 2; so does this, for the same readers.
PICKLE_PROTOCOL = 2


def plain(value: Any) -> Any:
    """``value`` with datetimes back in the site's wire format (``YYYY-MM-DDTHH:MM:SSZ``)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` whole: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_schema(sg: Shotgun, out: Path, fmt: str = "pickle") -> tuple[Path, Path]:
    """Write the site's two schema results into ``out``; returns the two files."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    results = (plain(sg.schema_read()), plain(sg.schema_entity_read()))
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / f"schema.{fmt}", out / f"schema_entity.{fmt}")
    for path, result in zip(paths, results, strict=True):
        if fmt == "pickle":
            data = pickle.dumps(result, protocol=PICKLE_PROTOCOL)
        else:
            data = json.dumps(result, indent=1).encode() + b"\n"  # the site's order
        _write(path, data)
    return paths


def run_schema_dump(config_path: Path, out: Path, fmt: str, stdout: TextIO, stderr: TextIO) -> int:
    """The ``schema-dump`` command; returns the exit code."""
    from shotgun_api3.shotgun import ShotgunError

    from shotgun_events.client.connections import factory_for
    from shotgun_events.config.load import load_config

    config = load_config(config_path)
    sg = factory_for(config).create(config.script_name, config.script_key)
    try:
        paths = write_schema(sg, out, fmt)
    except (OSError, ShotgunError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"schema-dump: cannot write the schema of {config.server}: {first}", file=stderr)
        return 1
    finally:
        sg.close()
    print(f"schema of {config.server} written to {paths[0]} and {paths[1]}", file=stdout)
    return 0
