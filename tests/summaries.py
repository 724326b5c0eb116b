"""The terminal summaries of the suites that run real processes, gathered across workers.

The suite runs on pytest-xdist workers: what the reliability, chaos and container tests
record lives in the worker that ran them. Each worker hands its sections to the
controller when it finishes (``export``), the controller merges them (``absorb``) and
prints each section once at the end (tests/conftest.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from tests.reliability.summary import SUMMARY


class Section(Protocol):
    """A terminal-summary section that can travel from a worker to the controller."""

    title: str

    def export(self) -> Any:
        """What this process recorded, as JSON-able data."""
        ...

    def absorb(self, data: Any) -> None:
        """Add what another process exported."""
        ...

    def lines(self) -> list[str]:
        """The section's text; empty when nothing was recorded."""
        ...


class Lines:
    """A section of text blocks, one per run or step, in the order they were added."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[str] = []

    def append(self, block: str) -> None:
        """Add one block (it may span several lines)."""
        self.blocks.append(block)

    def export(self) -> list[str]:
        """The blocks recorded here."""
        return list(self.blocks)

    def absorb(self, data: Any) -> None:
        """Add the blocks another process recorded."""
        self.blocks.extend(str(block) for block in data)

    def lines(self) -> list[str]:
        """Every block's lines."""
        return [line for block in self.blocks for line in block.splitlines()]


#: Each chaos run's summary (tests/chaos).
CHAOS_RUNS = Lines("chaos summary")
#: How long the base image, the build and each container test took (tests/container).
CONTAINER_TIMINGS = Lines("container tests: timings")
#: Every section, in the order they are printed.
SECTIONS: tuple[Section, ...] = (SUMMARY, CHAOS_RUNS, CONTAINER_TIMINGS)
