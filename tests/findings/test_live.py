"""sqs_broker.findings.live: findings on live queues of the shared moto server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
import sqs_broker.cache
from sqs_broker import findings
from sqs_broker import sqs as sqs_api
from sqs_broker.topology import Topology
from tests.findings.common import (
    app_for,
    ids,
    online_ids,
    predefined,
    url,
)
from tests.support.proxy import Proxy


def make_redrive(sqs: Any, source: str, dlq: str, max_receive: int) -> None:
    dlq_url = sqs.create_queue(QueueName=dlq)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]
    policy = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": str(max_receive)}
    sqs.create_queue(QueueName=source, Attributes={"RedrivePolicy": json.dumps(policy)})


def sqs_clear() -> None:
    sqs_broker.cache.reset()


@pytest.mark.usefixtures("sqs_endpoint")
def test_online__identity_and_missing_declared_queue(unique: str) -> None:
    """I005 names the identity; I006 for a declared queue that does not exist yet."""
    app = app_for({"SQS_QUEUE_NAME_PREFIX": f"{unique}-"})
    found = findings.online(app)
    assert "sqs_broker.I005" in ids(found)
    (i006,) = [f for f in found if f.id == "sqs_broker.I006"]
    assert i006.queue == f"{unique}-celery"


def test_online__existing_queue_with_matching_attributes_is_clean(sqs: Any, unique: str) -> None:
    """A queue created as kombu would create it gives no queue finding."""
    sqs.create_queue(
        QueueName=f"{unique}-celery",
        Attributes={"VisibilityTimeout": "1800", "ReceiveMessageWaitTimeSeconds": "10"},
    )
    found = findings.online(app_for({"SQS_QUEUE_NAME_PREFIX": f"{unique}-"}))
    assert [f for f in found if f.queue] == []
    assert "sqs_broker.I006" not in ids(found)


def test_online__states_given_are_reused(sqs: Any, sqs_endpoint: str, unique: str) -> None:
    """With states from the dashboard, no queue is fetched or listed again."""
    prefix = f"{unique}-"
    make_redrive(sqs, f"{prefix}work", f"{prefix}dlq", 5)
    with Proxy.to(sqs_endpoint) as proxy:
        app = app_for({"SQS_QUEUE_NAME_PREFIX": prefix, "SQS_ENDPOINT_URL": proxy.endpoint_url})
        assert "sqs_broker.I006" not in online_ids(app, states=[])
        topo = Topology.of(app)
        states = sqs_api.fetch(sqs_api.inventory(topo), topo)
        assert proxy.reset_counts()["ListQueues"] == 1
        assert "sqs_broker.I006" in online_ids(app, states=states)
        calls = proxy.reset_counts()
    # The listing is the inventory's, and the dead-letter queue was among the states.
    assert calls["ListQueues"] == 0, calls
    assert calls["GetQueueAttributes"] == calls["GetQueueUrl"] == 0, calls


def test_online__predefined_queue_missing(sqs: Any, unique: str) -> None:
    """E021 for a predefined queue that does not exist; none once it does."""
    app = app_for(predefined(celery={"url": url(unique)}))
    assert "sqs_broker.E021" in online_ids(app)
    sqs.create_queue(QueueName=unique)
    sqs_clear()
    assert "sqs_broker.E021" not in online_ids(app)


def test_online__visibility_timeout_differs(sqs: Any, unique: str) -> None:
    """W016 when the queue's VisibilityTimeout is not the configured one."""
    prefix = f"{unique}-"
    sqs.create_queue(QueueName=f"{prefix}celery", Attributes={"VisibilityTimeout": "60"})
    assert "sqs_broker.W016" in online_ids(app_for({"SQS_QUEUE_NAME_PREFIX": prefix}))
    env = {"SQS_QUEUE_NAME_PREFIX": prefix, "SQS_VISIBILITY_TIMEOUT": "60"}
    assert "sqs_broker.W016" not in online_ids(app_for(env))


def test_online__predefined_queue_timeout_shorter_than_eta(sqs: Any, unique: str) -> None:
    """E006 on a predefined queue whose own VisibilityTimeout is shorter than the longest ETA."""
    sqs.create_queue(QueueName=unique, Attributes={"VisibilityTimeout": "60"})
    app = app_for(predefined(celery={"url": url(unique)}))
    with override_settings(SQS_BROKER_MAX_ETA=1000):
        found = findings.online(app)
    # SQS delays the first 900 s itself; the worker holds the other 100 s.
    assert [f.queue for f in found if f.id == "sqs_broker.E006"] == ["celery"]
    with override_settings(SQS_BROKER_MAX_ETA=900):
        assert "sqs_broker.E006" not in online_ids(app)
    with override_settings(SQS_BROKER_MAX_ETA=600, SQS_BROKER_NATIVE_DELAY=False):
        assert "sqs_broker.E006" in online_ids(app)


def test_online__receive_wait_time_zero(sqs: Any, unique: str) -> None:
    """I007 for a queue with ReceiveMessageWaitTimeSeconds 0 while long polling is configured."""
    prefix = f"{unique}-"
    sqs.create_queue(QueueName=f"{prefix}celery", Attributes={"ReceiveMessageWaitTimeSeconds": "0"})
    found = findings.online(
        app_for({"SQS_QUEUE_NAME_PREFIX": prefix, "SQS_WAIT_TIME_SECONDS": "10"})
    )
    (i007,) = [f for f in found if f.id == "sqs_broker.I007"]
    assert "ReceiveMessageWaitTimeSeconds=10" in i007.hint
    short = {"SQS_QUEUE_NAME_PREFIX": prefix, "SQS_WAIT_TIME_SECONDS": "0"}
    assert "sqs_broker.I007" not in online_ids(app_for(short))


def test_online__fifo_content_based_deduplication(sqs: Any, unique: str) -> None:
    """I008 for a FIFO queue with ContentBasedDeduplication; none without it."""
    for flag, name in (("true", f"{unique}a.fifo"), ("false", f"{unique}b.fifo")):
        sqs.create_queue(
            QueueName=name,
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": flag},
        )
    assert "sqs_broker.I008" in online_ids(app_for(task_default_queue=f"{unique}a.fifo"))
    assert "sqs_broker.I008" not in online_ids(app_for(task_default_queue=f"{unique}b.fifo"))


def test_online__dead_letter_queue_missing(sqs: Any, unique: str) -> None:
    """E022 once the RedrivePolicy's dead-letter queue is deleted; none while it exists."""
    prefix = f"{unique}-"
    make_redrive(sqs, f"{prefix}celery", f"{unique}-dlq", 5)
    app = app_for({"SQS_QUEUE_NAME_PREFIX": prefix})
    assert "sqs_broker.E022" not in online_ids(app)
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=f"{unique}-dlq")["QueueUrl"])
    sqs_clear()
    found = findings.online(app)
    (e022,) = [f for f in found if f.id == "sqs_broker.E022"]
    assert e022.queue == f"{prefix}celery" and f"'{unique}-dlq'" in e022.message


def test_online__backoff_beyond_max_receive_count(sqs: Any, unique: str) -> None:
    """W012 when the policy plans more attempts than maxReceiveCount allows."""
    policy = {"1": 10, "2": 20, "3": 40, "4": 80}
    make_redrive(sqs, unique, f"{unique}-dlq", 3)
    make_redrive(sqs, f"{unique}-ok", f"{unique}-okdlq", 5)
    short = app_for(predefined(celery={"url": url(unique), "backoff_policy": policy}))
    found = findings.online(short)
    (w012,) = [f for f in found if f.id == "sqs_broker.W012"]
    assert "up to 5" in w012.message and "after 3 receives" in w012.message
    long = app_for(predefined(celery={"url": url(f"{unique}-ok"), "backoff_policy": policy}))
    assert "sqs_broker.W012" not in online_ids(long)


def test_online__leftover_pidbox_and_event_queues(sqs: Any, unique: str) -> None:
    """W017 for queues remote control and events left under the prefix."""
    prefix = f"{unique}-"
    app = app_for({"SQS_QUEUE_NAME_PREFIX": prefix})
    assert "sqs_broker.W017" not in online_ids(app)
    sqs.create_queue(QueueName=f"{prefix}celeryev-0f1e2d")
    sqs.create_queue(QueueName=f"{prefix}w1_host-celery-pidbox")
    (w017,) = [f for f in findings.online(app) if f.id == "sqs_broker.W017"]
    assert w017.message.startswith("2 ")


def test_online__discovered_queues_get_only_dead_letter_checks(sqs: Any, unique: str) -> None:
    """A queue found under the prefix (not declared) is not held to the configured timeout."""
    prefix = f"{unique}-"
    sqs.create_queue(QueueName=f"{prefix}elsewhere", Attributes={"VisibilityTimeout": "60"})
    app = app_for({"SQS_QUEUE_NAME_PREFIX": prefix})
    topo = Topology.of(app)
    states = sqs_api.fetch(sqs_api.inventory(topo, discover=True), topo)
    assert f"{prefix}elsewhere" in {s.ref.name for s in states}
    assert not [f for f in findings.online(app, states=states) if f.queue == f"{prefix}elsewhere"]
