"""sqs_broker.findings.predefined: predefined queues and backoff policies."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from sqs_broker import findings
from tests.findings.common import (
    ACCOUNT,
    AWS,
    OfflineCases,
    app_for,
    offline_case_tests,
    predefined,
    url,
)
from tests.support.env import base_env, make_app

OFFLINE: OfflineCases = {
    "sqs_broker.E008": (
        {"env": predefined(other={"url": url("other")})},
        {"env": predefined(celery={"url": url("celery")})},
    ),
    "sqs_broker.W008": (
        {"env": predefined(celery={"url": url("celery")}, stray={"url": url("stray")})},
        {"env": predefined(celery={"url": url("celery")})},
    ),
    "sqs_broker.E009": (
        {
            "env": {
                "SQS_QUEUE_NAME_PREFIX": "prod-",
                **predefined(
                    **{"prod-celery": {"url": url("prod-celery"), "backoff_policy": {"1": 10}}}
                ),
            }
        },
        {"env": predefined(celery={"url": url("celery"), "backoff_policy": {"1": 10}})},
    ),
    "sqs_broker.E010": (
        {"options": {"predefined_queues": {"celery": {"url": url("celery.fifo")}}}},
        {"options": {"predefined_queues": {"celery": {"url": url("celery")}}}},
    ),
    "sqs_broker.E011": (
        {"env": predefined(celery={"url": f"{AWS}/{ACCOUNT}/celery"})},
        {
            "env": {
                "SQS_REGION": "eu-west-1",
                **predefined(celery={"url": f"{AWS}/{ACCOUNT}/celery"}),
            }
        },
    ),
    "sqs_broker.E012": (
        {"env": {"SQS_REGION": "eu-west-1", **predefined(celery={"url": f"{AWS}/123456/celery"})}},
        {
            "env": {
                "SQS_REGION": "eu-west-1",
                **predefined(celery={"url": f"{AWS}/{ACCOUNT}/celery"}),
            }
        },
    ),
    "sqs_broker.W009": (
        {"env": predefined(celery={"url": url("celery"), "backoff_policy": {"1": 10, "3": 30}})},
        {"env": predefined(celery={"url": url("celery"), "backoff_policy": {"1": 10, "2": 30}})},
    ),
    "sqs_broker.E013": (
        {
            "options": {
                "predefined_queues": {
                    "celery": {"url": url("celery"), "backoff_policy": {1: 50000}}
                }
            }
        },
        {
            "options": {
                "predefined_queues": {"celery": {"url": url("celery"), "backoff_policy": {1: 600}}}
            }
        },
    ),
    "sqs_broker.E023": (
        {
            "options": {
                "predefined_queues": {"celery": {"url": url("celery"), "backoff_policy": {"1": 10}}}
            }
        },
        {"env": predefined(celery={"url": url("celery"), "backoff_policy": {"1": 10}})},
    ),
    "sqs_broker.W010": (
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "backoff_policy": {"1": 10},
                    "backoff_tasks": ["no.such.task"],
                }
            )
        },
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "backoff_policy": {"1": 10},
                    "backoff_tasks": ["project.demo.tasks.flaky"],
                }
            )
        },
    ),
    "sqs_broker.W011": (
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "backoff_policy": {"1": 10},
                    "backoff_tasks": ["project.demo.tasks.add"],
                }
            )
        },
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "backoff_policy": {"1": 10},
                    "backoff_tasks": ["project.demo.tasks.add"],
                }
            ),
            "conf": {"task_acks_late": True, "task_acks_on_failure_or_timeout": False},
        },
    ),
}


test_offline__raises_each_id, test_offline__clean_configuration_does_not = offline_case_tests(
    OFFLINE
)


def test_offline__backoff_key_mismatch_names_the_real_queue() -> None:
    """E009 says under which name kombu finds the queue, for a dotted name too."""
    app = app_for(
        options={
            "predefined_queues": {
                "jobs.retry": {"url": url("jobs-retry"), "backoff_policy": {1: 5}}
            }
        },
        task_default_queue="jobs.retry",
    )
    (e009,) = [f for f in findings.offline(app) if f.id == "sqs_broker.E009"]
    assert e009.queue == "jobs.retry" and "'jobs-retry'" in e009.message


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_backoff_key_mismatch__a_real_worker_never_applies_the_policy(
    start_worker: Any, sqs: Any, unique: str, tmp_path: Path
) -> None:
    """With a prefix, the failing task runs once and its message is gone: no backoff, as E009 says.

    The same policy on an unprefixed queue redelivers after 1 s
    (tests/test_backoff.py); here the probe must not run a second time.
    """
    probe = "project.demo.tasks.backoff_probe"
    name = f"{unique}-celery"
    url_ = sqs.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": "30", "ReceiveMessageWaitTimeSeconds": "1"},
    )["QueueUrl"]
    queues = {name: {"url": url_, "backoff_policy": {"1": 1, "2": 1}, "backoff_tasks": [probe]}}
    env = base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_PREDEFINED_QUEUES=json.dumps(queues),
        SQS_WAIT_TIME_SECONDS="1",
        SQS_POLLING_INTERVAL="0",
    )
    app = make_app(env)
    (e009,) = [f for f in findings.offline(app) if f.id == "sqs_broker.E009"]
    assert e009.queue == name

    start_worker(env, queues="celery")
    journal = tmp_path / "deliveries.txt"
    app.send_task(probe, args=(str(journal),), queue="celery")
    deadline = time.monotonic() + 30
    while not journal.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(4)  # the policy would have redelivered after 1 s, and again 1 s later
    assert len(journal.read_text().splitlines()) == 1
    attributes = sqs.get_queue_attributes(QueueUrl=url_, AttributeNames=["All"])["Attributes"]
    # kombu deleted the rejected message: not a backoff task under the routing key "celery".
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
