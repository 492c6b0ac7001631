"""Tests of sqs_broker.stats: gather() against the moto server."""

from __future__ import annotations

import json

import pytest

from sqs_broker import stats
from tests.conftest import base_env, make_app


def _app(unique: str, **env: str):
    return make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", **env))


def test_gather__depths_match_messages_sent(sqs, unique):
    """Visible, in flight and delayed counts equal what was sent and received."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=600)
    data = stats.gather(_app(unique), online=False)
    (row,) = [q for q in data["queues"] if q["name"] == f"{unique}-celery"]
    assert (row["visible"], row["in_flight"], row["delayed"]) == (3, 2, 1)
    assert row["error"] is None
    assert row["url"] == url
    json.dumps(data)
