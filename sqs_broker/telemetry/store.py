"""Telemetry's database side: one additive write per flush, the worker's first heartbeat,
retention pruning, and a bounded wait for a locked table.

Writes are additive (``F()`` increments), so several processes and several
workers can write the same rows at once; rows are touched in a fixed order
so PostgreSQL cannot deadlock two flushes, and "database is locked" from
SQLite is retried. Each attempt waits at most :data:`~sqs_broker.telemetry.base.LOCK_WAIT`
for a lock, so a locked database never holds a worker's forks for long.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, OperationalError, close_old_connections, connection
from django.db import transaction as db_transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from sqs_broker.conf import app_settings
from sqs_broker.telemetry.base import (
    ADDITIVE_COLUMNS,
    BASELINE_MINUTE,
    CounterKey,
    Counts,
    WorkerInfo,
    grouped_counts,
    hour_of,
)

if TYPE_CHECKING:
    from sqs_broker.models import CountColumns

logger = logging.getLogger(__name__)


def _locked(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "deadlock", "lock timeout"))


def write(
    counts: Mapping[CounterKey, Counts],
    hostname: str,
    processed: int = 0,
    failed: int = 0,
    worker: WorkerInfo | None = None,
    active: int = 0,
    stopped: bool = False,
    prune: bool = False,
    lock_wait: float | None = None,
    progress: Mapping[str, Any] | None = None,
) -> bool:
    """One flush: counters, then the heartbeat, in one transaction.

    ``lock_wait`` bounds, in seconds, the wait for a locked table (the
    database's own timeout when None); a longer wait raises "database is
    locked" (SQLite) or "lock timeout" (PostgreSQL). ``progress`` is the
    consumer's (:meth:`~sqs_broker.transport.liveness.Liveness.as_heartbeat`),
    written with the heartbeat; None leaves the stored one as it is.

    Each minute's counts go to its minute row and to its hour's row, which
    long windows read. Rows are always touched in the same order (minute
    counters sorted by key, hour counters sorted by key, then the heartbeat),
    so two flushes on PostgreSQL wait for each other instead of deadlocking.
    Returns False when ``processed``/``failed`` had no heartbeat row to go to.
    """
    from sqs_broker.models import HourlyTaskCounter, TaskCounter, WorkerHeartbeat

    now = timezone.now()
    hours: dict[CounterKey, Counts] = {}
    for (task, queue, minute), c in counts.items():
        hours.setdefault((task, queue, hour_of(minute)), Counts()).merge(c)
    with bounded_lock_wait(lock_wait), db_transaction.atomic():
        _set_lock_timeout(lock_wait)
        for (task, queue, minute), c in sorted(counts.items(), key=lambda item: item[0]):
            _add_row(TaskCounter, "minute", task, queue, minute, c)
        for (task, queue, hour), c in sorted(hours.items(), key=lambda item: item[0]):
            _add_row(HourlyTaskCounter, "hour", task, queue, hour, c)
        held = True
        beat = WorkerHeartbeat.objects.filter(hostname=hostname)
        if worker is not None:
            fields = _heartbeat_fields(worker, now, stopped_at=now if stopped else None)
            if progress is not None:
                fields["progress"] = dict(progress)
            fields.update(
                active=0 if stopped else active,
                processed=F("processed") + processed,
                failed=F("failed") + failed,
            )
            if not beat.update(**fields):
                fields.update(processed=processed, failed=failed)
                try:
                    with db_transaction.atomic():
                        WorkerHeartbeat.objects.create(hostname=hostname, **fields)
                except IntegrityError:
                    beat.update(**fields)
        elif processed or failed:
            held = bool(
                beat.update(processed=F("processed") + processed, failed=F("failed") + failed)
            )
        if prune:
            prune_old(now)
    return held


def _add_row(
    model: type[CountColumns], period: str, task: str, queue: str, start: datetime, c: Counts
) -> None:
    """Add ``c`` to ``model``'s row of (task, queue, ``period`` = start), creating it if needed."""
    changes: dict[str, Any] = {name: F(name) + getattr(c, name) for name in ADDITIVE_COLUMNS}
    changes["runtime_max"] = Greatest(F("runtime_max"), c.runtime_max)
    key = {"task": task[:255], "queue": queue[:80], period: start}
    rows = model._default_manager.filter(**key)
    if rows.update(**changes):
        return
    try:
        with db_transaction.atomic():
            model._default_manager.create(**key, **asdict(c))
    except IntegrityError:
        # Another process created the row between our update and insert.
        rows.update(**changes)


def _heartbeat_fields(
    worker: WorkerInfo, now: datetime, stopped_at: datetime | None
) -> dict[str, Any]:
    """The heartbeat columns the worker's fixed part and this moment decide."""
    return {
        "pid": worker.pid,
        "pool": worker.pool,
        "concurrency": worker.concurrency,
        "queues": worker.queues,
        "started_at": worker.started_at,
        "last_seen": now,
        "stopped_at": stopped_at,
        "interval": worker.interval,
        "versions": worker.versions,
    }


def prune_old(now: datetime | None = None) -> tuple[int, int]:
    """Delete counters and heartbeats older than ``SQS_BROKER_RETENTION_DAYS`` (0 keeps all).

    Returns the counter rows (minutes and hours) and the heartbeats deleted.

    Counters go oldest first, whole hours at a time: the minute rows of an
    hour are added to each task's baseline row
    (:data:`~sqs_broker.telemetry.base.BASELINE_MINUTE`) and deleted with the
    hour's row, in one transaction, so the baseline and the hour rows always
    add up to every count ever made (what the metrics export as counters,
    read without the minutes: see :func:`~sqs_broker.telemetry.read.totals`).
    A run takes the hours before the one holding the
    :data:`~sqs_broker.models.PRUNE_LIMIT`-th oldest minute row, at least
    one hour (a week of minute rows for a hundred tasks is a million rows;
    the next runs take the rest). Two pruners must not fold the same rows
    twice: on PostgreSQL a transaction-scoped advisory lock lets one prune
    while the other skips; SQLite serialises the writing transactions (the
    loser's "database is locked" is retried from a fresh read).
    """
    from sqs_broker.models import PRUNE_LIMIT, HourlyTaskCounter, TaskCounter, WorkerHeartbeat

    days = app_settings.RETENTION_DAYS
    if not days:
        return 0, 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    limit = hour_of(cutoff)  # whole hours only: an hour's row goes with all its minutes
    old = TaskCounter.objects.filter(minute__lt=limit, minute__gt=BASELINE_MINUTE)
    with db_transaction.atomic():
        if not _prune_lock():
            return 0, 0
        by_age = old.order_by("minute").values_list("minute", flat=True)
        edge = list(by_age[PRUNE_LIMIT - 1 : PRUNE_LIMIT])
        if edge:
            # Bounded: the hours before the PRUNE_LIMIT-th oldest row's, or the oldest
            # hour alone when it holds more rows than that.
            oldest = by_age[0]  # there is a PRUNE_LIMIT-th row, so a first one
            limit = max(hour_of(edge[0]), hour_of(oldest) + timedelta(hours=1))
        batch = old.filter(minute__lt=limit)
        # Sorted, like every write, so two writers never take rows in different orders.
        folded = grouped_counts(batch, "task", "queue")
        for row, c in sorted(folded, key=lambda group: (group[0]["task"], group[0]["queue"])):
            _add_row(TaskCounter, "minute", row["task"], row["queue"], BASELINE_MINUTE, c)
        counters, _ = batch.delete()
        hours, _ = HourlyTaskCounter.objects.filter(hour__lt=limit).delete()
    beats, _ = WorkerHeartbeat.objects.filter(last_seen__lt=cutoff).delete()
    return counters + hours, beats


#: The advisory lock key of pruning on PostgreSQL ("sqsb" in ASCII).
PRUNE_LOCK_KEY = 0x73717362


def _prune_lock() -> bool:
    """Whether this transaction may prune: always off PostgreSQL, else the advisory lock."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [PRUNE_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def start_worker_heartbeat(
    hostname: str,
    worker: WorkerInfo,
    lock_wait: float | None = None,
    progress: Mapping[str, Any] | None = None,
) -> None:
    """The first heartbeat of a (re)started worker: totals start again from zero.

    ``lock_wait`` bounds the wait for a locked table (see :func:`bounded_lock_wait`);
    ``progress`` is the consumer's so far (none yet: ``{}``).
    """
    from sqs_broker.models import WorkerHeartbeat

    fields = _heartbeat_fields(worker, timezone.now(), stopped_at=None)
    fields.update(processed=0, failed=0, active=0, progress=dict(progress or {}))
    with bounded_lock_wait(lock_wait), db_transaction.atomic():
        _set_lock_timeout(lock_wait)
        WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults=fields)


def with_retries(flush_lock: threading.Lock, attempts: int, work: Any) -> Any:
    """``work()`` under ``flush_lock``, tried again while the database is locked.

    The lock is held for one attempt at a time and the connection closed
    before it is released: a fork (which waits for the lock) never copies an
    open connection, and never waits out the sleeps between attempts.
    """
    for attempt in range(1, attempts + 1):
        try:
            with flush_lock:
                try:
                    close_old_connections()
                    return work()
                finally:
                    # A short-lived connection per attempt: nothing stays open
                    # across a prefork fork, and SQLite's WAL can checkpoint.
                    connection.close()
        except OperationalError as exc:
            if attempt == attempts or not _locked(exc):
                raise
        # Jitter, so workers that collided do not collide again.
        time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))  # noqa: S311
    return None  # not reached: the last attempt returns or raises


@contextmanager
def bounded_lock_wait(seconds: float | None) -> Iterator[None]:
    """SQLite waits at most ``seconds`` for a lock on this connection inside (None: as set).

    The project's SQLite timeout (20 s in the example) suits requests, not
    telemetry: a flush that waits it out holds back every fork of a prefork
    pool. PostgreSQL's bound is set inside the transaction by
    :func:`_set_lock_timeout`.
    """
    if seconds is None or connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield
    finally:
        if connection.connection is raw:  # not closed inside
            raw.execute(f"PRAGMA busy_timeout = {int(previous)}")


def _set_lock_timeout(seconds: float | None) -> None:
    # PostgreSQL waits for a table lock without end by default; LOCAL ends
    # with the transaction, so the connection's other users are untouched.
    if seconds is not None and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)", [f"{int(seconds * 1000)}ms"]
            )
