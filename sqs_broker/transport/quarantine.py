"""Moving poison aside: a copy in the dead-letter or quarantine queue, then the delete.

:class:`Quarantine` is one channel's mover. A message that cannot be decoded,
cannot become a task, or that its consumer rejected without requeue goes to its
queue's dead-letter queue (read from the ``RedrivePolicy``; copied there at
once rather than received ``maxReceiveCount`` times) or else to
``<queue>-quarantine`` (created with 14 days' retention). The copy keeps the
body, the message attributes and a FIFO message's group id, and adds the
reason, the source queue and the message id as attributes when they fit
(:func:`copy_request`). The original is deleted only after the copy was sent.

Each message is counted once (``on_poison``, and :attr:`Quarantine.poisoned`)
and logged once, however often it comes back: a bounded memory of message ids
remembers what was counted, copied, or found too large to copy. Where its
kombu envelope names a task (``identify``), the count and the log line name
that task and its id; else the log shows the body's first bytes.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqs_broker.limits import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_MESSAGE_ATTRIBUTES,
    MAX_RETENTION_PERIOD,
)
from sqs_broker.redact import scrub
from sqs_broker.topology import quarantine_name
from sqs_broker.transport.faults import describe

logger = logging.getLogger(__name__)

#: Bytes of a poison message's body that its log line shows.
SHOWN_BYTES = 64
#: The attributes a copy carries when they fit.
REASON = "sqs_broker.poison.reason"
SOURCE = "sqs_broker.poison.source"
MESSAGE_ID = "sqs_broker.poison.message_id"
#: The one short attribute a copy carries when the three do not fit.
SHORT = "sqs_broker.poison"
#: Characters of the reason a copy carries at most.
REASON_CHARS = 1024
#: The shortest reason worth an attribute; below it the reason is only logged.
SHORTEST_REASON = 16
#: The group of a FIFO copy whose original had none (it cannot happen on SQS; kept safe).
DEFAULT_GROUP = "sqs_broker-poison"

#: What the memory knows of a message id.
COUNTED, COPIED, UNMOVABLE = "counted", "copied", "unmovable"


@dataclass(frozen=True)
class Target:
    """Where a queue's poison goes."""

    url: str
    kind: str  # "dead-letter" or "quarantine"
    max_size: int
    fifo: bool

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A received message attribute as SendMessage takes it (the empty list fields dropped)."""
    kept = {"DataType": value["DataType"]}
    for key in ("StringValue", "BinaryValue"):
        if key in value:
            kept[key] = value[key]
    return kept


def _text(value: str) -> dict[str, Any]:
    return {"DataType": "String", "StringValue": value}


def message_size(body: str, attributes: dict[str, dict[str, Any]]) -> int:
    """The size SQS limits: the body, and each attribute's name, data type and value."""
    size = len(body.encode())
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode())
        if "StringValue" in value:
            size += len(value["StringValue"].encode())
        if "BinaryValue" in value:
            size += len(value["BinaryValue"])
    return size


def _clip(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` UTF-8 bytes, cut at a character."""
    return text.encode()[: max(limit, 0)].decode(errors="ignore")


def copy_request(
    message: dict[str, Any], target: Target, source: str, reason: str
) -> tuple[dict[str, Any] | None, str]:
    """The SendMessage of ``message``'s copy to ``target``, and how the reason travels.

    The body, the original attributes and (FIFO) the group id are always kept.
    The reason goes in three attributes when they fit the target's
    ``MaximumMessageSize`` and SQS's ten attributes; else in one short
    attribute cut to the room left; else only in the log. ``None`` when the
    body and the original attributes alone do not fit.
    """
    body = message["Body"]
    message_id = str(message.get("MessageId", "?"))
    original = {
        name: _attribute(value) for name, value in (message.get("MessageAttributes") or {}).items()
    }
    for ours in (REASON, SOURCE, MESSAGE_ID, SHORT):
        original.pop(ours, None)  # a copy moved before: this reason replaces the old one
    full = {
        REASON: _text(reason[:REASON_CHARS]),
        SOURCE: _text(source),
        MESSAGE_ID: _text(message_id),
    }
    room = target.max_size - message_size(body, original)
    attributes: dict[str, dict[str, Any]] | None = None
    carried = "attributes"
    if len(original) + len(full) <= MAX_MESSAGE_ATTRIBUTES and message_size("", full) <= room:
        attributes = {**original, **full}
    elif room < 0:
        return None, "none"
    else:
        left = room - len(SHORT) - len("String")
        short = f"{reason} (from {source}, message {message_id})"
        if len(original) < MAX_MESSAGE_ATTRIBUTES and left >= SHORTEST_REASON:
            attributes = {**original, SHORT: _text(_clip(short, left))}
            carried = "a short attribute"
        else:
            attributes = original
            carried = "the log only"
    request: dict[str, Any] = {"QueueUrl": target.url, "MessageBody": body}
    if attributes:
        request["MessageAttributes"] = attributes
    if target.fifo:
        system = message.get("Attributes") or {}
        request["MessageGroupId"] = system.get("MessageGroupId") or DEFAULT_GROUP
        request["MessageDeduplicationId"] = message_id[:128]
    return request, carried


class Quarantine:
    """One channel's poison mover: targets per queue, the memory of message ids, the count."""

    #: Seconds a queue's target is reused before it is read again.
    target_ttl = 300.0
    #: Message ids remembered (counted, copied, too large); the oldest are forgotten first.
    memory = 10_000

    def __init__(self, client_of: Callable[[str | None], Any]) -> None:
        self._client_of = client_of
        self._targets: dict[str, tuple[Target, float]] = {}
        self._seen: OrderedDict[str, str] = OrderedDict()
        #: Called once per poison message with its queue's SQS name and the task it names,
        #: if any (the worker's counter).
        self.on_poison: Callable[[str, str | None], None] | None = None
        #: The task name and id an SQS body names (:func:`sqs_broker.transport.poison.identify`).
        self.identify: Callable[[Any], tuple[str | None, str | None]] | None = None
        #: Poison messages counted by this channel, each once.
        self.poisoned = 0

    def state(self, message_id: str) -> str | None:
        """What the memory knows of ``message_id``: counted, copied, unmovable or nothing."""
        return self._seen.get(message_id)

    def _remember(self, message_id: str, state: str) -> None:
        self._seen[message_id] = state
        self._seen.move_to_end(message_id)
        while len(self._seen) > self.memory:
            self._seen.popitem(last=False)

    def _count(self, queue: str, message_id: str, task: str | None = None) -> None:
        if message_id in self._seen:
            return
        self._remember(message_id, COUNTED)
        self.poisoned += 1
        if self.on_poison is not None:
            try:
                self.on_poison(queue, task)
            except Exception:  # a counter must never stop a move
                logger.exception("Counting a poison message of queue %s failed", queue)

    def move(self, queue: str, url: str, message: dict[str, Any], reason: str) -> bool:
        """Copy ``message`` of ``queue`` (at ``url``) to its target, then delete it.

        True when the original is deleted; False when it is left in the queue
        (the copy or the delete failed, or it is too large to copy): it then
        comes back after its visibility timeout and is neither counted nor
        copied again.
        """
        message_id = str(message.get("MessageId", "?"))
        raw = message.get("Body", "")
        task, task_id = self._identified(raw)
        if task is not None or task_id is not None:
            # What a person can act on; never the arguments.
            first = scrub(f"task {task!r}, id {task_id!r}")
        else:
            first = "first bytes: " + scrub(
                repr(raw[:SHOWN_BYTES] if isinstance(raw, str | bytes) else raw)
            )
        self._count(queue, message_id, task)
        state = self._seen.get(message_id)
        try:
            client = self._client_of(queue)
            target = self.target(client, queue, url)
            carried = "an earlier copy"
            if state != COPIED:
                request, carried = copy_request(message, target, queue, reason)
                if request is None:
                    if state == UNMOVABLE:  # said once; tried again as the target is re-read
                        logger.debug("Poison message %s on %s: too large", message_id, queue)
                        return False
                    self._remember(message_id, UNMOVABLE)
                    logger.error(
                        "Poison message %s on queue %s (%s) is larger than %s queue %s takes "
                        "(%d bytes): it is left in the queue, and moved only if that queue "
                        "takes it later; %s",
                        message_id,
                        queue,
                        reason,
                        target.kind,
                        target.name,
                        target.max_size,
                        first,
                    )
                    return False
                client.send_message(**request)
                self._remember(message_id, COPIED)
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        except Exception as exc:
            logger.error(
                "Poison message %s on queue %s (%s) could not be moved: %s. It is left in the "
                "queue and comes back after its visibility timeout; %s",
                message_id,
                queue,
                reason,
                scrub(describe(exc)),
                first,
            )
            return False
        logger.error(
            "Poison message %s on queue %s moved to %s queue %s (reason in %s): %s; %s",
            message_id,
            queue,
            target.kind,
            target.name,
            carried,
            reason,
            first,
        )
        return True

    def _identified(self, body: Any) -> tuple[str | None, str | None]:
        if self.identify is None:
            return None, None
        try:
            return self.identify(body)
        except Exception:  # naming a message must never stop its move
            logger.debug("Reading the task of a poison message failed", exc_info=True)
            return None, None

    def target(self, client: Any, queue: str, url: str) -> Target:
        """Where ``queue``'s poison goes: its dead-letter queue, else its quarantine queue."""
        cached = self._targets.get(url)
        if cached is not None and time.monotonic() - cached[1] < self.target_ttl:
            return cached[0]
        names = ["RedrivePolicy", "MaximumMessageSize"]
        attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        if policy:
            arn = json.loads(policy)["deadLetterTargetArn"]
            account, name = arn.split(":")[4:6]
            found = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
            target_url, kind = found["QueueUrl"], "dead-letter"
        else:
            target_url, kind = self._quarantine_queue(client, queue), "quarantine"
        read = client.get_queue_attributes(QueueUrl=target_url, AttributeNames=names[1:])
        size = read.get("Attributes", {}).get("MaximumMessageSize")
        target = Target(
            target_url,
            kind,
            int(size) if size else DEFAULT_MAX_MESSAGE_SIZE,
            target_url.endswith(".fifo"),
        )
        self._targets[url] = (target, time.monotonic())
        return target

    def _quarantine_queue(self, client: Any, queue: str) -> str:
        name = quarantine_name(queue)
        try:
            return str(client.get_queue_url(QueueName=name)["QueueUrl"])
        except client.exceptions.QueueDoesNotExist:
            pass
        # Fourteen days, SQS's longest retention: time to look at it.
        attributes = {"MessageRetentionPeriod": str(MAX_RETENTION_PERIOD)}
        if name.endswith(".fifo"):
            attributes["FifoQueue"] = "true"
        return str(client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
