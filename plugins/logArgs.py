"""Log one INFO line per event: the smallest useful plugin, and a health check of the daemon.

Credentials come from SGDAEMON_LOGARGS_NAME / SGDAEMON_LOGARGS_KEY (defaults:
the local site's default script), as studios keep them out of plugin files.
"""

import os


def registerCallbacks(reg):
    """Register logArgs for every event; a failed log line must not switch the plugin off."""
    reg.registerCallback(
        os.environ.get("SGDAEMON_LOGARGS_NAME", "shotgun_events"),
        os.environ.get("SGDAEMON_LOGARGS_KEY", "local"),
        logArgs,
        matchEvents=None,
        args=None,
        stopOnError=False,
    )


def logArgs(sg, logger, event, args):
    """Log the event's id, type, attribute, entity and user."""
    logger.info(
        "event %s %s attribute=%s entity=%s user=%s",
        event.get("id"),
        event.get("event_type"),
        event.get("attribute_name"),
        _describe(event.get("entity")),
        _describe(event.get("user")),
    )


def _describe(link):
    """Show an entity link as Type #id (name); None for a missing or deleted entity."""
    if not link:
        return None
    name = link.get("name")
    text = f"{link.get('type')} #{link.get('id')}"
    return f"{text} ({name})" if name else text
