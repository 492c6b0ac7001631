"""SQS set-ups and reads the tests share: a queue with its DLQ, drain, a queue's state, and a
publish retried across a restart of the local SQS."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def queue_with_dlq(
    sqs: Any, name: str, dlq_name: str, max_receive_count: int = 5, **attributes: str
) -> tuple[str, str]:
    """Create ``dlq_name``, then ``name`` redriving to it (plus ``attributes``); both URLs."""
    dlq = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    policy = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": str(max_receive_count)}
    attributes["RedrivePolicy"] = json.dumps(policy)
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, dlq


def drain(sqs: Any, url: str, visibility_timeout: int | None = None) -> list[dict[str, Any]]:
    """Receive every message of ``url`` (all attributes), leaving them in flight; each once."""
    found: dict[str, dict[str, Any]] = {}
    extra = {} if visibility_timeout is None else {"VisibilityTimeout": visibility_timeout}
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
            **extra,
        ).get("Messages", [])
        if not got:
            return list(found.values())
        for message in got:
            found.setdefault(message["MessageId"], message)


def queue_state(name: str, app: Any) -> Any:
    """The attributes of the declared queue ``name``, asserting SQS answered."""
    from sqs_broker import sqs as sqs_module
    from sqs_broker.topology import Topology

    state = sqs_module.fetch_one(sqs_module.QueueRef(name, "declared"), Topology.of(app))
    assert state.error is None, state.error
    return state


def publish_after_restart(send: Callable[[], T], attempts: int = 3, pause: float = 0.5) -> T:
    """``send()``, tried again after ``pause`` s while it fails, ``attempts`` times in all.

    Right after the local SQS restarted empty, the publisher declares the queue
    again if the worker has not yet, and may find the URL the worker declared a
    moment before the server serves it: the worker is on trial, not the publisher.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1; got {attempts}")
    for _ in range(attempts - 1):
        try:
            return send()
        except Exception:
            time.sleep(pause)
    return send()
