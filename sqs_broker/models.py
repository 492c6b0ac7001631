"""Models: the dashboard's permissions, queue samples, worker telemetry and task revocations."""

from __future__ import annotations

from typing import Any

from django.db import NotSupportedError, models
from django.utils.translation import gettext_lazy as _

#: Most rows one bounded deletion removes per statement, and per run.
PRUNE_CHUNK = 5_000
PRUNE_LIMIT = 100_000


def delete_bounded(
    queryset: models.QuerySet[Any], order_by: str, limit: int = PRUNE_LIMIT, chunk: int = 0
) -> int:
    """Delete the rows of ``queryset``, oldest (by ``order_by``) first: at most ``limit`` a run.

    ``chunk`` rows a statement (default :data:`PRUNE_CHUNK`), so a first prune
    over a long backlog does not hold the table for minutes; the next runs
    take the rest.
    """
    chunk = chunk or PRUNE_CHUNK
    deleted = 0
    while deleted < limit:
        size = min(chunk, limit - deleted)
        ids = list(queryset.order_by(order_by).values_list("pk", flat=True)[:size])
        if not ids:
            break
        count, _ = queryset.model._default_manager.filter(pk__in=ids).delete()
        deleted += count
        if len(ids) < size:
            break
    return deleted


class TimeBucket(models.Func):
    """``floor((epoch seconds of a datetime - offset) / step)``: the time bucket a row falls in.

    Grouping by it lets the database downsample a series to the points a chart
    draws, on SQLite, PostgreSQL and MySQL alike (each spells the epoch its own way).
    """

    output_field = models.BigIntegerField()

    def __init__(self, expression: Any, step: int, offset: int = 0, **extra: Any) -> None:
        if int(step) < 1:
            raise ValueError(f"step must be a whole number of seconds, at least 1; got {step!r}.")
        self.step = int(step)
        # Shifts the bucket edges, e.g. so that the last bucket ends at a given minute.
        self.offset = int(offset) % self.step
        super().__init__(expression, **extra)

    def as_sql(  # noqa: D102
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> Any:
        raise NotSupportedError(
            f"TimeBucket supports SQLite, PostgreSQL and MySQL, not {connection.vendor}."
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # noqa: D102
        # Integer division of a positive integer floors.
        template = (
            f"((CAST(strftime('%%%%s', %(expressions)s) AS INTEGER) - {self.offset}) / {self.step})"
        )
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # noqa: D102
        template = (
            f"FLOOR((EXTRACT(EPOCH FROM %(expressions)s) - {self.offset}) / {self.step})::bigint"
        )
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_mysql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # noqa: D102
        template = f"FLOOR((UNIX_TIMESTAMP(%(expressions)s) - {self.offset}) / {self.step})"
        return super().as_sql(compiler, connection, template=template, **extra)


class Dashboard(models.Model):
    """No table: gives the dashboard a place on the admin index and its permissions."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_dashboard", _("Can view the SQS dashboard")),
            ("purge_queue", _("Can purge SQS queues")),
            ("redrive_queue", _("Can move messages from a dead-letter queue back")),
            # The worker actions, over Celery's remote control (sqs_broker.remote).
            ("revoke_task", _("Can revoke tasks")),
            ("rate_limit_task", _("Can set a task's rate limit on the workers")),
            ("resize_pool", _("Can grow and shrink a worker's pool")),
            ("shutdown_worker", _("Can shut a worker down")),
        ]
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboard")


class QueueSample(models.Model):
    """A queue's depths at one moment, written by ``sqs_sample`` or the beat task."""

    queue = models.CharField(_("queue"), max_length=80)
    sampled_at = models.DateTimeField(_("sampled at"), db_index=True)
    visible = models.PositiveIntegerField(_("visible"))
    in_flight = models.PositiveIntegerField(_("in flight"))
    delayed = models.PositiveIntegerField(_("delayed"))

    class Meta:
        # Covering: the history query reads every column it groups from the index alone.
        indexes = [
            models.Index(
                fields=["queue", "sampled_at", "visible", "in_flight", "delayed"],
                name="sqs_broker_sample_history",
            )
        ]
        ordering = ["queue", "sampled_at"]
        verbose_name = _("queue sample")
        verbose_name_plural = _("queue samples")

    def __str__(self) -> str:
        return f"{self.queue} @ {self.sampled_at:%Y-%m-%d %H:%M:%S}"


class WorkerHeartbeat(models.Model):
    """The last word of one worker process tree, refreshed every telemetry interval."""

    hostname = models.CharField(_("hostname"), max_length=255, unique=True)
    pid = models.PositiveIntegerField(_("pid"))
    pool = models.CharField(_("pool"), max_length=40)
    concurrency = models.PositiveIntegerField(_("concurrency"))
    queues = models.JSONField(_("queues"), default=list)
    started_at = models.DateTimeField(_("started at"))
    last_seen = models.DateTimeField(_("last seen"), db_index=True)
    stopped_at = models.DateTimeField(_("stopped at"), null=True, blank=True)
    processed = models.PositiveBigIntegerField(_("processed"), default=0)
    failed = models.PositiveBigIntegerField(_("failed"), default=0)
    active = models.PositiveIntegerField(_("active"), default=0)
    versions = models.JSONField(_("software versions"), default=dict)
    # The worker's own flush period: "lost" is judged by it, not by the reader's setting.
    interval = models.FloatField(_("heartbeat interval (s)"), default=10.0)
    # The consumer's progress at this heartbeat: {"queues": {name: unix seconds of its last
    # progress}, "stall_after": seconds}; {} when the transport reports none (see
    # sqs_broker.transport.liveness). Beat's row holds its last tick under "(beat)".
    progress = models.JSONField(_("consumer progress"), default=dict, blank=True)

    class Meta:
        ordering = ["hostname"]
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")

    def __str__(self) -> str:
        return self.hostname


class CountColumns(models.Model):
    """The counters of one task on one queue over a period, as every counter table keeps them."""

    received = models.PositiveIntegerField(_("received"), default=0)
    succeeded = models.PositiveIntegerField(_("succeeded"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    retried = models.PositiveIntegerField(_("retried"), default=0)
    redelivered = models.PositiveIntegerField(_("redelivered"), default=0)
    # Messages no task could be made of, moved to a dead-letter or quarantine queue.
    poisoned = models.PositiveIntegerField(_("poison messages"), default=0)
    # Discarded by Celery's revoke path (a revoked id, or the task's own expiry passed).
    revoked = models.PositiveIntegerField(_("revoked"), default=0)
    # Deliveries whose body was stored in S3 (the ExtendedPayloadSize attribute), and its bytes.
    offloaded = models.PositiveIntegerField(_("offloaded to S3"), default=0)
    offloaded_bytes = models.PositiveBigIntegerField(_("offloaded bytes"), default=0)
    runtime_sum = models.FloatField(_("runtime sum (s)"), default=0.0)
    runtime_max = models.FloatField(_("runtime max (s)"), default=0.0)
    # Run-time and queue-wait histograms: observations at or below each bound (cumulative
    # buckets, telemetry.base.BUCKETS), so rows of many minutes and workers add up.
    runtime_count = models.PositiveIntegerField(_("runtimes observed"), default=0)
    runtime_le_0_1 = models.PositiveIntegerField(default=0)
    runtime_le_0_5 = models.PositiveIntegerField(default=0)
    runtime_le_1 = models.PositiveIntegerField(default=0)
    runtime_le_5 = models.PositiveIntegerField(default=0)
    runtime_le_15 = models.PositiveIntegerField(default=0)
    runtime_le_60 = models.PositiveIntegerField(default=0)
    runtime_le_300 = models.PositiveIntegerField(default=0)
    runtime_le_1800 = models.PositiveIntegerField(default=0)
    wait_sum = models.FloatField(_("queue wait sum (s)"), default=0.0)
    wait_count = models.PositiveIntegerField(_("queue waits observed"), default=0)
    wait_le_0_1 = models.PositiveIntegerField(default=0)
    wait_le_0_5 = models.PositiveIntegerField(default=0)
    wait_le_1 = models.PositiveIntegerField(default=0)
    wait_le_5 = models.PositiveIntegerField(default=0)
    wait_le_15 = models.PositiveIntegerField(default=0)
    wait_le_60 = models.PositiveIntegerField(default=0)
    wait_le_300 = models.PositiveIntegerField(default=0)
    wait_le_1800 = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class TaskCounter(CountColumns):
    """Per task, queue and minute: what the workers saw happen."""

    task = models.CharField(_("task"), max_length=255)
    queue = models.CharField(_("queue"), max_length=80)
    minute = models.DateTimeField(_("minute"))

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task", "queue", "minute"], name="sqs_broker_task_minute"
            )
        ]
        # A short window (minute >= start, grouped by task and queue) reads its
        # range of this index; long windows read HourlyTaskCounter instead.
        indexes = [
            models.Index(
                fields=[
                    "minute", "task", "queue", "received", "succeeded", "failed", "retried",
                    "redelivered", "poisoned", "runtime_sum", "runtime_max",
                ],
                name="sqs_broker_counter_window",
            )
        ]  # fmt: skip
        ordering = ["-minute", "task"]
        verbose_name = _("task counter")
        verbose_name_plural = _("task counters")

    def __str__(self) -> str:
        return f"{self.task} [{self.queue}] {self.minute:%Y-%m-%d %H:%M}"


class HourlyTaskCounter(CountColumns):
    """Per task, queue and hour: the minute counters summed as they are written.

    A day's window reads 24 rows per task and queue from here instead of 1,440
    from :class:`TaskCounter` (see :mod:`sqs_broker.telemetry.read`). Every flush
    adds to both tables in one transaction, so the two never disagree.
    """

    task = models.CharField(_("task"), max_length=255)
    queue = models.CharField(_("queue"), max_length=80)
    hour = models.DateTimeField(_("hour"), db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "queue", "hour"], name="sqs_broker_task_hour")
        ]
        ordering = ["-hour", "task"]
        verbose_name = _("hourly task counter")
        verbose_name_plural = _("hourly task counters")

    def __str__(self) -> str:
        return f"{self.task} [{self.queue}] {self.hour:%Y-%m-%d %H}:00"


class Revocation(models.Model):
    """A task id no worker may run until ``expires_at``: see :mod:`sqs_broker.revocations`.

    Kept in the database, not in a worker's memory, so that a worker started
    after the revocation (a new pod after a scale-out) knows it too.
    """

    task_id = models.CharField(_("task id"), max_length=255, unique=True)
    revoked_at = models.DateTimeField(_("revoked at"))
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    revoked_by = models.CharField(_("revoked by"), max_length=150)
    reason = models.CharField(_("reason"), max_length=500, blank=True)

    class Meta:
        ordering = ["-revoked_at", "task_id"]
        verbose_name = _("task revocation")
        verbose_name_plural = _("task revocations")

    def __str__(self) -> str:
        return self.task_id
