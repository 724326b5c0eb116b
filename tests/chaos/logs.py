"""What the logs of a chaos run say: ERROR lines in tight loops, ERROR lines no fault explains.

Every log file the daemon and the workers wrote is read: no ERROR line may
repeat in a tight loop, each must be explained by an injected fault
(``CAUSES``: what each fault leaves in a message), and each garbled task must
be rejected once by a worker and its answer handled once by the daemon's
failure policy.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .driver import Garbled

#: An ERROR line seen more often than this within one second is a tight loop.
LOOP_LIMIT = 10
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d{3} - (\S+) - (ERROR|CRITICAL) - (.*)$")


@dataclass(frozen=True)
class Loop:
    """An ERROR line repeated in a tight loop."""

    file: str
    line: str
    message: str
    most_in_a_second: int
    total: int


def tight_loops(files: Iterable[Path], limit: int = LOOP_LIMIT) -> list[Loop]:
    """ERROR/CRITICAL messages logged more than ``limit`` times within one second."""
    found = []
    for path in files:
        per_second: Counter[tuple[str, str, str]] = Counter()
        totals: Counter[tuple[str, str]] = Counter()
        sample: dict[tuple[str, str], str] = {}
        with open(path, errors="replace") as lines:
            for text in lines:
                match = LOG_LINE.match(text)
                if match is None:
                    continue
                second, logger, _, message = match.groups()
                per_second[(second, logger, message)] += 1
                totals[(logger, message)] += 1
                sample.setdefault((logger, message), text.rstrip())
        worst: dict[tuple[str, str], int] = {}
        for (_, logger, message), n in per_second.items():
            worst[(logger, message)] = max(worst.get((logger, message), 0), n)
        for what, n in worst.items():
            if n > limit:
                found.append(Loop(path.name, sample[what][:400], what[1], n, totals[what]))
    return found


#: What an injected fault leaves in an ERROR message, whatever the sentence around it:
#: the error the site's faults raise (HTTP 500/503, a reset, bad JSON, a timeout), and Redis
#: going away (and Celery's worker exiting over it, which the README allows). An ERROR
#: naming none of them (nor a garbled task) is a finding.
CAUSES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), fault)
    for pattern, fault in (
        (
            r"ProtocolError|ConnectionResetError|RemoteDisconnected|Connection aborted"
            r"|JSONDecodeError|Expecting value|IncompleteRead|BadStatusLine|timed out"
            r"|HTTP 5\d\d",
            "site faults",
        ),
        (
            # redis-py names its connection errors "network:ConnectionError" in a traceback's
            # headline; a worker exiting over Redis also fails to stop its event loop.
            r"[Rr]edis|[Bb]roker|Connection refused|network:\w+Error"
            r"|^Unrecoverable error: |^Error on stopping Hub: ",
            "the Redis restart",
        ),
    )
)


def unexplained_errors(
    files: Iterable[Path], garbled: Iterable[Garbled], loops: Iterable[Loop] = ()
) -> list[str]:
    """ERROR/CRITICAL messages no injected fault explains, with their counts.

    A garbled task explains the messages naming it (a worker rejects it) and the
    failure policy giving its event up. Messages already reported as ``loops``
    are left out, so what caused them shows.
    """
    looping = {loop.message for loop in loops}
    tasks = [g.task_id for g in garbled]
    events = "|".join(str(g.event_id) for g in garbled) or "$^"
    given_up = re.compile(rf"^the task failed on event ({events}) \(.*\); giving it up ")
    found: Counter[str] = Counter()
    for path in files:
        with open(path, errors="replace") as lines:
            for text in lines:
                match = LOG_LINE.match(text)
                if match is None or match.group(4) in looping:
                    continue
                message = match.group(4)
                if any(p.search(message) for p, _ in CAUSES):
                    continue
                if any(task_id in message for task_id in tasks) or given_up.match(message):
                    continue
                found[f"{path.name}: {match.group(2)}: {message[:300]}"] += 1
    return [f"{n} x {line}" for line, n in found.most_common()]


def rejection_findings(files: Iterable[Path], garbled: list[Garbled]) -> list[str]:
    """Each garbled task rejected once by a worker, its answer read once by the daemon.

    The daemon must take the answer once and hand it to the failure policy, which,
    with the shipped ``callback_retries`` (0), gives the event up at once (CRITICAL,
    a dead letter). An answer read again and again is a loop instead, and leaves
    the key stalled.
    """
    rejected: Counter[str] = Counter()
    decided: dict[int, list[str]] = defaultdict(list)
    policy = re.compile(r"the task failed on event (\d+) \(.*\); (retry \d+ of \d+|giving it up)")
    for path in files:
        with open(path, errors="replace") as lines:
            for text in lines:
                rejected.update(
                    g.task_id for g in garbled if f"malformed task {g.task_id} rejected" in text
                )
                match = policy.search(text)
                if match is not None:
                    decided[int(match.group(1))].append(match.group(2))
    findings = []
    for task_id, event_id in ((g.task_id, g.event_id) for g in garbled):
        if rejected[task_id] != 1:
            findings.append(
                f"garbled task {task_id}: rejected by a worker {rejected[task_id]} times, not once"
            )
        if decided[event_id] != ["giving it up"]:
            findings.append(
                f"garbled task {task_id}: its answer should be read once and its event "
                f"{event_id} given up once by the failure policy; the policy decided "
                f"{decided[event_id] or 'nothing'}"
            )
    return findings


def evidence(files: Iterable[Path], ids: list[int], limit: int = 6) -> list[str]:
    """Log lines naming any of ``ids`` (e.g. the first lost events), a few per file."""
    # An id as a word of its own ("event 77", "events 696-77"), not inside a task id.
    named = re.compile(r"(?<!\w)(" + "|".join(map(str, ids)) + r")(?![\w-])")
    lines = []
    for path in files:
        hits = []
        with open(path, errors="replace") as text:
            for line in text:
                if named.search(line.split(" - ", 3)[-1]):
                    hits.append(f"{path.name}: {line.rstrip()[:300]}")
                    if len(hits) >= limit:
                        break
        lines += hits
    return lines
