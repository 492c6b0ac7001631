"""Queue history: the samples of queue depths, their pruning, and the windows charts draw.

:func:`record` stores one :class:`~sqs_broker.models.QueueSample` per queue a
pass answered for (the pass itself is :func:`sqs_broker.stats.sample`);
:func:`history` reads them back grouped into the time buckets of a
:class:`HistoryWindow`, which the charts take as it is; :func:`history_ages`
estimates how long a queue has held messages when CloudWatch cannot say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.db import connections
from django.db.models import Case, Count, DateTimeField, Max, Min, Q, When

from sqs_broker import cache
from sqs_broker.conf import app_settings
from sqs_broker.models import PRUNE_LIMIT, QueueSample, TimeBucket, delete_bounded

if TYPE_CHECKING:
    from sqs_broker.sqs import QueueState


@dataclass
class SampleResult:
    """What one sampling pass wrote, pruned, and which queues failed (name -> error)."""

    written: int
    pruned: int
    failed: dict[str, str]
    #: Declared queues that do not exist yet (Celery creates them on first use).
    missing: list[str] = field(default_factory=list)


def record(states: Mapping[str, QueueState], when: datetime) -> SampleResult:
    """Store one sample per queue of ``states`` that answered, then prune.

    Queues that fail are skipped (a gap in the chart, not a false zero) and
    reported in ``failed``; queues SQS says do not exist in ``missing``.
    """
    rows = [
        QueueSample(
            queue=name,
            sampled_at=when,
            visible=state.int("ApproximateNumberOfMessages") or 0,
            in_flight=state.int("ApproximateNumberOfMessagesNotVisible") or 0,
            delayed=state.int("ApproximateNumberOfMessagesDelayed") or 0,
        )
        for name, state in states.items()
        if state.error is None
    ]
    QueueSample.objects.bulk_create(rows)
    missing = sorted(name for name, state in states.items() if not state.exists)
    failed = {
        name: state.error
        for name, state in states.items()
        if state.error is not None and state.exists
    }
    return SampleResult(len(rows), prune(when), failed, missing)


def prune(now: datetime | None = None, limit: int | None = None) -> int:
    """Delete samples older than ``SQS_BROKER_RETENTION_DAYS`` (0 keeps them all).

    At most ``limit`` rows a run (default :data:`sqs_broker.models.PRUNE_LIMIT`),
    in chunks: the next runs take the rest (see :func:`~sqs_broker.models.delete_bounded`).
    """
    days = app_settings.RETENTION_DAYS
    if not days:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    old = QueueSample.objects.filter(sampled_at__lt=cutoff)
    return delete_bounded(old, "sampled_at", PRUNE_LIMIT if limit is None else limit)


#: Seconds a live history read is shared (its key also changes every 10 s of the clock).
HISTORY_CACHE_SECONDS = 10

#: Points a history series holds at most: the SQL groups samples into this many time buckets.
HISTORY_POINTS = 120


@dataclass(frozen=True)
class HistoryWindow:
    """The time axis of a history chart: ``start`` to ``end``, in buckets of ``step`` seconds."""

    start: datetime
    end: datetime
    step: int


def history_window(
    hours: float | None = None, now: datetime | None = None, points: int = HISTORY_POINTS
) -> HistoryWindow:
    """The last ``hours`` (default ``SQS_BROKER_HISTORY_HOURS``) up to ``now``, in buckets.

    Buckets are whole multiples of ``step`` seconds since the epoch (at least a
    minute, the sampling period), so two loads a few seconds apart group the
    same samples the same way.
    """
    hours = app_settings.HISTORY_HOURS if hours is None else hours
    end = now or datetime.now(UTC)
    span = max(60.0, hours * 3600)
    step = max(60, -(-int(span) // max(1, points)))
    return HistoryWindow(end - timedelta(seconds=span), end, step)


def history_ages(names: Sequence[str], now: datetime | None = None) -> dict[str, float]:
    """Seconds each queue has held messages without the samples seeing it empty.

    Every message in a queue arrived after the last moment the queue was
    empty, so the time since the last empty sample (visible and in flight
    both 0) bounds the oldest message's age from above, to the sampling
    interval. A queue never seen empty in the kept samples gets the time
    since its first sample. Queues without samples are left out. This is
    the estimate off AWS (or without ``cloudwatch:GetMetricData``); it needs
    ``sqs_sample`` or the beat task running. Peeking a message for its
    SentTimestamp is not used: a receive raises the message's receive count
    and can push it to the dead-letter queue.
    """
    moment = now or datetime.now(UTC)
    found: dict[str, float] = {}
    for name, since in _busy_since(sorted(set(names)), live=now is None).items():
        found[name] = round(max(0.0, (moment - since).total_seconds()), 3)
    return found


def _busy_since(names: list[str], live: bool) -> dict[str, datetime]:
    """Per queue with samples: its last empty sample, else its first sample.

    One grouped query over the covering sample index, whatever the queues.
    Live reads are shared for :data:`HISTORY_CACHE_SECONDS` like the history:
    the marks are moments, so a cached one still gives the age at the time of
    the read.
    """
    if not names:
        return {}
    key = None
    if live and HISTORY_CACHE_SECONDS > 0:
        key = cache.key("busy-since", tuple(names))
        hit = cache.get(key)
        if hit is not None:
            return cast(dict[str, datetime], hit)
    empty = Q(visible=0, in_flight=0)
    rows = (
        QueueSample.objects.filter(queue__in=names)
        .order_by()
        .values("queue")
        .annotate(
            first=Min("sampled_at"),
            last_empty=Max(Case(When(empty, then="sampled_at"), output_field=DateTimeField())),
        )
    )
    marks = {row["queue"]: row["last_empty"] or row["first"] for row in rows}
    if key is not None:
        cache.set_many({key: marks}, HISTORY_CACHE_SECONDS)
    return marks


def history(
    names: list[str],
    hours: float | None = None,
    now: datetime | None = None,
    points: int = HISTORY_POINTS,
    window: HistoryWindow | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Samples per queue over the last ``hours``, grouped by time in the database.

    One query for every queue: each point is one time bucket of
    :func:`history_window` (``t`` its start) with the bucket's highest
    ``visible``, ``in_flight`` and ``delayed`` (a short spike stays visible)
    and ``samples``, how many samples it holds. Buckets without samples are
    absent: the charts show them as gaps, not zeros. A ``window`` given (the one
    the charts draw) replaces ``hours``, ``now`` and ``points``.
    """
    window = window or history_window(hours, now, points)
    series: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    if not names:
        return series
    # Live reads (no ``now``) are shared for HISTORY_CACHE_SECONDS by every viewer and process:
    # samples come once a minute, and the buckets are aligned, so a reload reads the same points.
    key = None
    if now is None and HISTORY_CACHE_SECONDS > 0:
        key = cache.key("history", tuple(names), window.step, int(window.end.timestamp()) // 10)
        hit = cache.get(key)
        if hit is not None:
            return cast(dict[str, list[dict[str, Any]]], hit)
    rows = (
        QueueSample.objects.filter(
            queue__in=names, sampled_at__gte=window.start, sampled_at__lte=window.end
        )
        .annotate(bucket=TimeBucket("sampled_at", window.step))
        .values("queue", "bucket")
        .annotate(
            top_visible=Max("visible"),
            top_in_flight=Max("in_flight"),
            top_delayed=Max("delayed"),
            samples=Count("pk"),
        )
        .order_by("queue", "bucket")
        .values_list("queue", "bucket", "top_visible", "top_in_flight", "top_delayed", "samples")
    )
    # Run as compiled, without Django's per-value converters: every column is a
    # name or an integer already, and 300 queues over 6 hours are about 36,000
    # rows, for which the converters cost about a third of the read.
    sql, params = rows.query.sql_with_params()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    step = window.step
    for queue, bucket, visible, in_flight, delayed, samples in fetched:
        series[queue].append(
            {
                "t": datetime.fromtimestamp(int(bucket) * step, UTC),
                "visible": visible,
                "in_flight": in_flight,
                "delayed": delayed,
                "samples": samples,
            }
        )
    if key is not None:
        cache.set_many({key: series}, HISTORY_CACHE_SECONDS)
    return series
