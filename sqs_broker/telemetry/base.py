"""What the recording and the reading sides of telemetry share: its constants, the counts kept
per task, queue and minute, and the worker's fixed description."""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from django.db.models import QuerySet

#: A worker not seen for this many of its intervals shows as lost.
LOST_AFTER_INTERVALS = 3
#: Seconds a lost worker stays on the dashboard (longer when the window is).
LOST_SHOWN_FOR = 86400
#: Attempts of one flush when the database is locked or a deadlock is detected.
FLUSH_ATTEMPTS = 5
#: Attempts of the last flush, on the shutdown path.
STOP_ATTEMPTS = 2
#: Seconds one attempt waits for a locked table. Forks of a prefork pool wait
#: for a running attempt, so this bounds what a locked database costs a task.
LOCK_WAIT = 0.25
#: Counters kept in memory while the database cannot be written; older minutes go first.
MAX_PENDING_KEYS = 20_000
#: Seconds between two retention prunes by one worker.
PRUNE_EVERY = 600.0
#: Points of a task's sparkline, whatever the window (at most: see HOURLY_FROM).
SPARKLINE_POINTS = 30
#: Windows at least this long (seconds) sum whole hours from the hourly counters and
#: only the part of the first hour from the minute counters; their sparklines have
#: whole hours as points (24 for a day).
HOURLY_FROM = 6 * 3600

SOFTWARE = ("celery", "kombu", "boto3", "botocore", "django")

CounterKey = tuple[str, str, datetime]
#: The integer columns of a task counter row.
COUNT_FIELDS = (
    "received", "succeeded", "failed", "retried", "redelivered", "poisoned", "revoked",
    "offloaded", "offloaded_bytes",
)  # fmt: skip
#: The task name poison messages are counted under when no task name could be read from them.
POISON_TASK = "(undecodable)"

#: Upper bounds (seconds) of the run-time and queue-wait histogram buckets. Each
#: bucket column counts the observations at or below its bound (cumulative, as
#: Prometheus has them), so rows add up by plain sums. A change needs a migration.
BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)


def bucket_column(kind: str, bound: float) -> str:
    """The counter column of ``kind`` (``runtime``, ``wait``) for ``bound``: ``runtime_le_0_5``."""
    return f"{kind}_le_{bound:g}".replace(".", "_")


RUNTIME_BUCKETS = tuple(bucket_column("runtime", b) for b in BUCKETS)
WAIT_BUCKETS = tuple(bucket_column("wait", b) for b in BUCKETS)
#: Every column of a task counter row that :class:`Counts` holds, by the same names.
COUNTS_COLUMNS = (
    *COUNT_FIELDS,
    "runtime_sum",
    "runtime_max",
    "runtime_count",
    *RUNTIME_BUCKETS,
    "wait_sum",
    "wait_count",
    *WAIT_BUCKETS,
)
#: The columns that add up (all but ``runtime_max``, which keeps the larger).
ADDITIVE_COLUMNS = tuple(c for c in COUNTS_COLUMNS if c != "runtime_max")


@dataclass
class Counts:
    """What one process saw for one task, queue and minute since the last flush."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    redelivered: int = 0
    poisoned: int = 0
    revoked: int = 0
    #: Deliveries whose body was stored in S3, and the stored bytes (``ExtendedPayloadSize``).
    offloaded: int = 0
    offloaded_bytes: int = 0
    runtime_sum: float = 0.0
    runtime_max: float = 0.0
    runtime_count: int = 0
    runtime_le_0_1: int = 0
    runtime_le_0_5: int = 0
    runtime_le_1: int = 0
    runtime_le_5: int = 0
    runtime_le_15: int = 0
    runtime_le_60: int = 0
    runtime_le_300: int = 0
    runtime_le_1800: int = 0
    #: Queue wait: the message's SentTimestamp to the task's start.
    wait_sum: float = 0.0
    wait_count: int = 0
    wait_le_0_1: int = 0
    wait_le_0_5: int = 0
    wait_le_1: int = 0
    wait_le_5: int = 0
    wait_le_15: int = 0
    wait_le_60: int = 0
    wait_le_300: int = 0
    wait_le_1800: int = 0

    def merge(self, other: Counts) -> None:
        """Add ``other`` in: sums and counts add up, ``runtime_max`` keeps the larger."""
        for name in ADDITIVE_COLUMNS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.runtime_max = max(self.runtime_max, other.runtime_max)


def grouped_counts(rows: QuerySet[Any], *fields: str) -> Iterator[tuple[dict[str, Any], Counts]]:
    """``rows`` (counter rows) grouped by ``fields`` in the database: each group's values and
    its counts, summed (``runtime_max`` the largest). One query, whatever the rows."""
    from django.db.models import Max, Sum

    grouped = (
        rows.order_by()
        .values(*fields)
        .annotate(
            **{f"total_{name}": Sum(name) for name in ADDITIVE_COLUMNS},
            top_runtime=Max("runtime_max"),
        )
    )
    for row in cast(Iterable[dict[str, Any]], grouped):
        counts = Counts(**{name: row[f"total_{name}"] or 0 for name in ADDITIVE_COLUMNS})
        counts.runtime_max = row["top_runtime"] or 0.0
        yield {field: row[field] for field in fields}, counts


def observation(kind: str, seconds: float) -> dict[str, float]:
    """The deltas one ``runtime`` or ``wait`` observation adds: sum, count, its buckets."""
    deltas: dict[str, float] = {f"{kind}_sum": seconds, f"{kind}_count": 1}
    for bound in BUCKETS:
        if seconds <= bound:
            deltas[bucket_column(kind, bound)] = 1
    return deltas


@dataclass
class WorkerInfo:
    """The heartbeat's fixed part, known to the worker's main process."""

    hostname: str
    pid: int
    pool: str
    concurrency: int
    queues: list[str]
    started_at: datetime
    interval: float
    versions: dict[str, str] = field(default_factory=dict)


#: The minute of each task's baseline row: what pruning deleted, summed, so the
#: totals of ``/sqs/metrics`` (counters) never go down. No window reaches back to it.
BASELINE_MINUTE = datetime(1970, 1, 1, tzinfo=UTC)


def minute_of(moment: datetime) -> datetime:
    """The start of ``moment``'s minute: the key of its counter row."""
    return moment.replace(second=0, microsecond=0)


def hour_of(moment: datetime) -> datetime:
    """The start of ``moment``'s hour: the key of its hourly counter row."""
    return moment.replace(minute=0, second=0, microsecond=0)


def versions() -> dict[str, str]:
    """Versions of Python and of the software a worker runs on."""
    found = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
