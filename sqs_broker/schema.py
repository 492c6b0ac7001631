"""The shapes every face reads: what :func:`sqs_broker.stats.gather` returns.

The dashboard, ``stats.json``, the Prometheus collector and the queue page
read these keys; typing them here lets mypy catch a face that reads a key
the data function no longer writes. Values are JSON-ready (``stats.json``
dumps them as they are).
"""

from __future__ import annotations

from typing import Any, TypedDict


class BackoffRow(TypedDict):
    """One attempt of a backoff policy (see :func:`sqs_broker.backoff.as_rows`)."""

    attempt: int
    delay: int
    cumulative: int


class DeadLetterRow(TypedDict):
    """A queue's dead-letter queue as its RedrivePolicy names it."""

    name: str
    visible: int | None
    max_receive_count: int
    error: str | None


class QueueRow(TypedDict):
    """One queue's attributes, or the error SQS answered with."""

    name: str
    url: str | None
    visible: int | None
    in_flight: int | None
    delayed: int | None
    visibility_timeout: int | None
    receive_wait_time_seconds: int | None
    fifo: bool
    dlq: DeadLetterRow | None
    backoff_policy: list[BackoffRow]
    backoff_tasks: list[str]
    error: str | None
    #: Found by listing the prefix, not declared or predefined: shown, never changed.
    read_only: bool
    #: Seconds the oldest message has waited, and where the figure comes from:
    #: "cloudwatch" (ApproximateAgeOfOldestMessage), "history" (since the samples
    #: last saw the queue empty: an upper bound), "attributes" (empty now: 0).
    oldest_age: float | None
    oldest_age_source: str | None
    #: Live workers consuming the queue, and visible messages per consumer (by 1 when none).
    consumers: int | None
    backlog_per_worker: float | None
    #: Where the transport moves poison messages of a queue without a dead-letter queue.
    quarantine: bool
    #: "task", or remote control's "pidbox" (a worker's mailbox) or "reply" (a client's replies).
    kind: str


class FindingRow(TypedDict):
    """A finding as text (see :class:`sqs_broker.findings.Finding`)."""

    id: str
    level: str
    message: str
    hint: str
    queue: str | None


class UnheldRow(TypedDict):
    """A queue whose in-flight messages no live worker holds (see :mod:`sqs_broker.health`)."""

    queue: str
    in_flight: int


class HealthRow(TypedDict):
    """What needs a person now; ``level`` is ``error``, ``warning`` or ``ok``."""

    level: str
    #: Nothing below needs anyone (``level`` is ``ok``).
    all_clear: bool
    #: Workers (and beat) whose heartbeats arrive but whose consumer made no progress;
    #: then the stalled and lost ones (hostname, state, last_seen, queues, held: tasks
    #: running when last seen).
    stalled_workers: int
    unhealthy_workers: list[dict[str, Any]]
    #: Work queues whose oldest message is older than sqs_alerts' threshold (seconds).
    waiting_queues: list[dict[str, Any]]
    oldest_age_threshold: float
    #: Tasks failing above sqs_alerts' rate, and tasks redelivered often (task, queue, rate).
    failing_tasks: list[dict[str, Any]]
    failure_rate_threshold: float
    redelivered_tasks: list[dict[str, Any]]
    redelivery_rate_threshold: float
    #: Messages in dead-letter queues, and the dead-letter queues holding any.
    dead_letters: int
    dead_letter_queues: list[str]
    lost_workers: int
    unconsumed_queues: list[str]
    error_findings: int
    warning_findings: int
    unheld_in_flight: list[UnheldRow]


class PayloadQueueRow(TypedDict):
    """One queue's large messages (see docs/publishing.md, large messages)."""

    queue: str
    #: Offloaded deliveries the workers received over the telemetry window, and the bytes
    #: stored for them (redeliveries count again, as in ``received``).
    offloaded: int
    offloaded_bytes: int
    #: Objects stored under the queue's part of the prefix: bodies of messages not yet
    #: acknowledged, and any left behind for the sweep; their bytes and the oldest's age (s).
    stored_objects: int
    stored_bytes: int
    stored_oldest_age: float | None


class PayloadsRow(TypedDict):
    """The large-payload bucket's figures; ``Stats.payloads`` is ``None`` without a bucket."""

    bucket: str
    prefix: str
    queues: list[PayloadQueueRow]
    #: Objects listed in all, and whether the listing stopped at its page cap (more exist).
    stored_objects: int
    stored_bytes: int
    capped: bool
    #: When the bucket was listed (ISO 8601), and why the listing failed (the stored
    #: figures are then 0 and the offloaded ones still hold).
    listed_at: str
    error: str | None


class Stats(TypedDict):
    """Everything the dashboard, ``stats.json`` and the metrics show, secrets masked."""

    generated_at: str
    config: dict[str, Any]
    queues: list[QueueRow]
    findings: list[FindingRow]
    errors: list[str]
    #: Seconds of telemetry in ``tasks``.
    telemetry_window: int
    #: Worker heartbeats and task figures (see :func:`sqs_broker.telemetry.read.snapshot`).
    workers: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    #: Queues holding messages that no live worker consumes.
    unconsumed_queues: list[str]
    #: Why CloudWatch gave no queue ages (permission denied, say); ``None`` when it did
    #: or was not asked (see ``SQS_BROKER_CLOUDWATCH``).
    cloudwatch_error: str | None
    #: All-time counters and histograms per task and queue (``gather(totals=True)``,
    #: for the metrics; see :func:`sqs_broker.telemetry.read.totals`), else empty.
    task_totals: list[dict[str, Any]]
    #: The summary the dashboard shows first (see :func:`sqs_broker.health.summary`).
    health: HealthRow
    #: Large messages offloaded to S3, per queue; ``None`` when no bucket is configured.
    payloads: PayloadsRow | None


class QueueDetail(TypedDict):
    """One queue's page: its row and the offline findings about it."""

    queue: QueueRow
    findings: list[FindingRow]
    #: The app's queues whose RedrivePolicy names this queue as their dead-letter queue.
    dead_letter_of: list[str]
