"""Count events per user and per type, logging a summary every 50 events.

Shows how two callbacks share state: registerCallbacks builds one dict and
passes it as ``args`` to both; the daemon hands it back untouched on every call.
Credentials come from SGDAEMON_EVENTCOUNTER_NAME / SGDAEMON_EVENTCOUNTER_KEY.
"""

import collections
import os

SUMMARY_EVERY = 50


def registerCallbacks(reg):
    """Register the two counters with one shared state dict."""
    name = os.environ.get("SGDAEMON_EVENTCOUNTER_NAME", "shotgun_events")
    key = os.environ.get("SGDAEMON_EVENTCOUNTER_KEY", "local")
    state = {
        "total": 0,
        "byUser": collections.Counter(),
        "byType": collections.Counter(),
    }
    reg.registerCallback(name, key, countByUser, None, state, stopOnError=False)
    reg.registerCallback(name, key, countByType, None, state, stopOnError=False)


def countByUser(sg, logger, event, args):
    """Count the event for the user (or script) that caused it."""
    user = event.get("user") or {}
    who = user.get("name") or f"{user.get('type')} #{user.get('id')}"
    args["byUser"][who] += 1


def countByType(sg, logger, event, args):
    """Count the event by type; runs after countByUser, so it also logs the summary."""
    args["byType"][event.get("event_type")] += 1
    args["total"] += 1
    if args["total"] % SUMMARY_EVERY == 0:
        logger.info(
            "%d events so far; top users: %s; top types: %s",
            args["total"],
            _top(args["byUser"]),
            _top(args["byType"]),
        )


def _top(counter, n=5):
    return ", ".join(f"{k}={v}" for k, v in counter.most_common(n))
