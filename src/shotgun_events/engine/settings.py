"""The engine's plain data: its knobs (``Settings``), counters (``Stats``) and ``Exit`` reasons."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from datetime import timedelta

from shotgun_events.config.model import DEFAULTS


class Exit(enum.Enum):
    """Why ``Engine.run`` returned."""

    STOP = "stop"
    RELOAD = "reload"


@dataclass(frozen=True)
class Settings:
    """The engine's knobs, taken from the configuration; the defaults are the shipped ones."""

    batch_size: int = DEFAULTS.integer("daemon", "max_event_batch_size")
    fetch_interval: float = DEFAULTS.number("daemon", "fetch_interval")
    #: Seconds between reads while events keep coming (adaptive polling; see pacing.py).
    active_fetch_interval: float = DEFAULTS.number("daemon", "active_fetch_interval")
    backlog_timeout: timedelta = timedelta(seconds=DEFAULTS.number("daemon", "backlog_timeout"))
    backlog_poll_interval: float = DEFAULTS.number("daemon", "backlog_poll_interval")
    start_from_id: int | None = None
    state_retry_interval: float = 5.0
    #: Who leaves the shared lane for a thread of their own (delivery/fanout.py): "serial"
    #: nobody, "auto" a plugin that holds the others, "parallel" every plugin.
    dispatch: str = DEFAULTS.text("daemon", "dispatch")
    #: Seconds a worker may take to finish its current event when the daemon stops.
    stop_grace: float = DEFAULTS.number("daemon", "stop_timeout")
    #: Seconds one callback may run before its stack is logged (0 = never).
    callback_timeout: float = DEFAULTS.number("daemon", "callback_timeout")
    #: Seconds after which a plugin switched off by a failing callback is tried again (0 = never).
    disabled_cooldown: float = DEFAULTS.number("daemon", "disabled_cooldown")
    #: Ask the site only for event types some active callback can match (when all are finite).
    prefilter: bool = DEFAULTS.flag("daemon", "prefilter")
    #: Id windows read at once while catching up (1 = one read at a time; see readahead.py).
    read_ahead: int = DEFAULTS.integer("daemon", "read_ahead")


@dataclass
class Stats:
    """Counters for status output and benchmarks."""

    batches: int = 0
    events_fetched: int = 0
    backlog_reads: int = 0
    #: Wake-ups (webhooks) taken, and how many of them named an event not yet read.
    wakeups: int = 0
    wakeups_wanted: int = 0
    started_at: float = field(default_factory=time.time)
