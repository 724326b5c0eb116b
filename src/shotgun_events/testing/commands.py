"""The ``try``, ``capture`` and ``schema-dump`` sub-commands: their arguments, and running them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

COMMANDS = ("try", "capture", "schema-dump")


def add_authoring_commands(commands: Any) -> None:
    """Add ``try``, ``capture`` and ``schema-dump`` to the CLI's sub-parsers."""
    dry = commands.add_parser(
        "try",
        help="run one plugin over past events of the site; writes are shown, never sent",
        description="Run one plugin over past events of the configured site. Reads go to "
        "the site; every write is recorded and not sent; the state file and positions are "
        "not touched. A plugin that opens its own Shotgun connection is refused unless "
        "--allow-own-connection is given (its own writes would then be real).",
    )
    dry.add_argument("plugin", metavar="PLUGIN.py", help="the plugin file")
    dry.add_argument("--from-id", type=int, required=True, metavar="N", help="first event")
    dry.add_argument("--to-id", type=int, metavar="M", help="last event (default: the newest)")
    dry.add_argument("--json", action="store_true", help="print the report as JSON")
    dry.add_argument(
        "--allow-own-connection",
        action="store_true",
        help="run a plugin that opens its own Shotgun connection (ITS WRITES ARE SENT)",
    )
    capture = commands.add_parser(
        "capture",
        help="write a range of the site's events as JSON lines (secrets removed), for tests",
    )
    capture.add_argument("--from-id", type=int, required=True, metavar="N", help="first event")
    capture.add_argument("--to-id", type=int, required=True, metavar="M", help="last event")
    dump = commands.add_parser(
        "schema-dump",
        help="write the configured site's schema to two files (for site --schema, mockgun)",
        description="Write schema_read() and schema_entity_read() of the site the config "
        "names: schema.pickle and schema_entity.pickle (mockgun's generate_schema files), "
        "or schema.json and schema_entity.json.",
    )
    dump.add_argument("--out", required=True, metavar="DIR", help="folder to write them in")
    dump.add_argument(
        "--format", choices=("pickle", "json"), default="pickle", help="default: pickle"
    )


def run_authoring(args: argparse.Namespace, config_path: Path) -> int:
    """Run ``try``, ``capture`` or ``schema-dump``; returns the exit code."""
    if args.command == "schema-dump":
        from shotgun_events.testing.schemadump import run_schema_dump

        return run_schema_dump(config_path, Path(args.out), args.format, sys.stdout, sys.stderr)
    if args.command == "capture":
        from shotgun_events.testing.capture import run_capture

        return run_capture(config_path, args.from_id, args.to_id, sys.stdout, sys.stderr)
    from shotgun_events.testing.dryrun import run_try

    return run_try(
        config_path,
        Path(args.plugin),
        from_id=args.from_id,
        to_id=args.to_id,
        as_json=args.json,
        allow_own_connection=args.allow_own_connection,
        out=sys.stdout,
        err=sys.stderr,
    )
