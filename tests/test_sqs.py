"""Tests of sqs_broker.sqs: inventory, attribute fetch and the dashboard's actions, on moto."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from sqs_broker import sqs as sqs_module
from tests.conftest import base_env, make_app
from tests.proxy import Proxy


def _app(unique: str):
    return make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))


def _state(name: str, app) -> sqs_module.QueueState:
    state = sqs_module.fetch_one(sqs_module.QueueRef(name, "declared"), app)
    assert state.error is None, state.error
    return state


def _drain(sqs, url: str) -> list[dict]:
    found = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return found
        found += got


def test_inventory__prefix_and_declared(sqs, unique):
    """With a prefix, declared queues and queues found under it are both listed."""
    sqs.create_queue(QueueName=f"{unique}-extra")
    names = {ref.name: ref.source for ref in sqs_module.inventory(_app(unique))}
    assert names == {f"{unique}-celery": "declared", f"{unique}-extra": "prefix"}


def test_inventory__prefix_named_as_kombu_names_it(sqs, unique):
    """A prefix with a dot lists queues under the name kombu gives them ("app." -> "app-")."""
    sqs.create_queue(QueueName=f"{unique}-extra")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}."))
    names = {ref.name: ref.source for ref in sqs_module.inventory(app)}
    assert names == {f"{unique}-celery": "declared", f"{unique}-extra": "prefix"}


def test_fetch__one_assume_role_for_every_predefined_queue(sqs, sqs_endpoint, unique):
    """Ten predefined queues behind an STS role, fetched concurrently: AssumeRole once."""
    names = [f"{unique}-{n}" for n in range(10)]
    queues = {name: {"url": sqs.create_queue(QueueName=name)["QueueUrl"]} for name in names}
    with Proxy.to(sqs_endpoint) as proxy:
        app = make_app(
            base_env(
                SQS_ENDPOINT_URL=proxy.endpoint_url,
                SQS_PREDEFINED_QUEUES=json.dumps(queues),
                SQS_STS_ROLE_ARN="arn:aws:iam::123456789012:role/celery",
            )
        )
        sqs_module.clear_caches()
        states = sqs_module.fetch(sqs_module.inventory(app), app)
        calls = proxy.reset_counts()
    assert [s.error for s in states] == [None] * 10
    assert calls["AssumeRole"] == 1, calls
    assert calls["GetQueueAttributes"] == 10, calls


def test_fetch__cached_for_ttl(sqs, unique, settings):
    """A second fetch within the TTL returns the same answer without asking SQS."""
    settings.SQS_BROKER_CACHE_TTL = 60
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    app = _app(unique)
    refs = sqs_module.inventory(app, discover=False)
    (first,) = sqs_module.fetch(refs, app)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    (second,) = sqs_module.fetch(refs, app)
    assert second is first
    sqs_module.forget(f"{unique}-celery", app)
    (third,) = sqs_module.fetch(refs, app)
    assert third.int("ApproximateNumberOfMessages") == 1


def test_purge__once_per_60_seconds(sqs, unique):
    """purge empties the queue; a second purge within 60 s raises PurgeQueueInProgress."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    app = _app(unique)
    state = _state(f"{unique}-celery", app)
    sqs_module.purge(state, app)
    assert _drain(sqs, url) == []
    with pytest.raises(ClientError) as raised:
        sqs_module.purge(state, app)
    assert sqs_module.error_text(raised.value)[1].endswith("PurgeQueueInProgress")


def test_start_message_move__unsupported_on_moto(sqs, unique):
    """moto has no StartMessageMoveTask: the caller gets None and falls back."""
    app = _app(unique)
    sqs.create_queue(QueueName=f"{unique}-a")
    sqs.create_queue(QueueName=f"{unique}-b")
    assert (
        sqs_module.start_message_move(_state(f"{unique}-b", app), _state(f"{unique}-a", app), app)
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
    app = _app(unique)
    result = sqs_module.move_messages(
        _state(f"{unique}-dlq", app), _state(f"{unique}-celery", app), app
    )
    assert (result.moved, result.failed, result.not_deleted, result.errors) == (25, 0, 0, [])
    moved = _drain(sqs, target)
    assert sorted(m["Body"] for m in moved) == sorted(f"m{i}" for i in range(25))
    assert _drain(sqs, source) == []


def test_move_messages__limit(sqs, unique):
    """The limit bounds one move; the rest stays in the dead-letter queue."""
    source = sqs.create_queue(QueueName=f"{unique}-dlq")["QueueUrl"]
    target = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    for i in range(12):
        sqs.send_message(QueueUrl=source, MessageBody=f"m{i}")
    app = _app(unique)
    result = sqs_module.move_messages(
        _state(f"{unique}-dlq", app), _state(f"{unique}-celery", app), app, limit=5
    )
    assert result.moved == 5
    assert len(_drain(sqs, target)) == 5
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
    app = _app(unique)
    result = sqs_module.move_messages(
        _state(f"{unique}-dlq", app), _state(f"{unique}-celery", app), app, hold=1
    )
    assert (result.moved, result.failed) == (1, 1)
    assert result.errors
    assert [m["Body"] for m in _drain(sqs, target)] == ["small"]
    time.sleep(1.5)
    assert [m["Body"] for m in _drain(sqs, source)] == ["x" * 2000]


def test_move_messages__refused_delete_is_counted(sqs, sqs_endpoint, unique):
    """Sent but refused DeleteMessageBatch: the copies are counted as moved and not deleted."""
    source = sqs.create_queue(QueueName=f"{unique}-dlq")["QueueUrl"]
    sqs.create_queue(QueueName=f"{unique}-celery")
    for i in range(3):
        sqs.send_message(QueueUrl=source, MessageBody=f"m{i}")
    app = _app(unique)
    states = _state(f"{unique}-dlq", app), _state(f"{unique}-celery", app)
    with Proxy.to(sqs_endpoint) as proxy:
        proxy.deny_matching = b"AmazonSQS.DeleteMessageBatch"
        app = make_app(
            base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
        )
        sqs_module.clear_caches()
        result = sqs_module.move_messages(*states, app, hold=1)
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
    app = _app(unique)
    result = sqs_module.move_messages(
        _state(f"{unique}-dlq.fifo", app), _state(f"{unique}-celery.fifo", app), app
    )
    assert result.moved == 4, result.errors
    moved = _drain(sqs, target)
    groups: dict[str, list[str]] = {}
    for m in moved:
        groups.setdefault(m["Attributes"]["MessageGroupId"], []).append(m["Body"])
    assert groups == {"g0": ["m0", "m2"], "g1": ["m1", "m3"]}


def test_fetch__redrive_policy_attribute(sqs, unique):
    """The RedrivePolicy is fetched with the other attributes (the dashboard reads its DLQ)."""
    dlq = sqs.create_queue(QueueName=f"{unique}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sqs.create_queue(
        QueueName=f"{unique}-celery",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
        },
    )
    state = _state(f"{unique}-celery", _app(unique))
    assert json.loads(state.attributes["RedrivePolicy"])["deadLetterTargetArn"] == arn
