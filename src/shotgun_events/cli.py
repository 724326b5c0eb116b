"""Command line: ``shotgunEventDaemon [-c CONF] COMMAND``: service, operator, demo and site.

Parsing, wiring and exit codes only; every decision lives in the modules it calls.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shotgun_events import __version__
from shotgun_events.errors import ConfigError, ShotgunEventsError

if TYPE_CHECKING:
    from shotgun_events.config.model import Config

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
        help="move plugins' positions; when stopped, also recovers a corrupt state file",
        description="Move plugins' positions: live through the control socket when the "
        "daemon runs, else in the state file (where --all also replaces a corrupt one).",
    )
    reset.add_argument("plugins", nargs="*", metavar="PLUGIN", help="plugin names")
    reset.add_argument("--all", action="store_true", help="every plugin, also ones not seen yet")
    reset.add_argument(
        "--to", required=True, metavar="latest|ID", help="start at event ID, or after the newest"
    )
    _reason_option(reset)

    replay = commands.add_parser(
        "replay",
        help="deliver a range of events to one plugin again (its position does not move)",
    )
    replay.add_argument("plugin", metavar="PLUGIN")
    replay.add_argument("--from-id", type=int, required=True, metavar="N", help="first event")
    replay.add_argument(
        "--to-id", type=int, metavar="M", help="last event (default: the plugin's position)"
    )
    _reason_option(replay)

    skip = commands.add_parser(
        "skip", help="give up the event a switched-off plugin is stuck on (a dead letter)"
    )
    skip.add_argument("plugin", metavar="PLUGIN")
    skip.add_argument("--event", type=int, required=True, metavar="N", help="the event id")
    _reason_option(skip)

    for name, text in (
        ("disable", "switch a plugin off until it is enabled (kept across restarts)"),
        ("enable", "switch on a plugin that was disabled or stopped by a failing callback"),
    ):
        toggle = commands.add_parser(name, help=text, description=text)
        toggle.add_argument("plugin", metavar="PLUGIN")
        _reason_option(toggle)

    reload = commands.add_parser("reload", help="reload one plugin (or all) from its file now")
    reload.add_argument("plugin", nargs="?", metavar="PLUGIN", help="default: every plugin")
    _reason_option(reload)

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

    _worker_command(commands)

    site = commands.add_parser(
        "site", help="run the local site (an embedded stand-in for a real site)"
    )
    from shotgun_events.site.cli import add_site_arguments

    add_site_arguments(site)

    from shotgun_events.testing.commands import add_authoring_commands

    add_authoring_commands(commands)
    return parser


def _worker_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``worker`` sub-command: run plugin callbacks on this machine for a Celery daemon."""
    worker = commands.add_parser(
        "worker",
        help="run plugin callbacks as a Celery worker (for plugins with executor = celery)",
        description="Start a Celery worker that loads the config's plugin folders and runs "
        "the callbacks of the tasks the daemon sends (Ctrl-C or SIGTERM stops it).",
    )
    worker.add_argument(
        "--plugins", default="", metavar="A,B", help="serve only these plugins (default: all)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="callback threads (default 4)"
    )
    worker.add_argument("--hostname", default="", help="Celery node name (default: unique)")


def _worker(config_path: str, args: argparse.Namespace) -> int:
    """Run the ``worker`` sub-command."""
    from pathlib import Path

    from shotgun_events.config.load import load_config
    from shotgun_events.delivery.celery import require_celery

    require_celery("the worker command")
    from shotgun_events.delivery.celery.worker import WorkerOptions, run_worker

    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be 1 or more, not {args.concurrency}")
    plugins = tuple(p.strip() for p in args.plugins.split(",") if p.strip())
    options = WorkerOptions(plugins=plugins, concurrency=args.concurrency, hostname=args.hostname)
    return run_worker(load_config(Path(config_path)), options)


def _reason_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--reason",
        default="",
        metavar="TEXT",
        help="why; written to the log and the audit list (default: 'no reason given')",
    )


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
        from shotgun_events.site.cli import run_site

        return int(run_site(args))
    if command == "demo":
        from shotgun_events.demo import run_demo

        return run_demo(duration=args.duration, rate=args.rate)

    from shotgun_events.app import Options, prepare
    from shotgun_events.config.load import find_config_path, load_config
    from shotgun_events.service import lifecycle as service

    config_path = find_config_path(args.config, os.environ)
    if command in ("try", "capture", "schema-dump"):
        from shotgun_events.testing.commands import run_authoring

        return run_authoring(args, config_path)
    if command == "worker":
        return _worker(str(config_path), args)
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
        launch = service.LaunchOptions(
            pid_file=config.pid_file,
            working_directory=config.path.parent,
            config_path=config_path,
        )
        if command == "start":
            return service.start(prepare=lambda: prepare(config_path, options), launch=launch)
        return service.restart(
            prepare=lambda: prepare(config_path, options),
            launch=launch,
            stop_timeout=args.timeout if args.timeout is not None else config.stop_timeout,
            force=args.force,
        )
    config = load_config(config_path)
    if command == "stop":
        timeout = args.timeout if args.timeout is not None else config.stop_timeout
        return service.stop(pid_file=config.pid_file, timeout=timeout, force=args.force)
    if command == "status":
        from shotgun_events.operator.status import print_status

        return print_status(config, as_json=args.json)
    if command == "reset":
        return _reset(config, args)
    if command in OPERATOR_COMMANDS:
        from shotgun_events.operator.live import run_command

        return run_command(config, command, _operator_args(args), sys.stdout)
    raise AssertionError(f"unhandled command {command}")


OPERATOR_COMMANDS = ("replay", "skip", "enable", "disable", "reload")


def _operator_args(args: argparse.Namespace) -> dict[str, object]:
    """The request arguments of an operator command, named as the control channel names them."""
    found: dict[str, object] = {"plugin": args.plugin, "reason": args.reason}
    if args.command == "replay":
        found.update(from_id=args.from_id, to_id=args.to_id)
    elif args.command == "skip":
        found["event_id"] = args.event
    return found


def _reset(config: Config, args: argparse.Namespace) -> int:
    """Reset through the running daemon, or in the state file when it is stopped."""
    from shotgun_events.service.pidfile import status_process

    if status_process(pid_file=config.pid_file).running:
        from shotgun_events.operator.live import run_command

        request = {"plugins": list(args.plugins), "all": args.all, "to": args.to}
        return run_command(config, "reset", {**request, "reason": args.reason}, sys.stdout)
    from shotgun_events.operator.reset import ResetRequest, run_reset

    reason = args.reason or "no reason given"
    return run_reset(
        config, ResetRequest(tuple(args.plugins), args.all, args.to, reason), sys.stdout
    )


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
