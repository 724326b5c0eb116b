"""The ``site`` command: arguments and a foreground run until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from .local import LocalSite


def parse_scripts(text: str) -> dict[str, str]:
    """``name:key,name2:key2`` -> ``{name: key, ...}``."""
    scripts: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, key = item.partition(":")
        if not sep or not name or not key:
            raise argparse.ArgumentTypeError(f"expected NAME:KEY, got {item!r}")
        scripts[name] = key
    if not scripts:
        raise argparse.ArgumentTypeError("give at least one NAME:KEY")
    return scripts


def add_site_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``site`` command's options to ``parser``."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind: 127.0.0.1 (default), or 0.0.0.0 inside a container so that "
        "the other containers of its stack reach it (plain HTTP: never on a shared network)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port (default 0: any free port, printed at start)"
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="SQLite file to keep the site in (default: temporary)",
    )
    parser.add_argument(
        "--seed", action="store_true", help="create the Demo production if it is not there"
    )
    parser.add_argument(
        "--scripts",
        type=parse_scripts,
        default=None,
        metavar="NAME:KEY,...",
        help="script names and keys accepted (default shotgun_events:local)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="delay every API call by MS milliseconds, like a distant site (default 0)",
    )
    parser.add_argument(
        "--activity",
        type=float,
        default=0.0,
        metavar="RATE",
        help="generate production changes at RATE events/s (0 = off)",
    )
    parser.add_argument(
        "--schema",
        metavar="PATH",
        default=None,
        help="serve a studio's own schema: the schema_read() file mockgun's generate_schema"
        " writes (a pickle, read without running it), or a JSON dump of it (or of both results)",
    )
    parser.add_argument(
        "--schema-entity",
        metavar="PATH",
        default=None,
        help="the schema_entity_read() file written beside it (display names of the types)",
    )
    add_webhook_arguments(parser)


def add_webhook_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that make the site send webhook deliveries."""
    parser.add_argument(
        "--webhook",
        metavar="URL",
        default=None,
        help="POST a signed webhook delivery for every committed event to URL",
    )
    parser.add_argument(
        "--webhook-secret",
        metavar="S",
        default="",
        help="the webhook's secret token (signs X-SG-SIGNATURE)",
    )
    parser.add_argument(
        "--webhook-batch",
        action="store_true",
        help="send in the batched format (up to 50 deliveries per request)",
    )


def webhook_options(args: argparse.Namespace) -> dict[str, Any]:
    """LocalSite keyword arguments from the webhook options."""
    if args.webhook and not args.webhook_secret:
        raise ValueError("--webhook needs --webhook-secret (the site signs every delivery)")
    return {
        "webhook_url": args.webhook,
        "webhook_secret": args.webhook_secret,
        "webhook_batch": args.webhook_batch,
    }


def run_site(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM, then close the database cleanly; returns 0."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # the main thread acts on it; nothing else happens in a handler

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            if args.schema_entity and not args.schema:
                raise ValueError("--schema-entity needs --schema (the schema_read() file)")
            site = LocalSite(
                args.db,
                scripts=args.scripts,
                seed=args.seed,
                host=args.host,
                port=args.port,
                **webhook_options(args),
                latency_ms=args.latency,
                schema=args.schema,
                schema_entity=args.schema_entity,
            )
        except ValueError as e:  # a bad option, or a schema file that cannot be used
            print(f"site: {e}", file=sys.stderr, flush=True)
            return 2
        with site:
            if args.activity > 0:
                site.start_activity(args.activity)
            print(
                f"local site serving at {site.url} (scripts: {', '.join(site.scripts)})", flush=True
            )
            while not stop.wait(0.5):
                pass
        print("local site stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
