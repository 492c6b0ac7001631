"""The SQS and SNS calls of Celery's remote control: the pidbox topic, its subscriptions, mailboxes.

kombu's SQS transport serves a fanout exchange with an SNS topic named like a
queue (``<prefix>celery-pidbox``) and subscribes each worker's mailbox queue to
it. The clients here follow the same rules as :func:`sqs_broker.sqs.client`
(the broker URL's endpoint and keys, the region, an STS role) with the same
bounded timeouts; with moto, SNS answers on the SQS endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from sqs_broker.sqs.clients import _client, assume_role, client
from sqs_broker.sqs.errors import failure_kind
from sqs_broker.topology import Topology

#: At most this many pages of ListTopics (100 topics each) are read looking for one topic.
MAX_TOPIC_PAGES = 50


def sns_client(topo: Topology) -> Any:
    """An SNS client with the app's credentials (the STS role's when one is set)."""
    if topo.options.get("sts_role_arn"):
        creds = assume_role(topo)
        return _client(
            "sns", topo.region, topo.endpoint,
            creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"],
        )  # fmt: skip
    key, secret = topo.credentials
    return _client("sns", topo.region, topo.endpoint, key, secret)


def find_topic(name: str, topo: Topology) -> str | None:
    """The ARN of the topic named ``name`` (ListTopics, never created), else ``None``."""
    sns = sns_client(topo)
    kwargs: dict[str, Any] = {}
    for _ in range(MAX_TOPIC_PAGES):
        answer = sns.list_topics(**kwargs)
        for topic in answer.get("Topics", []):
            arn = str(topic.get("TopicArn", ""))
            if arn.rsplit(":", 1)[-1] == name:
                return arn
        token = answer.get("NextToken")
        if not token:
            return None
        kwargs["NextToken"] = token
    return None


@dataclass(frozen=True)
class Subscription:
    """One SQS subscription of a topic: its ARN and the SQS name of the queue it delivers to."""

    arn: str
    queue: str


def subscriptions(topic_arn: str, topo: Topology) -> Iterator[Subscription]:
    """The topic's SQS subscriptions (pending confirmations left out)."""
    paginator = sns_client(topo).get_paginator("list_subscriptions_by_topic")
    for page in paginator.paginate(TopicArn=topic_arn):
        for item in page.get("Subscriptions", []):
            arn = str(item.get("SubscriptionArn", ""))
            if str(item.get("Protocol", "")).lower() != "sqs" or not arn.startswith("arn:"):
                continue
            yield Subscription(arn, str(item.get("Endpoint", "")).rsplit(":", 1)[-1])


def unsubscribe(subscription_arn: str, topo: Topology) -> None:
    """Remove one subscription."""
    sns_client(topo).unsubscribe(SubscriptionArn=subscription_arn)


def topic_attributes(topic_arn: str, topo: Topology) -> dict[str, str]:
    """GetTopicAttributes: the topic's ``Policy``, ``Owner`` and the rest, as strings."""
    answer = sns_client(topo).get_topic_attributes(TopicArn=topic_arn)
    return {str(k): str(v) for k, v in (answer.get("Attributes") or {}).items()}


def delete_queue(name: str, topo: Topology) -> bool:
    """Delete the queue named ``name``; ``False`` when it was already gone."""
    sqs = client(None, topo)
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.delete_queue(QueueUrl=url)
    except ClientError as exc:
        if failure_kind(exc) == "missing":
            return False
        raise
    return True


@dataclass(frozen=True)
class MailboxState:
    """What the sweep needs of one mailbox or reply queue (``None``: SQS did not say)."""

    name: str
    exists: bool
    created: float | None = None
    messages: int | None = None


def mailbox_state(name: str, topo: Topology) -> MailboxState:
    """Whether queue ``name`` exists, when it was created and how many messages it holds."""
    sqs = client(None, topo)
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "CreatedTimestamp",
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        ).get("Attributes", {})
    except ClientError as exc:
        if failure_kind(exc) == "missing":
            return MailboxState(name, False)
        raise
    created = attributes.get("CreatedTimestamp")
    counts = [
        attributes.get(a)
        for a in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    ]
    return MailboxState(
        name,
        True,
        float(created) if created else None,
        sum(int(c) for c in counts if c) if all(c not in (None, "") for c in counts) else None,
    )


def remove_mailbox(queue: str, topo: Topology) -> tuple[bool, int]:
    """Delete mailbox queue ``queue`` and unsubscribe it from the app's pidbox topic.

    Returns whether the queue existed and how many subscriptions were removed.
    The topic itself stays: other workers of the app are subscribed to it.
    """
    deleted = delete_queue(queue, topo)
    removed = 0
    topic = find_topic(topo.pidbox_topic, topo)
    if topic is not None:
        for sub in subscriptions(topic, topo):
            if sub.queue == queue:
                unsubscribe(sub.arn, topo)
                removed += 1
    return deleted, removed
