"""SQS set-ups and reads the tests share: a queue with its DLQ, drain, a queue's state."""

from __future__ import annotations

import json
from typing import Any


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
