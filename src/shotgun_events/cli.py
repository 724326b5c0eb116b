"""Command line entry point (placeholder until the engine lands)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the shotgunEventDaemon command line."""
    raise SystemExit("shotgunEventDaemon: not wired yet")
