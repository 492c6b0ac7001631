"""Tests of sqs_broker.metrics: Prometheus text from gather(), in a registry per scrape."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from sqs_broker import metrics, stats
from sqs_broker.localsqs import free_port
from tests.support import promtool
from tests.support.env import base_env, make_app
from tests.support.queues import queue_with_dlq

TOKEN = "metrics-token-" + "m" * 20


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.django_db
def test_render__depths_dlq_and_visibility(sqs, unique):
    """Messages per state, the dead-letter queue as a queue of its own, and settings match SQS."""
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
    work = (("dead_letter", "false"), ("queue", name))
    dead = (("dead_letter", "true"), ("queue", f"{unique}-dlq"))
    assert got[("sqs_broker_queue_messages", (*work, ("state", "visible")))] == 2
    assert got[("sqs_broker_queue_messages", (*work, ("state", "in_flight")))] == 1
    assert got[("sqs_broker_queue_messages", (*work, ("state", "delayed")))] == 0
    assert got[("sqs_broker_queue_messages", (*dead, ("state", "visible")))] == 1
    redrive = (("dead_letter_queue", f"{unique}-dlq"), ("queue", name))
    assert got[("sqs_broker_queue_max_receives", redrive)] == 3
    assert got[("sqs_broker_queue_visibility_timeout_seconds", work)] == 45
    assert got[("sqs_broker_queue_scrape_error", work)] == 0
    assert got[("sqs_broker_scrape_errors", ())] == 0
    # No worker consumes it: the backlog per worker is the whole visible backlog.
    assert got[("sqs_broker_queue_consumers", work)] == 0
    assert got[("sqs_broker_queue_backlog_per_worker", work)] == 2
    assert not any(key[0].startswith("sqs_queue") for key in got)


def test_render__backlog_per_worker_and_histograms():
    """Backlog per worker divides by live consumers; histograms and counters are well formed."""
    data = {
        "queues": [
            {"name": "q", "visible": 9, "error": None, "dlq": None, "consumers": 3,
             "backlog_per_worker": 3.0, "oldest_age": 12.5, "oldest_age_source": "cloudwatch"},
        ],
        "findings": [],
        "workers": [],
        "task_totals": [
            {"name": "t.add", "queue": "q", "received": 4, "succeeded": 3, "failed": 1,
             "retried": 0, "redelivered": 0, "runtime_sum": 1.5,
             "runtime_buckets": [(0.1, 1), (1.0, 3), (None, 4)]},
        ],
    }  # fmt: skip
    got = _samples(metrics.render(data)[0].decode())
    key = (("dead_letter", "false"), ("queue", "q"))
    assert got[("sqs_broker_queue_backlog_per_worker", key)] == 3
    assert got[("sqs_broker_queue_oldest_message_age_seconds", key)] == 12.5
    source = (("queue", "q"), ("source", "cloudwatch"))
    assert got[("sqs_broker_queue_oldest_message_age_source", source)] == 1
    task = (("queue", "q"), ("task", "t.add"))
    assert got[("sqs_broker_tasks_total", (("outcome", "failed"), *task))] == 1
    assert got[("sqs_broker_task_runtime_seconds_bucket", (("le", "1.0"), *task))] == 3
    assert got[("sqs_broker_task_runtime_seconds_bucket", (("le", "+Inf"), *task))] == 4
    assert got[("sqs_broker_task_runtime_seconds_count", task)] == 4
    assert got[("sqs_broker_task_runtime_seconds_sum", task)] == 1.5


def test_render__openmetrics_negotiated():
    """An OpenMetrics Accept header gets openmetrics-text ending in # EOF; others get text."""
    data = {"queues": [], "findings": []}
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    body, content_type = metrics.render(data, accept)
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")
    assert "sqs_broker_build_info{" in body.decode()
    body, content_type = metrics.render(data, "text/plain")
    assert content_type.startswith("text/plain") and "# EOF" not in body.decode()


@pytest.mark.django_db
def test_render__errors_counted(unique):
    """An unreachable endpoint gives scrape errors, not an exception."""
    down = f"http://127.0.0.1:{free_port()}"
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=down))
    with override_settings(SQS_BROKER_CONNECT_TIMEOUT=1):
        body, _ = metrics.render(stats.gather(app, online=False))
    got = _samples(body.decode())
    key = (("dead_letter", "false"), ("queue", f"{unique}-celery"))
    assert got[("sqs_broker_queue_scrape_error", key)] == 1
    assert got[("sqs_broker_scrape_errors", ())] >= 1


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
    key = (("dead_letter", "false"), ("queue", f"{unique}-celery"), ("state", "visible"))
    assert got[("sqs_broker_queue_messages", key)] == 1
    assert "Accept" in [v.strip() for v in response["Vary"].split(",")]


@pytest.mark.django_db
def test_metrics_view__promtool_check_metrics(client, sqs, unique):
    """promtool check metrics finds no problem in the live endpoint, in both formats."""
    from django.utils import timezone

    from sqs_broker.telemetry import base, store

    url, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-dlq")
    sqs.send_message(QueueUrl=url, MessageBody="x")
    # Histograms, counters and worker series in the text too, not only queue gauges.
    counts = base.Counts(received=2, succeeded=1, failed=1)
    for seconds in (0.2, 40.0):
        counts.merge(base.Counts(**base.observation("runtime", seconds)))
        counts.merge(base.Counts(**base.observation("wait", seconds / 2)))
    minute = base.minute_of(timezone.now())
    store.write({("app.add", f"{unique}-celery", minute): counts}, f"w-{unique}@h")
    info = base.WorkerInfo(
        f"w-{unique}@h", 1, "prefork", 2, [f"{unique}-celery"], timezone.now(), 10.0,
        base.versions(),
    )  # fmt: skip
    # A stalled consumer: the liveness series are linted too.
    silent = {"queues": {f"{unique}-celery": time.time() - 60}, "stall_after": 25.0}
    store.start_worker_heartbeat(info.hostname, info, progress=silent)
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_API_TOKEN=TOKEN):
        text = client.get("/sqs/metrics", **headers)
        open_metrics = client.get(
            "/sqs/metrics", HTTP_ACCEPT="application/openmetrics-text", **headers
        )
    body = text.content.decode()
    assert "sqs_broker_task_queue_wait_seconds_bucket{" in body
    assert "sqs_broker_worker_tasks_processed_total{" in body
    assert f'sqs_broker_worker_stalled{{hostname="w-{unique}@h"}} 1.0' in body
    assert f'sqs_broker_worker_stall_after_seconds{{hostname="w-{unique}@h"}} 25.0' in body
    assert "sqs_broker_worker_last_progress_timestamp_seconds{" in body
    result = promtool.run("check", "metrics", stdin=text.content)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
    # promtool lints the Prometheus text format only; OpenMetrics' strict parser reads the other.
    assert open_metrics["Content-Type"].startswith("application/openmetrics-text")
    families = list(openmetrics_families(open_metrics.content.decode()))
    assert {f.name for f in families} >= {"sqs_broker_queue_messages", "sqs_broker_build"}
