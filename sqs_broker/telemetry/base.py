"""What the recording and the reading sides of telemetry share: its constants, the counts kept
per task, queue and minute, and the worker's fixed description."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata

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
#: Points of a task's sparkline, whatever the window.
SPARKLINE_POINTS = 30

SOFTWARE = ("celery", "kombu", "boto3", "botocore", "django")

CounterKey = tuple[str, str, datetime]
#: The integer columns of a task counter row.
COUNT_FIELDS = ("received", "succeeded", "failed", "retried", "redelivered")
#: Every column of a task counter row that :class:`Counts` holds, by the same names.
COUNTS_COLUMNS = (*COUNT_FIELDS, "runtime_sum", "runtime_max")


@dataclass
class Counts:
    """What one process saw for one task, queue and minute since the last flush."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    redelivered: int = 0
    runtime_sum: float = 0.0
    runtime_max: float = 0.0

    def merge(self, other: Counts) -> None:
        """Add ``other`` in: sums add up, ``runtime_max`` keeps the larger."""
        self.received += other.received
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.retried += other.retried
        self.redelivered += other.redelivered
        self.runtime_sum += other.runtime_sum
        self.runtime_max = max(self.runtime_max, other.runtime_max)


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


def minute_of(moment: datetime) -> datetime:
    """The start of ``moment``'s minute: the key of its counter row."""
    return moment.replace(second=0, microsecond=0)


def versions() -> dict[str, str]:
    """Versions of Python and of the software a worker runs on."""
    found = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
