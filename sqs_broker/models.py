"""Models: the dashboard's permissions, queue samples and worker telemetry."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Dashboard(models.Model):
    """No table: gives the dashboard a place on the admin index and its permissions."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_dashboard", _("Can view the SQS dashboard")),
            ("purge_queue", _("Can purge SQS queues")),
            ("redrive_queue", _("Can move messages from a dead-letter queue back")),
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
        indexes = [models.Index(fields=["queue", "sampled_at"])]
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

    class Meta:
        ordering = ["hostname"]
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")

    def __str__(self) -> str:
        return self.hostname


class TaskCounter(models.Model):
    """Per task, queue and minute: what the workers saw happen."""

    task = models.CharField(_("task"), max_length=255)
    queue = models.CharField(_("queue"), max_length=80)
    minute = models.DateTimeField(_("minute"), db_index=True)
    received = models.PositiveIntegerField(_("received"), default=0)
    succeeded = models.PositiveIntegerField(_("succeeded"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    retried = models.PositiveIntegerField(_("retried"), default=0)
    redelivered = models.PositiveIntegerField(_("redelivered"), default=0)
    # Messages no task could be read from, moved to a dead-letter or quarantine queue.
    poisoned = models.PositiveIntegerField(_("poison messages"), default=0)
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
        constraints = [
            models.UniqueConstraint(
                fields=["task", "queue", "minute"], name="sqs_broker_task_minute"
            )
        ]
        ordering = ["-minute", "task"]
        verbose_name = _("task counter")
        verbose_name_plural = _("task counters")

    def __str__(self) -> str:
        return f"{self.task} [{self.queue}] {self.minute:%Y-%m-%d %H:%M}"
