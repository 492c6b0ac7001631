"""Worker side of the revocations: the database's revoked task ids in Celery's own revoked set.

:class:`RevocationStep`, a worker bootstep, reads the unexpired ids of
:mod:`sqs_broker.revocations` when the worker is built (before the consumer
takes a message) and puts them into ``celery.worker.state.revoked``, the set
Celery checks before it runs a task. A daemon thread reads them again every
``SQS_BROKER_REVOCATION_REFRESH`` seconds (one query that waits at most
:data:`~sqs_broker.telemetry.base.LOCK_WAIT` for a locked table; expired rows
pruned every :data:`PRUNE_EVERY` seconds) and hands the changes to the worker's event
loop, the thread that reads the set. Celery's own path then does the rest:
"Discarding revoked task", the message acknowledged (deleted from SQS),
``task_revoked`` sent, the result backend told REVOKED.

Only ids this module added are taken out again when their revocation
expires or is withdrawn: an id revoked by remote control stays revoked.
``terminate`` is not offered here: a running task can only be stopped by
remote control, with a pool that can kill it (prefork).

This module runs in workers only (``SQS_BROKER_REVOCATIONS``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import signals
from django.db import connection, connections, transaction

from sqs_broker import revocations
from sqs_broker.celery_types import StartStopStep
from sqs_broker.conf import app_settings
from sqs_broker.telemetry.base import LOCK_WAIT
from sqs_broker.telemetry.store import bounded_lock_wait

logger = logging.getLogger(__name__)

#: Seconds between two deletions of expired revocations by one worker.
PRUNE_EVERY = 600.0
#: Task ids named in one log line; the rest are counted.
LOGGED_IDS = 10


def _ids_text(ids: list[str]) -> str:
    shown = ", ".join(ids[:LOGGED_IDS])
    return shown if len(ids) <= LOGGED_IDS else f"{shown} and {len(ids) - LOGGED_IDS} more"


def _set_lock_timeout(seconds: float) -> None:
    # PostgreSQL waits for a table lock without end by default; LOCAL ends with the transaction.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)", [f"{int(seconds * 1000)}ms"]
            )


class Sync:
    """The revoked ids of the database, kept in Celery's revoked set of this worker."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.pid = os.getpid()
        #: The worker's event loop (kombu's Hub), once the worker has one.
        self.hub: Any = None
        #: Who revoked each id of the database, and why: said when a task is discarded.
        self.known: dict[str, tuple[str, str]] = {}
        #: The ids this module put into Celery's set (not those remote control put there).
        self.added: set[str] = set()
        self.reads = 0
        self._failing = False
        self._last_prune = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Held while a query runs; a fork waits for it (see _before_fork).
        self.read_lock = threading.Lock()

    def read(self) -> dict[str, tuple[str, str]] | None:
        """The unexpired revocations, or None when the database did not answer (logged)."""
        try:
            with self.read_lock:
                try:
                    # A locked table fails the read fast instead of holding the forks back.
                    with bounded_lock_wait(LOCK_WAIT), transaction.atomic():
                        _set_lock_timeout(LOCK_WAIT)
                        found = revocations.active_ids()
                        now = time.monotonic()
                        if now - self._last_prune >= PRUNE_EVERY:
                            self._last_prune = now
                            revocations.prune_expired()
                finally:
                    # No connection may cross a prefork fork (SQLite's locks are per process).
                    connections.close_all()
        except Exception as exc:
            if not self._failing:
                logger.error(
                    "revocations: could not read the revoked task ids (%s); tasks revoked "
                    "since the last read still run here. Trying again every %g s.",
                    exc,
                    self.interval,
                )
            self._failing = True
            return None
        if self._failing:
            logger.warning("revocations: the revoked task ids can be read again.")
            self._failing = False
        self.reads += 1
        return found

    def apply(self, found: dict[str, tuple[str, str]]) -> None:
        """Make Celery's revoked set hold ``found``; in the thread that reads the set."""
        from celery.worker import state

        revoked = state.revoked
        gone = sorted(self.added - found.keys())
        for task_id in gone:
            revoked.discard(task_id)
            self.added.discard(task_id)
        new = []
        for task_id in found:
            # Also re-adds an id Celery's set dropped when it was full (REVOKES_MAX).
            if task_id not in revoked:
                revoked.add(task_id)
                if task_id not in self.added:
                    new.append(task_id)
                self.added.add(task_id)
        self.known = found
        if new:
            logger.info(
                "revocations: %d task id(s) revoked in the database, refused here: %s",
                len(new),
                _ids_text(new),
            )
        if gone:
            logger.info(
                "revocations: %d task id(s) no longer revoked (expired or withdrawn): %s",
                len(gone),
                _ids_text(gone),
            )

    def refresh(self) -> None:
        """Read the database, then apply what it says where the worker reads the set."""
        found = self.read()
        if found is None:
            return
        hub = self.hub
        if hub is not None:
            hub.call_soon(self.apply, found)
        else:
            self.apply(found)

    def start(self) -> None:
        """Start the refresh thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name="sqs_broker-revocations", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def stop(self) -> None:
        """Stop the refresh thread; a read under way ends on its own."""
        self._stop.set()


_sync: Sync | None = None


def current() -> Sync | None:
    """This worker's :class:`Sync`, or None outside a worker's main process."""
    found = _sync
    if found is None or found.pid != os.getpid():
        return None
    return found


class RevocationStep(StartStopStep):
    """Worker bootstep: load the revoked ids before the consumer starts, then keep them fresh."""

    label = "sqs_broker revocations"

    def create(self, parent: Any) -> Sync:
        global _sync
        sync = Sync(app_settings.REVOCATION_REFRESH)
        # Here, while the worker is built: no step has started, so no message was taken.
        found = sync.read()
        if found is not None:
            sync.apply(found)
        _sync = sync
        return sync

    def start(self, parent: Any) -> None:
        """Hand the changes to the worker's event loop, when it has one, and start refreshing."""
        if self.obj is not None:
            self.obj.hub = getattr(parent, "hub", None)
            self.obj.start()


def on_task_revoked(
    sender: Any = None, request: Any = None, expired: bool = False, **kwargs: Any
) -> None:
    """``task_revoked``, in the worker's main process: say who revoked it in the database."""
    sync = current()
    task_id = getattr(request, "id", None)
    if sync is None or not task_id or expired:
        return
    who = sync.known.get(task_id)
    if who is None:
        return
    user, reason = who
    logger.info(
        "Task %s[%s] not run: revoked in the database by %s%s; its message was acknowledged.",
        getattr(sender, "name", "?"),
        task_id,
        user,
        f" ({reason})" if reason else "",
    )


#: Seconds a fork waits for a read under way. SQLite's reads are short; a read that waits on
#: an unreachable database server must not hold the pool's forks (and so the tasks) back.
FORK_WAIT = 1.0
_held_for_fork = False


def _before_fork() -> None:
    # A prefork child must not inherit a connection in use: SQLite's per-process lock
    # bookkeeping would be copied with it (see telemetry.recorder).
    global _held_for_fork
    sync = current()
    _held_for_fork = sync is not None and sync.read_lock.acquire(timeout=FORK_WAIT)


def _after_fork_in_parent() -> None:
    global _held_for_fork
    sync = current()
    if sync is not None and _held_for_fork:
        sync.read_lock.release()
    _held_for_fork = False


def _after_fork_in_child() -> None:
    global _held_for_fork
    sync = _sync  # the parent's, which the child does not use
    if sync is not None and sync.read_lock.locked():
        sync.read_lock.release()
    _held_for_fork = False


_connected = False


def install(app: Any) -> None:
    """Refuse the database's revoked task ids in ``app``'s workers; safe to call twice."""
    global _connected
    app.steps["worker"].add(RevocationStep)
    if _connected:
        return
    signals.task_revoked.connect(on_task_revoked, weak=False)
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
    _connected = True
