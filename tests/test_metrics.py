"""Tests of sqs_broker.metrics: Prometheus text from gather(), in a registry per scrape."""

from __future__ import annotations

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from sqs_broker import metrics, stats
from sqs_broker.localsqs import free_port
from tests.conftest import base_env, make_app, queue_with_dlq

TOKEN = "metrics-token-" + "m" * 20


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.django_db
def test_render__depths_dlq_and_visibility(sqs, unique):
    """Messages per state, dead-letter depth and visibility timeout match SQS."""
    url, dlq = queue_with_dlq(
        sqs, f"{unique}-celery", f"{unique}-dlq", max_receive_count=3, VisibilityTimeout="45"
    )
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    sqs.send_message(QueueUrl=dlq, MessageBody="dead")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    body, content_type = metrics.render(stats.gather(app, online=False))
    assert content_type.startswith("text/plain")
    got = _samples(body.decode())
    name = f"{unique}-celery"
    assert got[("sqs_queue_messages", (("queue", name), ("state", "visible")))] == 2
    assert got[("sqs_queue_messages", (("queue", name), ("state", "in_flight")))] == 1
    assert got[("sqs_queue_messages", (("queue", name), ("state", "delayed")))] == 0
    key = (("dead_letter_queue", f"{unique}-dlq"), ("queue", name))
    assert got[("sqs_queue_dead_letter_messages", key)] == 1
    assert got[("sqs_queue_max_receive_count", key)] == 3
    assert got[("sqs_queue_visibility_timeout_seconds", (("queue", name),))] == 45
    assert got[("sqs_queue_scrape_error", (("queue", name),))] == 0
    assert got[("sqs_scrape_errors", ())] == 0


@pytest.mark.django_db
def test_render__errors_counted(unique):
    """An unreachable endpoint gives scrape errors, not an exception."""
    down = f"http://127.0.0.1:{free_port()}"
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=down))
    with override_settings(SQS_BROKER_CONNECT_TIMEOUT=1):
        body, _ = metrics.render(stats.gather(app, online=False))
    got = _samples(body.decode())
    assert got[("sqs_queue_scrape_error", (("queue", f"{unique}-celery"),))] == 1
    assert got[("sqs_scrape_errors", ())] >= 1


def test_render__not_in_global_registry():
    """Scrapes never register anything in prometheus_client's global registry."""
    before = set(REGISTRY._names_to_collectors)
    data = {"queues": [{"name": "q", "visible": 1, "error": None, "dlq": None}], "findings": []}
    metrics.render(data)
    metrics.render(data)
    assert set(REGISTRY._names_to_collectors) == before


@pytest.mark.django_db
def test_metrics_view__token(client, sqs, unique):
    """/sqs/metrics answers the token with the exposition format."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_API_TOKEN=TOKEN):
        response = client.get("/sqs/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    got = _samples(response.content.decode())
    assert got[("sqs_queue_messages", (("queue", f"{unique}-celery"), ("state", "visible")))] == 1
