"""Command line: ``shotgunEventDaemon [-c CONF] start|stop|restart|status|foreground|demo|site``.

Parsing, wiring and exit codes only; every decision lives in the modules it calls.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ConfigError, ShotgunEventsError

PROG = "shotgunEventDaemon"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run Flow Production Tracking (Shotgun) event plugins.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="config file (default: $SHOTGUN_EVENTS_CONFIG, then next to the program, "
        "then /etc/shotgunEventDaemon.conf)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    for name, text in (
        ("foreground", "run in this terminal (also logs to stderr); Ctrl-C stops"),
        ("start", "start in the background and return once it runs"),
        ("restart", "stop the running daemon, then start it again"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument(
            "--from-id",
            type=int,
            metavar="N",
            help="plugins without a saved position start at event N (default: the newest)",
        )
        if name == "restart":
            _stop_options(command)

    stop = commands.add_parser("stop", help="stop the background daemon")
    _stop_options(stop)
    status = commands.add_parser("status", help="show whether it runs and where each plugin is")
    status.add_argument("--json", action="store_true", help="print JSON")

    reset = commands.add_parser(
        "reset",
        help="move plugins' positions (daemon stopped); also recovers a corrupt state file",
    )
    reset.add_argument("plugins", nargs="*", metavar="PLUGIN", help="plugin names")
    reset.add_argument("--all", action="store_true", help="every plugin, also ones not seen yet")
    reset.add_argument(
        "--to", required=True, metavar="latest|ID", help="start at event ID, or after the newest"
    )
    reset.add_argument("--reason", default="no reason given", help="recorded in the audit log")

    demo = commands.add_parser(
        "demo",
        help="run the example plugins against a local demo site",
        description=(
            "Start a seeded local site with activity and run the daemon with the example "
            "plugins against it, in a temporary folder."
        ),
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="stop after this many seconds (0 = until Ctrl-C; default 30)",
    )
    demo.add_argument(
        "--rate", type=float, default=4.0, help="site activity, events per second (default 4)"
    )

    site = commands.add_parser(
        "site", help="run the local site (an embedded stand-in for a real site)"
    )
    from .site.cli import add_site_arguments

    add_site_arguments(site)
    return parser


def _stop_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="how long to wait (default: stop_timeout)"
    )
    command.add_argument(
        "--force", action="store_true", help="kill the daemon if it has not stopped in time"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ShotgunEventsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "site":
        from .site.cli import run_site

        return int(run_site(args))
    if command == "demo":
        from .demo import run_demo

        return run_demo(duration=args.duration, rate=args.rate)

    from . import service
    from .app import Options, prepare
    from .config import find_config_path, load_config

    config_path = find_config_path(args.config, os.environ)
    if command == "foreground":
        options = Options(foreground=True, from_id=args.from_id)
        config = load_config(config_path)
        return service.foreground(
            pid_file=config.pid_file,
            prepare=lambda: prepare(config_path, options),
            config_path=config_path,
        )
    if command in ("start", "restart"):
        options = Options(foreground=False, from_id=args.from_id)
        try:
            config = load_config(config_path)
        except ConfigError:
            if command == "restart":
                print(
                    f"{PROG}: not restarted; the running daemon (if any) was left alone",
                    file=sys.stderr,
                )
            raise
        start_options = {
            "pid_file": config.pid_file,
            "prepare": lambda: prepare(config_path, options),
            "config_path": config_path,
            "working_directory": config.path.parent,
        }
        if command == "start":
            return service.start(**start_options)  # type: ignore[arg-type]
        return service.restart(
            stop_timeout=args.timeout if args.timeout is not None else config.stop_timeout,
            force=args.force,
            **start_options,  # type: ignore[arg-type]
        )
    config = load_config(config_path)
    if command == "stop":
        timeout = args.timeout if args.timeout is not None else config.stop_timeout
        return service.stop(pid_file=config.pid_file, timeout=timeout, force=args.force)
    if command == "status":
        from .status import print_status

        return print_status(config, as_json=args.json)
    if command == "reset":
        from .reset import ResetRequest, run_reset

        request = ResetRequest(tuple(args.plugins), args.all, args.to, args.reason)
        return run_reset(config, request, sys.stdout)
    raise AssertionError(f"unhandled command {command}")


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
