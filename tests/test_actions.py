"""Tests of sqs_broker.actions: purge and dead-letter moves, on moto."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

import sqs_broker.cache
from sqs_broker import actions
from sqs_broker import sqs as sqs_module
from sqs_broker.topology import Topology
from tests.support.env import base_env, make_app, prefixed_app
from tests.support.proxy import Proxy
from tests.support.queues import drain, queue_state


def test_purge__once_per_60_seconds(sqs, unique):
    """purge empties the queue; a second purge within 60 s raises PurgeQueueInProgress."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    app = Topology.of(prefixed_app(unique))
    state = queue_state(f"{unique}-celery", app)
    actions.purge(state, app)
    assert drain(sqs, url) == []
    with pytest.raises(ClientError) as raised:
        actions.purge(state, app)
    assert sqs_module.error_text(raised.value)[1].endswith("PurgeQueueInProgress")


def test_start_message_move__unsupported_on_moto(sqs, unique):
    """moto has no StartMessageMoveTask: the caller gets None and falls back."""
    app = Topology.of(prefixed_app(unique))
    sqs.create_queue(QueueName=f"{unique}-a")
    sqs.create_queue(QueueName=f"{unique}-b")
    assert (
        actions.start_message_move(
            queue_state(f"{unique}-b", app), queue_state(f"{unique}-a", app), app
        )
        is None
    )


def test_move_messages__all_once(sqs, unique):
    """Every message moves exactly once, with its attributes, in batches of 10."""
    source = sqs.create_queue(QueueName=f"{unique}-dlq")["QueueUrl"]
    target = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    for i in range(25):
        sqs.send_message(
            QueueUrl=source,
            MessageBody=f"m{i}",
            MessageAttributes={"n": {"DataType": "Number", "StringValue": str(i)}},
        )
    app = Topology.of(prefixed_app(unique))
    result = actions.move_messages(
        queue_state(f"{unique}-dlq", app), queue_state(f"{unique}-celery", app), app
    )
    assert (result.moved, result.failed, result.not_deleted, result.errors) == (25, 0, 0, [])
    moved = drain(sqs, target)
    assert sorted(m["Body"] for m in moved) == sorted(f"m{i}" for i in range(25))
    assert drain(sqs, source) == []


def test_move_messages__limit(sqs, unique):
    """The limit bounds one move; the rest stays in the dead-letter queue."""
    source = sqs.create_queue(QueueName=f"{unique}-dlq")["QueueUrl"]
    target = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    for i in range(12):
        sqs.send_message(QueueUrl=source, MessageBody=f"m{i}")
    app = Topology.of(prefixed_app(unique))
    result = actions.move_messages(
        queue_state(f"{unique}-dlq", app), queue_state(f"{unique}-celery", app), app, limit=5
    )
    assert result.moved == 5
    assert len(drain(sqs, target)) == 5
    left = sqs.get_queue_attributes(
        QueueUrl=source,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert (
        int(left["ApproximateNumberOfMessages"])
        + int(left["ApproximateNumberOfMessagesNotVisible"])
        == 7
    )


def test_move_messages__failed_send_stays(sqs, unique):
    """A message the target refuses (too large) is not deleted: nothing is lost."""
    source = sqs.create_queue(QueueName=f"{unique}-dlq")["QueueUrl"]
    target = sqs.create_queue(
        QueueName=f"{unique}-celery", Attributes={"MaximumMessageSize": "1024"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=source, MessageBody="small")
    sqs.send_message(QueueUrl=source, MessageBody="x" * 2000)
    app = Topology.of(prefixed_app(unique))
    result = actions.move_messages(
        queue_state(f"{unique}-dlq", app), queue_state(f"{unique}-celery", app), app, hold=1
    )
    assert (result.moved, result.failed) == (1, 1)
    assert result.errors
    assert [m["Body"] for m in drain(sqs, target)] == ["small"]
    time.sleep(1.5)
    assert [m["Body"] for m in drain(sqs, source)] == ["x" * 2000]


def test_move_messages__refused_delete_is_counted(sqs, sqs_endpoint, unique):
    """Sent but refused DeleteMessageBatch: the copies are counted as moved and not deleted."""
    source = sqs.create_queue(QueueName=f"{unique}-dlq")["QueueUrl"]
    sqs.create_queue(QueueName=f"{unique}-celery")
    for i in range(3):
        sqs.send_message(QueueUrl=source, MessageBody=f"m{i}")
    app = Topology.of(prefixed_app(unique))
    states = queue_state(f"{unique}-dlq", app), queue_state(f"{unique}-celery", app)
    with Proxy.to(sqs_endpoint) as proxy:
        proxy.deny_matching = b"AmazonSQS.DeleteMessageBatch"
        app = Topology.of(
            make_app(
                base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
            )
        )
        sqs_broker.cache.reset()
        result = actions.move_messages(*states, app, hold=1)
    assert (result.moved, result.failed, result.not_deleted) == (3, 0, 3)
    assert result.errors and "AccessDenied" in result.errors[0]


def test_move_messages__fifo_keeps_groups(sqs, unique):
    """FIFO to FIFO keeps each message's group id and order within the group."""
    source = sqs.create_queue(
        QueueName=f"{unique}-dlq.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    target = sqs.create_queue(
        QueueName=f"{unique}-celery.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for i in range(4):
        sqs.send_message(QueueUrl=source, MessageBody=f"m{i}", MessageGroupId=f"g{i % 2}")
    app = Topology.of(prefixed_app(unique))
    result = actions.move_messages(
        queue_state(f"{unique}-dlq.fifo", app), queue_state(f"{unique}-celery.fifo", app), app
    )
    assert result.moved == 4, result.errors
    moved = drain(sqs, target)
    groups: dict[str, list[str]] = {}
    for m in moved:
        groups.setdefault(m["Attributes"]["MessageGroupId"], []).append(m["Body"])
    assert groups == {"g0": ["m0", "m2"], "g1": ["m1", "m3"]}


def test_move_messages__fifo_sends_fresh_deduplication_ids(sqs, unique):
    """Each moved FIFO message goes out with a new deduplication id and its group: all arrive.

    SQS drops a send whose deduplication id it saw in the last 5 minutes yet
    answers with a MessageId; moto has no such window, so the ids sent are
    checked here as the request carries them.
    """
    fifo = {"FifoQueue": "true"}
    source = sqs.create_queue(QueueName=f"{unique}-dlq.fifo", Attributes=fifo)["QueueUrl"]
    target = sqs.create_queue(QueueName=f"{unique}-celery.fifo", Attributes=fifo)["QueueUrl"]
    originals = {}
    for i in range(12):
        dedup = f"original-{i}"
        sqs.send_message(
            QueueUrl=source,
            MessageBody=f"m{i}",
            MessageGroupId=f"g{i % 3}",
            MessageDeduplicationId=dedup,
        )
        originals[f"m{i}"] = dedup
    app = Topology.of(prefixed_app(unique))
    sent: list[dict] = []

    def record(params, **_kwargs):
        sent.extend(params["Entries"])

    client = sqs_module.client(None, app)
    client.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    try:
        result = actions.move_messages(
            queue_state(f"{unique}-dlq.fifo", app), queue_state(f"{unique}-celery.fifo", app), app
        )
    finally:
        client.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", record)
    assert result.moved == 12 and not result.errors, result.errors
    assert len(sent) == 12
    ids = [entry["MessageDeduplicationId"] for entry in sent]
    assert len(set(ids)) == 12 and not set(ids) & set(originals.values())
    assert {e["MessageBody"]: e["MessageGroupId"] for e in sent} == {
        f"m{i}": f"g{i % 3}" for i in range(12)
    }
    arrived = []
    while got := sqs.receive_message(QueueUrl=target, MaxNumberOfMessages=10).get("Messages"):
        arrived += [m["Body"] for m in got]
        # Deleted as read: a FIFO group's next message waits until the one before is gone.
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)]
        sqs.delete_message_batch(QueueUrl=target, Entries=entries)
    assert sorted(arrived) == sorted(originals)
