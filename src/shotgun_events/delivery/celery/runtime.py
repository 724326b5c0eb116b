"""The worker's side of a task: the plugins it loaded, and running one task's events through them.

``WorkerRuntime.run(spec)`` never raises for a plugin's failure: it runs the
events through the same dispatcher as the daemon (``Dispatcher.attempt``:
connections, session uuid, scope, the in-flight registry), logs a failure
at CRITICAL with its frames on the worker's log, and answers with a
``TaskResult``; the daemon applies the failure policy (retries are re-sent by
the daemon, so order is kept). Each event is claimed, run, and
recorded done in Redis *before* the answer, so a task sent again skips it.
A timer's task runs the plugin's timer once (``Dispatcher.attempt_timer``);
it has no event, so nothing is claimed or recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Protocol

from shotgun_events.client.outage import is_unavailable
from shotgun_events.delivery.celery.codec import (
    BUSY,
    DONE,
    FAILED,
    UNAVAILABLE,
    WRONG_VERSION,
    TaskResult,
    TaskSpec,
)
from shotgun_events.delivery.dispatch import Dispatcher
from shotgun_events.delivery.failures import log_on_worker
from shotgun_events.plugins.loader import Plugin, PluginLoader

log = logging.getLogger("engine.celery.worker")


class Done(Protocol):
    """The idempotency records the runtime needs (store.DoneStore)."""

    def done_among(self, plugin: str, ids: Collection[int]) -> set[int]:
        """Return the ids already done."""
        ...

    def claim(self, plugin: str, event_id: int, owner: str) -> bool:
        """Take the running claim."""
        ...

    def release(self, plugin: str, event_id: int) -> None:
        """Drop the running claim."""
        ...

    def mark_done(self, plugin: str, event_id: int) -> None:
        """Record the event done."""
        ...

    def claim_all(self, plugin: str, ids: list[int], owner: str) -> tuple[set[int], set[int]]:
        """Claim every id; return (claimed, already done)."""
        ...

    def settle(self, plugin: str, done: list[int], release: list[int]) -> None:
        """Record ids done and drop claims."""
        ...


class WorkerRuntime:
    """Plugins loaded on this worker and the running of tasks through them."""

    def __init__(
        self,
        *,
        loader: PluginLoader,
        done: Done,
        dispatcher: Dispatcher,
        hostname: str,
        only: Collection[str] | None = None,
        rescan_every: float = 1.0,
        settle: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._done = done
        self._dispatcher = dispatcher
        self.hostname = hostname
        self._only = set(only) if only else None
        self._rescan_every = rescan_every
        self._settle = settle
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._scanned_at: float | None = None

    def refresh(self, *, force: bool = False) -> None:
        """Rescan the plugin folders (reloading changed files) if due or forced.

        A file written less than ``settle`` seconds ago is left as it is until a later
        rescan (the daemon's watcher debounces the same way), so a plugin is never
        loaded half-written; the first scan loads every file as it finds it.
        """
        with self._lock:
            now = self._monotonic()
            recent = self._scanned_at is not None and now - self._scanned_at < self._rescan_every
            if recent and not force:
                return
            first = self._scanned_at is None
            self._scanned_at = now
            self._loader.scan(settling=() if first else self._loader.written_within(self._settle))

    def plugins(self) -> dict[str, str]:
        """Return name -> sha1 of the active plugins this worker serves."""
        with self._lock:
            return {p.name: p.fingerprint[2] for p in self._served() if p.active}

    def _served(self) -> list[Plugin]:
        return [p for p in self._loader.plugins if self._only is None or p.name in self._only]

    def _find(self, name: str) -> Plugin | None:
        with self._lock:
            # Folders may sit at other paths on other machines: a task names the plugin only.
            return next((p for p in self._served() if p.name == name), None)

    def run(self, spec: TaskSpec) -> TaskResult:
        """Run the task's events in order; stop at the first failing event."""
        self.refresh()
        plugin = self._find(spec.plugin)
        if plugin is not None and plugin.fingerprint[2] != spec.plugin_hash:
            # The file may have changed a moment ago: look again before refusing.
            self.refresh(force=True)
            plugin = self._find(spec.plugin)
        if plugin is None or not plugin.active:
            why = "not loaded here" if plugin is None else f"switched off: {plugin.reason}"
            log.warning("task for plugin %s refused: %s", spec.plugin, why)
            return self._answer(UNAVAILABLE, error=why)
        mine = plugin.fingerprint[2]
        if mine != spec.plugin_hash:
            log.warning(
                "task for plugin %s refused: made for version %s, this worker runs %s (%s); "
                "the daemon sends it again",
                spec.plugin,
                spec.plugin_hash[:12],
                mine[:12],
                plugin.path,
            )
            return self._answer(WRONG_VERSION, worker_hash=mine)
        if spec.timer:
            return self._run_timer(plugin, spec.timer)
        callbacks = list(plugin.callbacks)
        ids = [int(e["id"]) for e in spec.events]
        # One round trip to claim the task's events and see which are done already, one
        # to record them done before answering: a kill in between re-runs at most the
        # events of this task, once.
        claimed, already = self._done.claim_all(spec.plugin, ids, self.hostname)
        handled: list[int] = []
        ran: list[int] = []
        completed: list[int] = []
        try:
            for event in spec.events:
                event_id = int(event["id"])
                if event_id in already:
                    log.info("%s: event %d already done; skipped", spec.plugin, event_id)
                    handled.append(event_id)
                    ran.append(event_id)
                    continue
                matching = [cb for cb in callbacks if cb.matches(event)]
                if not matching:
                    handled.append(event_id)
                    continue
                if event_id not in claimed:
                    log.info(
                        "%s: event %d is running elsewhere; answering busy", spec.plugin, event_id
                    )
                    return self._answer(BUSY, handled=handled, ran=ran, failed_id=event_id)
                failure = self._dispatcher.attempt(plugin, event)
                if failure is not None:
                    callback, error = failure
                    log_on_worker(plugin, callback, event_id, error)
                    return self._answer(
                        FAILED,
                        handled=handled,
                        ran=ran,
                        failed_id=event_id,
                        error=f"{type(error).__name__}: {error}",
                        stop_on_error=callback.stop_on_error,
                        callback=callback.name,
                        callback_index=callbacks.index(callback),
                        unavailable=is_unavailable(error),
                    )
                completed.append(event_id)
                handled.append(event_id)
                ran.append(event_id)
        finally:
            released = sorted(claimed - set(completed))
            self._done.settle(spec.plugin, completed, released)
        return self._answer(DONE, handled=handled, ran=ran, worker_hash=mine)

    def _run_timer(self, plugin: Plugin, name: str) -> TaskResult:
        """Run one of the plugin's timers once; a failure is logged here, decided by the daemon."""
        timer = next((t for t in plugin.timers if t.name == name), None)
        if timer is None:
            log.warning("task for timer %s of plugin %s refused: no such timer", name, plugin.name)
            return self._answer(UNAVAILABLE, error=f"plugin {plugin.name} has no timer {name}")
        failure = self._dispatcher.attempt_timer(plugin, timer)
        if failure is None:
            return self._answer(DONE, worker_hash=plugin.fingerprint[2])
        error = failure.error
        if isinstance(error, BaseException):
            log_on_worker(plugin, timer, None, error)
            error = f"{type(error).__name__}: {error}"
        return self._answer(
            FAILED,
            error=error,
            stop_on_error=timer.stop_on_error,
            callback=timer.name,
            unavailable=failure.unavailable,
        )

    def _answer(
        self,
        status: str,
        *,
        handled: list[int] | None = None,
        ran: list[int] | None = None,
        failed_id: int | None = None,
        error: str = "",
        stop_on_error: bool = False,
        worker_hash: str = "",
        callback: str = "",
        callback_index: int | None = None,
        unavailable: bool = False,
    ) -> TaskResult:
        return TaskResult(
            status=status,
            handled=tuple(handled or ()),
            ran=tuple(ran or ()),
            failed_id=failed_id,
            error=error[:2000],
            stop_on_error=stop_on_error,
            worker=self.hostname,
            worker_hash=worker_hash,
            callback=callback,
            callback_index=callback_index,
            unavailable=unavailable,
        )
