"""Prometheus text for ``/sqs/metrics``, written with ``prometheus_client``.

Each scrape builds its own :class:`~prometheus_client.CollectorRegistry`
with one collector over the data of :func:`sqs_broker.stats.gather`: nothing
is registered in the global registry, so the numbers are exactly those of
this scrape and several apps in one process do not collide.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

STATES = (("visible", "visible"), ("in_flight", "in_flight"), ("delayed", "delayed"))


class StatsCollector(Collector):
    """Yields gauges for one ``gather()`` result."""

    def __init__(self, data: dict[str, Any]) -> None:
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
            for key, state in STATES:
                if queue.get(key) is not None:
                    messages.add_metric([name, state], queue[key])
            if queue.get("visibility_timeout") is not None:
                visibility.add_metric([name], queue["visibility_timeout"])
            dlq = queue.get("dlq")
            failed = queue.get("error") is not None
            if dlq:
                if dlq.get("visible") is not None:
                    dead.add_metric([name, dlq["name"]], dlq["visible"])
                max_receives.add_metric([name, dlq["name"]], dlq["max_receive_count"])
                failed = failed or dlq.get("error") is not None
            errors.add_metric([name], 1 if failed else 0)
        yield from (messages, dead, max_receives, visibility, errors)
        total = GaugeMetricFamily(
            "sqs_scrape_errors",
            "Errors in this scrape: failed queues plus failures to list queues or run checks.",
        )
        failed_queues = sum(
            1 for q in queues if q.get("error") or (q.get("dlq") or {}).get("error")
        )
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


def registry_for(data: dict[str, Any]) -> CollectorRegistry:
    """A fresh registry holding only this scrape's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(data))
    return registry


def render(data: dict[str, Any]) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry_for(data)), CONTENT_TYPE_LATEST
