"""Changes made from the dashboard: purge a queue, move a dead-letter queue back, peek.

Each action takes a fresh :class:`~sqs_broker.sqs.QueueState` (never a
cached one), says exactly what it did so the caller can log it, and drops the
queue's cached attributes afterwards. Clients come from :mod:`sqs_broker.sqs`,
by the same credential rules as every other call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sqs_broker import limits
from sqs_broker.redact import scrub
from sqs_broker.sqs import QueueState, client, endpoint_url, error_text, forget

if TYPE_CHECKING:
    from celery import Celery

    from sqs_broker.topology import Topology

#: Error codes (and HTTP statuses) meaning "this endpoint has no StartMessageMoveTask".
_MOVE_UNSUPPORTED = frozenset(
    {"InvalidAction", "UnsupportedOperation", "NotImplemented", "UnknownOperationException"}
)
_move_unsupported: set[str | None] = set()


def forget_unsupported() -> None:
    """Forget which endpoints lacked StartMessageMoveTask (tests, endpoint upgrades)."""
    _move_unsupported.clear()


#: SQS's batch limit for SendMessageBatch and DeleteMessageBatch.
BATCH = limits.MAX_BATCH_ENTRIES


def _action_client(state: QueueState, app: Celery | Topology | None) -> Any:
    return client(state.ref.name if state.ref.source == "predefined" else None, app)


def purge(state: QueueState, app: Celery | Topology | None = None) -> None:
    """PurgeQueue. SQS allows one per queue every 60 s (``PurgeQueueInProgress``)."""
    _action_client(state, app).purge_queue(QueueUrl=state.url)
    forget(state.ref.name, app)


def start_message_move(
    source: QueueState, destination: QueueState, app: Celery | Topology | None = None
) -> str | None:
    """StartMessageMoveTask from a dead-letter queue; ``None`` if the endpoint lacks it."""
    where = endpoint_url(app)
    if where in _move_unsupported:
        return None
    try:
        answer = _action_client(source, app).start_message_move_task(
            SourceArn=source.attributes["QueueArn"],
            DestinationArn=destination.attributes["QueueArn"],
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _MOVE_UNSUPPORTED or status in (404, 501) or status >= 500:
            _move_unsupported.add(where)
            return None
        raise
    forget(source.ref.name, app)
    forget(destination.ref.name, app)
    return str(answer.get("TaskHandle", ""))


def _send_batch(dst: Any, url: str | None, entries: list[dict[str, Any]], result: Any) -> set[str]:
    """Send ``entries``; the Ids SQS accepted. Refusals are added to ``result.errors``."""
    try:
        sent = dst.send_message_batch(QueueUrl=url, Entries=entries)
    except ClientError as exc:
        # The whole batch was refused (one body too large, say): send one by
        # one, so the others still move and only the bad one stays behind.
        result.errors.append(error_text(exc)[0])
        ok = set()
        for entry in entries:
            try:
                dst.send_message(QueueUrl=url, **{k: v for k, v in entry.items() if k != "Id"})
            except ClientError as one:
                result.errors.append(error_text(one)[0])
            else:
                ok.add(entry["Id"])
        return ok
    for item in sent.get("Failed", []):
        result.errors.append(scrub(f"{item.get('Code')}: {item.get('Message', '')}"))
    return {item["Id"] for item in sent.get("Successful", [])}


@dataclass
class MoveResult:
    """What a message-by-message move did: moved, left in place, and why."""

    moved: int = 0
    failed: int = 0
    not_deleted: int = 0
    errors: list[str] = field(default_factory=list)


def move_messages(
    source: QueueState,
    destination: QueueState,
    app: Celery | Topology | None = None,
    limit: int = 1000,
    hold: int = 60,
) -> MoveResult:
    """Receive -> send -> delete in batches of 10, deleting only what was sent.

    A message is deleted from ``source`` only after ``destination`` accepted
    it, so the move itself loses nothing; a failed send leaves the message in
    ``source``, where it becomes visible again after ``hold`` seconds. A
    failed delete (rare) leaves a copy in both queues and is counted in
    ``not_deleted`` so the caller can say so.
    """
    result = MoveResult()
    src, dst = _action_client(source, app), _action_client(destination, app)
    fifo = destination.ref.fifo or destination.attributes.get("FifoQueue") == "true"
    try:
        while result.moved + result.failed < limit:
            count = min(BATCH, limit - result.moved - result.failed)
            answer = src.receive_message(
                QueueUrl=source.url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=hold,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            entries = []
            for index, message in enumerate(messages):
                entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
                if message.get("MessageAttributes"):
                    entry["MessageAttributes"] = message["MessageAttributes"]
                if fifo:
                    attributes = message.get("Attributes", {})
                    entry["MessageGroupId"] = attributes.get("MessageGroupId", "default")
                    # A fresh id, never the original: within 5 minutes of the first send
                    # SQS would take the copy for a duplicate, answer with a MessageId and
                    # drop it, and the delete below would then lose the message.
                    entry["MessageDeduplicationId"] = uuid.uuid4().hex
                entries.append(entry)
            ok = _send_batch(dst, destination.url, entries, result)
            result.failed += len(messages) - len(ok)
            if not ok:
                break  # nothing was accepted: stop rather than spin on the same error
            result.moved += len(ok)
            try:
                deleted = src.delete_message_batch(
                    QueueUrl=source.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                        if str(i) in ok
                    ],
                )
            except Exception:
                # Sent but not deleted: each is in both queues now, and must be counted so.
                result.not_deleted += len(ok)
                raise
            result.not_deleted += len(deleted.get("Failed", []))
    except Exception as exc:  # report what was done before the error, and the error
        result.errors.append(error_text(exc)[0])
    forget(source.ref.name, app)
    forget(destination.ref.name, app)
    return result


def peek(
    state: QueueState, app: Celery | Topology | None = None, count: int = 10
) -> list[dict[str, Any]]:
    """Up to ``count`` (<= 10) messages, made visible again at once.

    SQS has no read-only peek: this is a receive with a zero visibility
    timeout, so each message's ``ApproximateReceiveCount`` goes up by one
    (which counts towards ``maxReceiveCount`` and the backoff policy). The
    dashboard offers it behind a POST and the redrive permission.
    """
    answer = _action_client(state, app).receive_message(
        QueueUrl=state.url,
        MaxNumberOfMessages=max(1, min(count, BATCH)),
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(answer.get("Messages", []))
