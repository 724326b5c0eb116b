"""Roll task statuses up to their shot: all tasks final -> shot final; work started -> shot ip.

When a Task's ``sg_status_list`` changes, the shot's tasks are read from the
site (not from the event, which may already be stale) and the Shot status is
set when it should change:

- every task of the shot is ``fin`` -> the shot becomes ``fin``;
- otherwise, some task is ``ip`` while the shot is ``wtg`` or ``rdy`` -> ``ip``.

The update is skipped when the shot already has that status, so replaying an
event is harmless. Credentials come from SGDAEMON_SHOTSTATUSROLLUP_NAME /
SGDAEMON_SHOTSTATUSROLLUP_KEY.
"""

import os

STATUS = "sg_status_list"
NOT_STARTED = ("wtg", "rdy")


def registerCallbacks(reg):
    """Register rollupShotStatus for task status changes."""
    reg.registerCallback(
        os.environ.get("SGDAEMON_SHOTSTATUSROLLUP_NAME", "shotgun_events"),
        os.environ.get("SGDAEMON_SHOTSTATUSROLLUP_KEY", "local"),
        rollupShotStatus,
        {"Shotgun_Task_Change": [STATUS]},
        None,
    )


def newShotStatus(shotStatus, taskStatuses):
    """Return the status the shot should get, or None to leave it as it is."""
    if taskStatuses and all(s == "fin" for s in taskStatuses):
        target = "fin"
    elif "ip" in taskStatuses and shotStatus in NOT_STARTED:
        target = "ip"
    else:
        return None
    return None if target == shotStatus else target


def rollupShotStatus(sg, logger, event, args):
    """Update the status of the shot of the task this event changed, if needed."""
    link = event.get("entity")
    if not link:
        logger.debug("event %s: the task no longer exists; nothing to do", event.get("id"))
        return
    task = sg.find_one("Task", [["id", "is", link["id"]]], ["entity"])
    shotLink = task and task.get("entity")
    if not shotLink or shotLink.get("type") != "Shot":
        logger.debug("event %s: task %s is not on a shot; skipped", event.get("id"), link["id"])
        return
    shot = sg.find_one("Shot", [["id", "is", shotLink["id"]]], ["code", STATUS])
    if shot is None:
        return
    tasks = sg.find("Task", [["entity", "is", {"type": "Shot", "id": shot["id"]}]], [STATUS])
    target = newShotStatus(shot.get(STATUS), [t.get(STATUS) for t in tasks])
    if target is None:
        return
    sg.update("Shot", shot["id"], {STATUS: target})
    logger.info(
        "shot %s (#%s): %s -> %s after task %s changed (event %s)",
        shot.get("code"),
        shot["id"],
        shot.get(STATUS),
        target,
        link["id"],
        event.get("id"),
    )
