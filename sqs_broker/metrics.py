"""Prometheus text for ``/sqs/metrics``, written with ``prometheus_client``.

Each scrape builds its own :class:`~prometheus_client.CollectorRegistry`
with one collector over the data of :func:`sqs_broker.stats.gather`: nothing
is registered in the global registry, so the numbers are exactly those of
this scrape and several apps in one process do not collide.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sqs_broker.schema import Stats

#: Keys of a queue row that are message counts; each is also its ``state`` label.
STATES = ("visible", "in_flight", "delayed")


class StatsCollector(Collector):
    """Yields gauges for one ``gather()`` result."""

    def __init__(self, data: Stats) -> None:
        self.data = data

    def collect(self) -> Iterator[Metric]:
        queues = self.data.get("queues", [])
        messages = GaugeMetricFamily(
            "sqs_queue_messages",
            "Approximate number of messages in the queue, by state "
            "(visible, in_flight = received but not deleted, delayed).",
            labels=["queue", "state"],
        )
        dead = GaugeMetricFamily(
            "sqs_queue_dead_letter_messages",
            "Visible messages in the queue's dead-letter queue.",
            labels=["queue", "dead_letter_queue"],
        )
        max_receives = GaugeMetricFamily(
            "sqs_queue_max_receive_count",
            "Receives after which SQS moves a message to the dead-letter queue.",
            labels=["queue", "dead_letter_queue"],
        )
        visibility = GaugeMetricFamily(
            "sqs_queue_visibility_timeout_seconds",
            "The queue's default visibility timeout.",
            labels=["queue"],
        )
        errors = GaugeMetricFamily(
            "sqs_queue_scrape_error",
            "1 when SQS did not answer for this queue (or its dead-letter queue) in this scrape.",
            labels=["queue"],
        )
        for queue in queues:
            name = queue["name"]
            depths = {
                "visible": queue.get("visible"),
                "in_flight": queue.get("in_flight"),
                "delayed": queue.get("delayed"),
            }
            for state in STATES:
                depth = depths[state]
                if depth is not None:
                    messages.add_metric([name, state], depth)
            timeout = queue.get("visibility_timeout")
            if timeout is not None:
                visibility.add_metric([name], timeout)
            dlq = queue.get("dlq")
            failed = queue.get("error") is not None
            if dlq:
                visible = dlq.get("visible")
                if visible is not None:
                    dead.add_metric([name, dlq["name"]], visible)
                max_receives.add_metric([name, dlq["name"]], dlq["max_receive_count"])
                failed = failed or dlq.get("error") is not None
            errors.add_metric([name], 1 if failed else 0)
        yield from (messages, dead, max_receives, visibility, errors)
        total = GaugeMetricFamily(
            "sqs_scrape_errors",
            "Errors in this scrape: failed queues plus failures to list queues or run checks.",
        )
        failed_queues = 0
        for q in queues:
            dlq = q.get("dlq")
            failed_queues += bool(q.get("error") or (dlq and dlq.get("error")))
        total.add_metric([], failed_queues + len(self.data.get("errors", [])))
        yield total
        found = GaugeMetricFamily(
            "sqs_broker_findings", "Offline findings of sqs_check, by level.", labels=["level"]
        )
        levels = {"error": 0, "warning": 0, "info": 0}
        for finding in self.data.get("findings", []):
            levels[finding["level"]] = levels.get(finding["level"], 0) + 1
        for level, count in levels.items():
            found.add_metric([level], count)
        yield found
        yield from self.telemetry()

    def telemetry(self) -> Iterator[Metric]:
        """Workers' heartbeats and the task counters of the chosen window."""
        window = self.data.get("telemetry_window")
        alive = GaugeMetricFamily(
            "sqs_broker_worker_alive",
            "1 while the worker's heartbeat is fresh; 0 once it is lost or stopped.",
            labels=["hostname", "state", "pool"],
        )
        seen = GaugeMetricFamily(
            "sqs_broker_worker_last_seen_timestamp_seconds",
            "Unix time of the worker's last heartbeat.",
            labels=["hostname"],
        )
        active = GaugeMetricFamily(
            "sqs_broker_worker_active_tasks",
            "Tasks the worker was running at its last heartbeat.",
            labels=["hostname"],
        )
        processed = CounterMetricFamily(
            "sqs_broker_worker_processed",
            "Tasks the worker finished since it started.",
            labels=["hostname"],
        )
        failed = CounterMetricFamily(
            "sqs_broker_worker_failed",
            "Tasks that failed in the worker since it started.",
            labels=["hostname"],
        )
        for worker in self.data.get("workers", []):
            host = worker["hostname"]
            alive.add_metric([host, worker["state"], worker["pool"]], 1 if worker["alive"] else 0)
            if worker.get("last_seen"):
                seen.add_metric([host], datetime.fromisoformat(worker["last_seen"]).timestamp())
            active.add_metric([host], worker["active"])
            processed.add_metric([host], worker["processed"])
            failed.add_metric([host], worker["failed"])
        yield from (alive, seen, active, processed, failed)

        tasks = GaugeMetricFamily(
            "sqs_broker_task_events",
            f"Task deliveries in the last {window} s by outcome (received, succeeded, "
            "failed, retried, redelivered = ApproximateReceiveCount > 1, poisoned = moved "
            "out of the way undecoded).",
            labels=["task", "queue", "outcome"],
        )
        runtime_avg = GaugeMetricFamily(
            "sqs_broker_task_runtime_avg_seconds",
            f"Mean run time of the task in the last {window} s.",
            labels=["task", "queue"],
        )
        runtime_max = GaugeMetricFamily(
            "sqs_broker_task_runtime_max_seconds",
            f"Longest run time of the task in the last {window} s.",
            labels=["task", "queue"],
        )
        for task in self.data.get("tasks", []):
            labels = [task["name"], task["queue"]]
            for outcome in ("received", "succeeded", "failed", "retried", "redelivered"):
                tasks.add_metric([*labels, outcome], task[outcome])
            if task.get("poisoned"):
                tasks.add_metric([*labels, "poisoned"], task["poisoned"])
            if task.get("runtime_avg") is not None:
                runtime_avg.add_metric(labels, task["runtime_avg"])
                runtime_max.add_metric(labels, task["runtime_max"])
        yield from (tasks, runtime_avg, runtime_max)

        unconsumed = GaugeMetricFamily(
            "sqs_broker_queue_unconsumed",
            "1 when the queue holds messages and no live worker consumes it.",
            labels=["queue"],
        )
        flagged = set(self.data.get("unconsumed_queues", []))
        for queue in self.data.get("queues", []):
            unconsumed.add_metric([queue["name"]], 1 if queue["name"] in flagged else 0)
        yield unconsumed


def registry_for(data: Stats) -> CollectorRegistry:
    """A fresh registry holding only this scrape's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(data))
    return registry


def render(data: Stats) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry_for(data)), CONTENT_TYPE_LATEST
