"""Prometheus and OpenMetrics text for ``/sqs/metrics``, written with ``prometheus_client``.

Each scrape builds its own :class:`~prometheus_client.CollectorRegistry`
with one collector over the data of :func:`sqs_broker.stats.gather`: nothing
is registered in the global registry, so the numbers are exactly those of
this scrape and several apps in one process do not collide.

Names follow Prometheus' conventions (``promtool check metrics`` passes, a
test runs it on the live endpoint): one prefix ``sqs_broker_``, ``_total``
counters for counts that only grow, ``_seconds`` histograms for durations,
an ``_info`` metric for versions, and no label whose value changes while the
series lives (a worker's state, say). docs/metrics.md lists every family and
the names they replace.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from sqs_broker import __version__
from sqs_broker.schema import Stats
from sqs_broker.telemetry.base import versions
from sqs_broker.topology import held_queues

#: Keys of a queue row that are message counts; each is also its ``state`` label.
STATES = ("visible", "in_flight", "delayed")
#: Task outcomes counted per task and queue (the telemetry's counter columns).
OUTCOMES = ("received", "succeeded", "failed", "retried", "redelivered")

PREFIX = "sqs_broker_"


def _flag(value: bool) -> str:
    return "true" if value else "false"


class StatsCollector(Collector):
    """Yields the metric families of one ``gather()`` result."""

    def __init__(self, data: Stats) -> None:
        self.data = data

    def collect(self) -> Iterator[Metric]:
        yield self.info()
        yield from self.queues()
        yield from self.scrape()
        yield from self.workers()
        yield from self.tasks()
        yield from self.payloads()

    def info(self) -> Metric:
        """``sqs_broker_build_info``: the versions of the process that serves the metrics."""
        family = InfoMetricFamily(
            PREFIX + "build", "Versions of sqs_broker and the software of the serving process."
        )
        family.add_metric([], {"version": __version__, **versions()})
        return family

    def queues(self) -> Iterator[Metric]:
        """Depths, settings, oldest age and backlog per worker of every queue and its DLQ."""
        queues = list(self.data.get("queues", []))
        dead = held_queues(queues)
        labels = ["queue", "dead_letter"]
        messages = GaugeMetricFamily(
            PREFIX + "queue_messages",
            "Approximate messages in the queue by state (visible, in_flight = received "
            "but not deleted, delayed).",
            labels=[*labels, "state"],
        )
        oldest = GaugeMetricFamily(
            PREFIX + "queue_oldest_message_age_seconds",
            "Age of the oldest message in the queue (see "
            "sqs_broker_queue_oldest_message_age_source for where the figure comes from).",
            labels=labels,
        )
        oldest_source = GaugeMetricFamily(
            PREFIX + "queue_oldest_message_age_source",
            "1 for the source of the queue's oldest-message age: cloudwatch = "
            "ApproximateAgeOfOldestMessage, attributes = 0 as SQS counts no message in it, "
            "history = since the samples last saw it empty.",
            labels=["queue", "source"],
        )
        visibility = GaugeMetricFamily(
            PREFIX + "queue_visibility_timeout_seconds",
            "The queue's default visibility timeout.",
            labels=labels,
        )
        redrive = GaugeMetricFamily(
            PREFIX + "queue_max_receives",
            "Receives after which SQS moves a message to the queue's dead-letter queue.",
            labels=["queue", "dead_letter_queue"],
        )
        consumers = GaugeMetricFamily(
            PREFIX + "queue_consumers",
            "Live workers consuming the queue (by their telemetry heartbeats).",
            labels=labels,
        )
        backlog = GaugeMetricFamily(
            PREFIX + "queue_backlog_per_worker",
            "Visible messages divided by the queue's live consumers (by 1 when it has "
            "none): the autoscaling signal.",
            labels=labels,
        )
        unconsumed = GaugeMetricFamily(
            PREFIX + "queue_unconsumed",
            "1 when the queue holds messages and no live worker consumes it.",
            labels=labels,
        )
        errors = GaugeMetricFamily(
            PREFIX + "queue_scrape_error",
            "1 when SQS gave no attributes for the queue in this scrape.",
            labels=labels,
        )
        flagged = set(self.data.get("unconsumed_queues", []))
        seen: set[str] = set()
        for queue in queues:
            name = queue["name"]
            seen.add(name)
            key = [name, _flag(name in dead)]
            depths = (queue.get("visible"), queue.get("in_flight"), queue.get("delayed"))
            for state, depth in zip(STATES, depths, strict=True):
                if depth is not None:
                    messages.add_metric([*key, state], depth)
            age = queue.get("oldest_age")
            if age is not None:
                oldest.add_metric(key, age)
                oldest_source.add_metric([name, queue.get("oldest_age_source") or ""], 1)
            if (timeout := queue.get("visibility_timeout")) is not None:
                visibility.add_metric(key, timeout)
            if (count := queue.get("consumers")) is not None:
                consumers.add_metric(key, count)
            if (backlog_now := queue.get("backlog_per_worker")) is not None:
                backlog.add_metric(key, backlog_now)
            unconsumed.add_metric(key, 1 if name in flagged else 0)
            errors.add_metric(key, 1 if queue.get("error") else 0)
            dlq = queue.get("dlq")
            if dlq:
                redrive.add_metric([name, dlq["name"]], dlq["max_receive_count"])
        # A dead-letter queue the pass read only through its source queue's row.
        for queue in queues:
            dlq = queue.get("dlq")
            if not dlq or dlq["name"] in seen:
                continue
            seen.add(dlq["name"])
            key = [dlq["name"], "true"]
            if (visible := dlq.get("visible")) is not None:
                messages.add_metric([*key, "visible"], visible)
            errors.add_metric(key, 1 if dlq.get("error") else 0)
        yield from (messages, oldest, oldest_source, visibility, redrive)
        yield from (consumers, backlog, unconsumed, errors)

    def scrape(self) -> Iterator[Metric]:
        """Errors of this scrape and the offline findings."""
        queues = self.data.get("queues", [])
        total = GaugeMetricFamily(
            PREFIX + "scrape_errors",
            "Errors in this scrape: failed queues plus failures to list queues or run checks.",
        )
        failed = 0
        for q in queues:
            dlq = q.get("dlq")
            failed += bool(q.get("error") or (dlq and dlq.get("error")))
        total.add_metric([], failed + len(self.data.get("errors", [])))
        yield total
        found = GaugeMetricFamily(
            PREFIX + "findings", "Offline findings of sqs_check, by level.", labels=["level"]
        )
        levels = {"error": 0, "warning": 0, "info": 0}
        for finding in self.data.get("findings", []):
            levels[finding["level"]] = levels.get(finding["level"], 0) + 1
        for level, count in levels.items():
            found.add_metric([level], count)
        yield found

    def workers(self) -> Iterator[Metric]:
        """Workers' heartbeats: liveness, activity and their own since-start counters."""
        labels = ["hostname"]
        info = InfoMetricFamily(
            PREFIX + "worker", "The worker's pool and software versions.", labels=labels
        )
        alive = GaugeMetricFamily(
            PREFIX + "worker_alive",
            "1 while the worker's heartbeat is fresh and its consumer progresses; 0 once it "
            "is stalled, lost or stopped.",
            labels=labels,
        )
        stalled = GaugeMetricFamily(
            PREFIX + "worker_stalled",
            "1 when the worker's heartbeats arrive but its consumer made no progress on some "
            "queue for longer than its stall_after.",
            labels=labels,
        )
        progressed = GaugeMetricFamily(
            PREFIX + "worker_last_progress_timestamp_seconds",
            "Unix time of the consumer's oldest last progress among its queues, at its last "
            "heartbeat (absent when the transport reports none).",
            labels=labels,
        )
        stall_after = GaugeMetricFamily(
            PREFIX + "worker_stall_after_seconds",
            "Seconds of silence after which the worker's consumer counts as stalled.",
            labels=labels,
        )
        lost = GaugeMetricFamily(
            PREFIX + "worker_lost",
            "1 when the worker's heartbeat is older than three of its intervals and it did "
            "not say it stopped.",
            labels=labels,
        )
        seen = GaugeMetricFamily(
            PREFIX + "worker_last_seen_timestamp_seconds",
            "Unix time of the worker's last heartbeat.",
            labels=labels,
        )
        active = GaugeMetricFamily(
            PREFIX + "worker_active_tasks",
            "Tasks the worker was running at its last heartbeat.",
            labels=labels,
        )
        concurrency = GaugeMetricFamily(
            PREFIX + "worker_concurrency", "The worker's pool size.", labels=labels
        )
        processed = CounterMetricFamily(
            PREFIX + "worker_tasks_processed",
            "Tasks the worker finished since it started.",
            labels=labels,
        )
        failed = CounterMetricFamily(
            PREFIX + "worker_tasks_failed",
            "Tasks that failed in the worker since it started.",
            labels=labels,
        )
        for worker in self.data.get("workers", []):
            host = [worker["hostname"]]
            versions = {k: str(v) for k, v in (worker.get("versions") or {}).items()}
            info.add_metric(host, {"pool": str(worker.get("pool", "")), **versions})
            alive.add_metric(host, 1 if worker["alive"] else 0)
            lost.add_metric(host, 1 if worker.get("state") == "lost" else 0)
            stalled.add_metric(host, 1 if worker.get("state") == "stalled" else 0)
            if worker.get("last_progress"):
                when = datetime.fromisoformat(worker["last_progress"]).timestamp()
                progressed.add_metric(host, when)
            if worker.get("stall_after") is not None:
                stall_after.add_metric(host, worker["stall_after"])
            if worker.get("last_seen"):
                seen.add_metric(host, datetime.fromisoformat(worker["last_seen"]).timestamp())
            active.add_metric(host, worker["active"])
            if worker.get("concurrency") is not None:
                concurrency.add_metric(host, worker["concurrency"])
            started = worker.get("started_at")
            created = datetime.fromisoformat(started).timestamp() if started else None
            processed.add_metric(host, worker["processed"], created=created)
            failed.add_metric(host, worker["failed"], created=created)
        yield from (info, alive, lost, stalled, progressed, stall_after, seen, active)
        yield from (concurrency, processed, failed)

    def tasks(self) -> Iterator[Metric]:
        """Per task and queue: outcome counters and run-time and queue-wait histograms."""
        labels = ["task", "queue"]
        counts = CounterMetricFamily(
            PREFIX + "tasks",
            "Task deliveries by outcome (received, succeeded, failed, retried, "
            "redelivered = ApproximateReceiveCount > 1, poisoned = moved out of the way "
            "undecoded, revoked = discarded unrun by Celery's revoke path, each when any), "
            "over the kept telemetry.",
            labels=[*labels, "outcome"],
        )
        runtime = HistogramMetricFamily(
            PREFIX + "task_runtime_seconds",
            "Run time of finished tasks, over the kept telemetry.",
            labels=labels,
        )
        wait = HistogramMetricFamily(
            PREFIX + "task_queue_wait_seconds",
            "Time from the message's SentTimestamp to the start of the task, over the "
            "kept telemetry.",
            labels=labels,
        )
        for task in self.data.get("task_totals", []):
            key = [task["name"], task["queue"]]
            for outcome in OUTCOMES:
                counts.add_metric([*key, outcome], task[outcome])
            for outcome in ("poisoned", "revoked"):
                if task.get(outcome):
                    counts.add_metric([*key, outcome], task[outcome])
            for family, prefix in ((runtime, "runtime"), (wait, "wait")):
                buckets = task.get(f"{prefix}_buckets")
                if buckets:
                    family.add_metric(
                        key,
                        buckets=[(_le(bound), count) for bound, count in buckets],
                        sum_value=task.get(f"{prefix}_sum") or 0.0,
                    )
        yield from (counts, runtime, wait)

    def payloads(self) -> Iterator[Metric]:
        """Large messages per queue: offloaded ones received (all time), objects in the bucket.

        Nothing at all when no large-payload bucket is configured.
        """
        found = self.data.get("payloads")
        if found is None:
            return
        messages = CounterMetricFamily(
            PREFIX + "queue_offloaded_messages",
            "Deliveries whose body was stored in S3 (ExtendedPayloadSize), as workers received "
            "them (redeliveries again), over the kept telemetry.",
            labels=["queue"],
        )
        sizes = CounterMetricFamily(
            PREFIX + "queue_offloaded_bytes",
            "Bytes stored in S3 for the offloaded deliveries workers received, over the kept "
            "telemetry.",
            labels=["queue"],
        )
        sums: dict[str, list[int]] = {}
        for task in self.data.get("task_totals", []):
            if task.get("offloaded"):
                counts = sums.setdefault(task["queue"], [0, 0])
                counts[0] += int(task["offloaded"])
                counts[1] += int(task.get("offloaded_bytes") or 0)
        for queue, (count, size) in sorted(sums.items()):
            messages.add_metric([queue], count)
            sizes.add_metric([queue], size)
        objects = GaugeMetricFamily(
            PREFIX + "payload_stored_objects",
            "Objects under the queue's part of the large-payload prefix: bodies of messages "
            "not yet acknowledged, and any left behind for the sweep.",
            labels=["queue"],
        )
        stored_bytes = GaugeMetricFamily(
            PREFIX + "payload_stored_bytes",
            "Bytes of those objects.",
            labels=["queue"],
        )
        oldest = GaugeMetricFamily(
            PREFIX + "payload_stored_oldest_age_seconds",
            "Age of the oldest of those objects.",
            labels=["queue"],
        )
        for row in found["queues"]:
            key = [row["queue"]]
            objects.add_metric(key, row["stored_objects"])
            stored_bytes.add_metric(key, row["stored_bytes"])
            if row["stored_oldest_age"] is not None:
                oldest.add_metric(key, row["stored_oldest_age"])
        capped = GaugeMetricFamily(
            PREFIX + "payload_listing_capped",
            "1 when the bucket's listing stopped at its page cap: more objects exist than counted.",
        )
        capped.add_metric([], 1 if found["capped"] else 0)
        failed = GaugeMetricFamily(
            PREFIX + "payload_listing_error",
            "1 when the large-payload bucket could not be listed in this scrape.",
        )
        failed.add_metric([], 1 if found["error"] else 0)
        yield from (messages, sizes, objects, stored_bytes, oldest, capped, failed)


def _le(bound: float | None) -> str:
    """A bucket bound as the ``le`` label (``None`` is the ``+Inf`` bucket)."""
    return "+Inf" if bound is None else repr(float(bound))


def registry_for(data: Stats) -> CollectorRegistry:
    """A fresh registry holding only this scrape's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(data))
    return registry


def render(data: Stats, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition text and its content type, by the scraper's ``Accept`` header.

    ``application/openmetrics-text`` in ``accept`` gives OpenMetrics (with
    ``_created`` samples and ``# EOF``); anything else the Prometheus text format.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry_for(data)), content_type
