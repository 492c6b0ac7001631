"""Telemetry's read side, for the faces: workers with their state, task counts over a window,
queues nobody consumes, and the all-time totals the metrics export."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import CharField, ExpressionWrapper, F, QuerySet
from django.utils import timezone

from sqs_broker.models import HourlyTaskCounter, TaskCounter, TimeBucket, WorkerHeartbeat
from sqs_broker.telemetry.base import (
    BASELINE_MINUTE,
    BUCKETS,
    COUNT_FIELDS,
    HOURLY_FROM,
    LOST_AFTER_INTERVALS,
    LOST_SHOWN_FOR,
    SPARKLINE_POINTS,
    Counts,
    bucket_column,
    grouped_counts,
    hour_of,
    minute_of,
)
from sqs_broker.topology import held_queues


def worker_state(
    last_seen: datetime,
    stopped_at: datetime | None,
    interval: float,
    now: datetime,
    progress: Mapping[str, Any] | None = None,
) -> str:
    """``"stopped"`` after a warm shutdown, ``"lost"`` after 3 silent intervals, ``"stalled"``
    when the heartbeat arrives but its consumer made no progress (see :func:`stalled_queues`),
    or ``"alive"``."""
    if stopped_at is not None:
        return "stopped"
    if (now - last_seen).total_seconds() > LOST_AFTER_INTERVALS * interval:
        return "lost"
    if stalled_queues(progress, last_seen):
        return "stalled"
    return "alive"


def stalled_queues(progress: Mapping[str, Any] | None, last_seen: datetime) -> list[str]:
    """The queues whose last progress was older than ``stall_after`` when the heartbeat was written.

    ``progress`` is the heartbeat's (``{"queues": {name: unix seconds}, "stall_after": s}``).
    Judged at the heartbeat's own time, on the worker's clock, as the worker
    judged it: the worker writes a heartbeat as soon as a queue stalls or
    recovers, so a fresh heartbeat is up to date. Empty (the consumer cannot
    be judged) when the transport reports no progress.
    """
    queues, allowance = _progress_of(progress)
    if allowance is None:
        return []
    seen = last_seen.timestamp()
    return sorted(name for name, at in queues.items() if seen - at > allowance)


def _progress_of(progress: Mapping[str, Any] | None) -> tuple[dict[str, float], float | None]:
    """The heartbeat's progress as ``({queue: unix seconds}, stall_after)``, else ``({}, None)``."""
    if not isinstance(progress, Mapping):
        return {}, None
    raw = progress.get("queues")
    allowance = progress.get("stall_after")
    if not isinstance(raw, Mapping) or not isinstance(allowance, int | float) or allowance <= 0:
        return {}, None
    queues = {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}
    return queues, (float(allowance) if queues else None)


def consumer_fields(
    progress: Mapping[str, Any] | None, last_seen: datetime, now: datetime
) -> dict[str, Any]:
    """A worker row's consumer progress: the oldest queue's last progress, the allowance,
    and the queues that stalled (all ``None``/empty when the transport reports none)."""
    queues, allowance = _progress_of(progress)
    oldest = min(queues.values()) if queues else None
    return {
        "last_progress": _iso(datetime.fromtimestamp(oldest, UTC)) if oldest else None,
        "seconds_since_progress": round(now.timestamp() - oldest, 1) if oldest else None,
        "stall_after": allowance,
        "stalled_queues": stalled_queues(progress, last_seen),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def snapshot(window_seconds: float, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Workers and per-task figures over the last ``window_seconds``, JSON-ready.

    Workers: every live one, the ones lost within the last day (or the
    window, if longer) and the ones stopped within the window. Tasks: one
    row per task and queue, summed
    over the minutes of the window by the database, with a sparkline of
    finished tasks per whole time bucket (see :func:`_task_sums`).
    """
    if window_seconds <= 0:
        raise ValueError("window_seconds must be positive")
    now = now or timezone.now()
    since = now - timedelta(seconds=window_seconds)
    lost_since = now - timedelta(seconds=max(window_seconds, LOST_SHOWN_FOR))

    workers = []
    for beat in WorkerHeartbeat.objects.all():
        state = worker_state(beat.last_seen, beat.stopped_at, beat.interval, now, beat.progress)
        if state == "stopped" and beat.stopped_at is not None and beat.stopped_at < since:
            continue
        if state == "lost" and beat.last_seen < lost_since:
            continue  # long gone (a container's random hostname, say): retention prunes it
        workers.append(
            {
                "hostname": beat.hostname,
                "state": state,
                "alive": state == "alive",
                "last_seen": _iso(beat.last_seen),
                "seconds_since_seen": round((now - beat.last_seen).total_seconds(), 1),
                "started_at": _iso(beat.started_at),
                "stopped_at": _iso(beat.stopped_at),
                "pid": beat.pid,
                "pool": beat.pool,
                "concurrency": beat.concurrency,
                "queues": list(beat.queues or []),
                "processed": beat.processed,
                "failed": beat.failed,
                "active": beat.active,
                "interval": beat.interval,
                "versions": dict(beat.versions or {}),
                **consumer_fields(beat.progress, beat.last_seen, now),
            }
        )

    sums, series = _task_sums(since, now, window_seconds)
    tasks = []
    for (task, queue), c in sorted(sums.items(), key=lambda item: (item[0][1], item[0][0])):
        finished = c.succeeded + c.failed + c.retried
        tasks.append(
            {
                "name": task,
                "queue": queue,
                "received": c.received,
                "succeeded": c.succeeded,
                "failed": c.failed,
                "retried": c.retried,
                "redelivered": c.redelivered,
                "poisoned": c.poisoned,
                "revoked": c.revoked,
                "offloaded": c.offloaded,
                "offloaded_bytes": c.offloaded_bytes,
                "runtime_avg": round(c.runtime_sum / finished, 6) if finished else None,
                "runtime_max": round(c.runtime_max, 6) if finished else None,
                "failure_rate": _rate(c.failed, finished),
                "redelivery_rate": _rate(c.redelivered, c.received),
                "series": series[(task, queue)],
            }
        )
    return {"workers": workers, "tasks": tasks}


def _task_sums(
    since: datetime, now: datetime, window_seconds: float
) -> tuple[dict[tuple[str, str], Counts], dict[tuple[str, str], list[int]]]:
    """Each task's counts over the window, and its finished tasks per time bucket.

    Grouped by task, queue and time bucket in the database. A short window
    reads the minute counters (one query); a window of :data:`HOURLY_FROM` or
    more reads whole hours from the hourly counters and the part of its first
    hour from the minute counters (two queries): a day for a hundred tasks is
    then about 2,400 hour rows and at most 5,900 minute rows instead of
    144,000 minute rows. The window's counts add up every bucket; the
    sparkline holds whole buckets only, since the current minute or hour
    (still being counted) and a bucket cut by the start of the window would
    drag the line down.
    """
    first_minute = minute_of(since)
    sums: dict[tuple[str, str], Counts] = {}
    series: dict[tuple[str, str], list[int]] = {}
    if window_seconds < HOURLY_FROM:
        minutes = TaskCounter.objects.filter(minute__gte=first_minute)
        _add_buckets(
            minutes, "minute", 60, first_minute, minute_of(now), window_seconds, sums, series
        )
        return sums, series
    first_hour = hour_of(first_minute)
    if first_hour < first_minute:
        first_hour += timedelta(hours=1)
        head = TaskCounter.objects.filter(minute__gte=first_minute, minute__lt=first_hour)
        # The first hour's part: in the sums, in no bucket of the sparkline.
        _add_buckets(head, "minute", 3600, first_hour, first_hour, window_seconds, sums, {})
    hours = HourlyTaskCounter.objects.filter(hour__gte=first_hour)
    points = _add_buckets(
        hours, "hour", 3600, first_hour, hour_of(now), window_seconds, sums, series
    )
    for key in sums.keys() - series.keys():
        series[key] = [0] * points
    return sums, series


def _add_buckets(
    rows: QuerySet[Any],
    period: str,
    unit: int,
    first_start: datetime,
    current_start: datetime,
    window_seconds: float,
    sums: dict[tuple[str, str], Counts],
    series: dict[tuple[str, str], list[int]],
) -> int:
    """Add ``rows`` (minute or hour counters), grouped in one query, to ``sums`` and ``series``.

    Buckets are ``unit``-second periods (minutes or hours) gathered so that
    the sparkline has at most :data:`SPARKLINE_POINTS` points, and end at
    ``current_start``, the period still being counted: the last whole bucket
    is up to date. Buckets before ``first_start`` are summed, not drawn.
    Returns the number of points of the sparkline.
    """
    step = unit * max(1, -(-int(window_seconds) // (SPARKLINE_POINTS * unit)))
    current = int(current_start.timestamp())
    offset = current % step
    first = -(-(int(first_start.timestamp()) - offset) // step)  # the first whole bucket
    last = (current - offset) // step - 1
    points = max(0, last - first + 1)
    # Grouped by the bucket first (names as expressions keep that order in GROUP BY):
    # SQLite then reads the window's range of the index that leads with the period
    # instead of walking the whole (task, queue, period) unique index in order.
    bucketed = rows.annotate(
        bucket=TimeBucket(period, step, offset),
        task_name=ExpressionWrapper(F("task"), output_field=CharField()),
        queue_name=ExpressionWrapper(F("queue"), output_field=CharField()),
    )
    for row, part in grouped_counts(bucketed, "bucket", "task_name", "queue_name"):
        key = (row["task_name"], row["queue_name"])
        sums.setdefault(key, Counts()).merge(part)
        line = series.setdefault(key, [0] * points)
        index = int(row["bucket"]) - first
        if 0 <= index < points:
            line[index] = part.succeeded + part.failed + part.retried
    return points


def unconsumed(
    queues: Iterable[Mapping[str, Any]], workers: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Queues holding messages that no live worker consumes.

    Dead-letter and quarantine queues (:func:`sqs_broker.topology.held_queues`)
    hold messages for a person, not for a worker: never unconsumed.
    """
    queues = list(queues)
    consumed = {name for w in workers if w.get("alive") for name in w.get("queues") or ()}
    skipped = consumed | held_queues(queues)
    return [
        q["name"]
        for q in queues
        if (q.get("visible") or 0) + (q.get("delayed") or 0) > 0 and q["name"] not in skipped
    ]


def totals() -> list[dict[str, Any]]:
    """Per task and queue, every count ever made: the baseline of pruned hours plus the hours kept.

    What ``/sqs/metrics`` exports as counters and histograms: the sums only
    grow, since pruning folds the hours it deletes into the baseline rows.
    The hour rows hold what the minute rows hold (each flush adds to both),
    so two grouped queries read about 60 times fewer rows than the minutes
    (a week for a hundred tasks: 16,800 hour rows against 1,008,000).
    Buckets are ``[(bound, cumulative count), ..., (None, count)]``, ``None``
    the +Inf bucket; a task whose queue wait was never measured has no wait
    buckets.
    """

    merged: dict[tuple[str, str], Counts] = {}
    for rows in (
        TaskCounter.objects.filter(minute=BASELINE_MINUTE),
        HourlyTaskCounter.objects.all(),
    ):
        for row, part in grouped_counts(rows, "task", "queue"):
            merged.setdefault((row["task"], row["queue"]), Counts()).merge(part)
    found = []
    for (task, queue), total in sorted(merged.items(), key=lambda item: (item[0][1], item[0][0])):
        item: dict[str, Any] = {"name": task, "queue": queue}
        item.update({name: getattr(total, name) for name in COUNT_FIELDS})
        for kind in ("runtime", "wait"):
            count = getattr(total, f"{kind}_count")
            item[f"{kind}_sum"] = round(float(getattr(total, f"{kind}_sum")), 6)
            item[f"{kind}_count"] = count
            item[f"{kind}_buckets"] = (
                [(b, getattr(total, bucket_column(kind, b))) for b in BUCKETS] + [(None, count)]
                if count
                else []
            )
        found.append(item)
    return found
