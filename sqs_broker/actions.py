"""Changes made from the dashboard: purge a queue, move a dead-letter queue back, peek.

Each action takes a fresh :class:`~sqs_broker.sqs.QueueState` (never a
cached one), says exactly what it did so the caller can log it, and drops the
queue's cached attributes afterwards. Clients come from :mod:`sqs_broker.sqs`,
by the same credential rules as every other call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sqs_broker import limits, stats
from sqs_broker.cache import Local
from sqs_broker.redact import scrub
from sqs_broker.sqs import (
    QueueState,
    client,
    dead_letter_ref,
    error_text,
    fetch_one,
    forget,
    inventory,
    redrive_policy,
)

if TYPE_CHECKING:
    from sqs_broker.topology import Topology

#: Error codes (and HTTP statuses) meaning "this endpoint has no StartMessageMoveTask".
_MOVE_UNSUPPORTED = frozenset(
    {"InvalidAction", "UnsupportedOperation", "NotImplemented", "UnknownOperationException"}
)
#: Endpoints that answered StartMessageMoveTask as a call they do not have.
_move_unsupported: Local[str | None, bool] = Local("endpoints without message moves")


#: SQS's batch limit for SendMessageBatch and DeleteMessageBatch.
BATCH = limits.MAX_BATCH_ENTRIES


def _action_client(state: QueueState, topo: Topology) -> Any:
    return client(state.ref.name if state.ref.source == "predefined" else None, topo)


def purge(state: QueueState, topo: Topology) -> None:
    """PurgeQueue. SQS allows one per queue every 60 s (``PurgeQueueInProgress``)."""
    _action_client(state, topo).purge_queue(QueueUrl=state.url)
    forget(state.ref.name, topo)


def owned_state(name: str, topo: Topology) -> QueueState | None:
    """A fresh state of ``name`` if the app owns it (declared, predefined, or their DLQ).

    ``None`` for any other name: a queue found only by listing the prefix may
    be another service's, and no action touches it.
    """
    for ref in inventory(topo, discover=False):
        if ref.name == name:
            return fetch_one(ref, topo)
    # Dead-letter queues of the app's queues are in the (cached) pass.
    found = stats.sqs_pass(topo)
    state = found.dead_letters.get(name)
    if state is not None and name in found.owned:
        return fetch_one(state.ref, topo)
    return None


def dead_letter_state(source: QueueState, topo: Topology) -> QueueState | None:
    """A fresh state of ``source``'s dead-letter queue, or ``None`` without a RedrivePolicy."""
    policy = redrive_policy(source)
    if policy is None:
        return None
    return fetch_one(dead_letter_ref(policy["name"], topo), topo)


#: StartMessageMoveTask's bounds for MaxNumberOfMessagesPerSecond.
NATIVE_RATE = (1, 500)


def start_message_move(
    source: QueueState,
    destination: QueueState,
    topo: Topology,
    rate: float | None = None,
) -> str | None:
    """StartMessageMoveTask from a dead-letter queue; ``None`` if the endpoint lacks it.

    ``rate`` (messages per second) becomes ``MaxNumberOfMessagesPerSecond``,
    clamped to SQS's 1-500.
    """
    where = topo.endpoint
    if _move_unsupported.get(where):
        return None
    options: dict[str, Any] = {}
    if rate:
        options["MaxNumberOfMessagesPerSecond"] = int(
            min(max(rate, NATIVE_RATE[0]), NATIVE_RATE[1])
        )
    try:
        answer = _action_client(source, topo).start_message_move_task(
            SourceArn=source.attributes["QueueArn"],
            DestinationArn=destination.attributes["QueueArn"],
            **options,
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _MOVE_UNSUPPORTED or status in (404, 501) or status >= 500:
            _move_unsupported.put(where, True)
            return None
        raise
    forget(source.ref.name, topo)
    forget(destination.ref.name, topo)
    return str(answer.get("TaskHandle", ""))


def list_message_moves(source: QueueState, topo: Topology) -> list[dict[str, Any]]:
    """ListMessageMoveTasks of a dead-letter queue: SQS's own progress of native moves."""
    answer = _action_client(source, topo).list_message_move_tasks(
        SourceArn=source.attributes["QueueArn"], MaxResults=10
    )
    return list(answer.get("Results", []))


def cancel_message_move(source: QueueState, handle: str, topo: Topology) -> int:
    """CancelMessageMoveTask; the messages SQS says it had moved by then."""
    answer = _action_client(source, topo).cancel_message_move_task(TaskHandle=handle)
    forget(source.ref.name, topo)
    return int(answer.get("ApproximateNumberOfMessagesMoved", 0))


def release(source: QueueState, handles: list[str], topo: Topology) -> int:
    """Make received messages visible again at once (those a selective move passed over)."""
    src = _action_client(source, topo)
    released = 0
    for start in range(0, len(handles), BATCH):
        chunk = handles[start : start + BATCH]
        try:
            answer = src.change_message_visibility_batch(
                QueueUrl=source.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(chunk)
                ],
            )
        except ClientError:
            continue  # they come back by themselves when their hold ends
        released += len(answer.get("Successful", []))
    return released


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
    #: Messages a selective move passed over: MessageId -> latest receipt handle.
    skipped: dict[str, str] = field(default_factory=dict)
    #: The source answered with nothing new: no message is left to look at.
    exhausted: bool = False


#: Decides, for a received batch, which messages move (True) and which stay (False).
Selector = Callable[[list[dict[str, Any]]], list[bool]]


def move_messages(
    source: QueueState,
    destination: QueueState,
    topo: Topology,
    limit: int = 1000,
    hold: int = 60,
    *,
    select: Selector | None = None,
    rate: float | None = None,
    deadline: float | None = None,
    seen: dict[str, str] | None = None,
) -> MoveResult:
    """Receive -> send -> delete in batches of 10, deleting only what was sent.

    A message is deleted from ``source`` only after ``destination`` accepted
    it, so the move itself loses nothing; a failed send leaves the message in
    ``source``, where it becomes visible again after ``hold`` seconds. A
    failed delete (rare) leaves a copy in both queues and is counted in
    ``not_deleted`` so the caller can say so.

    ``select`` picks the messages to move; the others stay hidden for
    ``hold`` seconds (so the receive moves on through the queue) and are
    listed in ``skipped`` for :func:`release`. ``seen`` holds those of
    earlier steps: a batch of only seen messages means the queue is done.
    ``rate`` caps messages per second; ``deadline`` (``time.monotonic()``)
    ends the call early, with ``exhausted`` false.
    """
    result = MoveResult()
    seen = seen if seen is not None else {}
    src, dst = _action_client(source, topo), _action_client(destination, topo)
    fifo = destination.ref.fifo or destination.attributes.get("FifoQueue") == "true"
    began, handled = time.monotonic(), 0
    # Below 10 a second, smaller batches keep the pace even.
    batch = max(1, min(BATCH, int(rate))) if rate else BATCH
    try:
        while result.moved + result.failed < limit:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if rate and handled:
                wait = began + handled / rate - time.monotonic()
                if deadline is not None and time.monotonic() + wait >= deadline:
                    break
                if wait > 0:
                    time.sleep(wait)
            count = min(batch, limit - result.moved - result.failed)
            answer = src.receive_message(
                QueueUrl=source.url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=hold,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = answer.get("Messages", [])
            if not received:
                result.exhausted = True
                break
            if all(m.get("MessageId") in seen for m in received):
                for m in received:
                    seen[m["MessageId"]] = result.skipped[m["MessageId"]] = m["ReceiptHandle"]
                result.exhausted = True
                break
            chosen = select(received) if select is not None else [True] * len(received)
            messages = []
            for message, keep in zip(received, chosen, strict=True):
                if keep:
                    messages.append(message)
                else:
                    seen[message["MessageId"]] = message["ReceiptHandle"]
                    result.skipped[message["MessageId"]] = message["ReceiptHandle"]
            handled += len(received)
            if not messages:
                continue
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
    forget(source.ref.name, topo)
    forget(destination.ref.name, topo)
    return result


def peek(state: QueueState, topo: Topology, count: int = 10) -> list[dict[str, Any]]:
    """Up to ``count`` (<= 10) messages, made visible again at once.

    SQS has no read-only peek: this is a receive with a zero visibility
    timeout, so each message's ``ApproximateReceiveCount`` goes up by one
    (which counts towards ``maxReceiveCount`` and the backoff policy). The
    dashboard offers it behind a POST and the redrive permission.
    """
    answer = _action_client(state, topo).receive_message(
        QueueUrl=state.url,
        MaxNumberOfMessages=max(1, min(count, BATCH)),
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(answer.get("Messages", []))


@dataclass
class Sample:
    """What :func:`sample_messages` received, and the requests it cost."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    #: The receive stopped because the queue gave nothing new (not because of ``limit``).
    complete: bool = False
    receives: int = 0
    releases: int = 0


def sample_messages(
    state: QueueState,
    topo: Topology,
    limit: int = 100,
    hold: int = 10,
    keep: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Sample:
    """Up to ``limit`` distinct messages, each received once, then made visible again.

    Each message is hidden for at most ``hold`` seconds (so the next receive
    moves on through the queue) and released at once at the end. It costs
    one receive per 10 messages (plus the empty one that ends it) and one
    ChangeMessageVisibilityBatch per 10, and raises each message's
    ``ApproximateReceiveCount`` by one, as a peek does. ``keep`` is handed
    the messages before they are released, to act on some first (a delete).
    """
    found: dict[str, dict[str, Any]] = {}
    sample = Sample()
    src = _action_client(state, topo)
    try:
        while len(found) < limit:
            answer = src.receive_message(
                QueueUrl=state.url,
                MaxNumberOfMessages=max(1, min(BATCH, limit - len(found))),
                VisibilityTimeout=hold,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            sample.receives += 1
            got = [m for m in answer.get("Messages", []) if m.get("MessageId") not in found]
            if not got:
                sample.complete = True
                break
            for message in got:
                found[message["MessageId"]] = message
        sample.messages = list(found.values())
        if keep is not None:
            keep(sample.messages)
    finally:
        handles = [m["ReceiptHandle"] for m in found.values() if not m.get("_deleted")]
        if handles:
            release(state, handles, topo)
            sample.releases = -(-len(handles) // BATCH)
    return sample


def delete_messages(
    state: QueueState, messages: list[dict[str, Any]], topo: Topology
) -> tuple[int, list[str]]:
    """DeleteMessageBatch of received ``messages``; how many went, and SQS's refusals.

    Each message deleted is marked (``_deleted``) so a sample does not release it.
    """
    src = _action_client(state, topo)
    deleted, errors = 0, []
    for start in range(0, len(messages), BATCH):
        chunk = messages[start : start + BATCH]
        answer = src.delete_message_batch(
            QueueUrl=state.url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ],
        )
        ok = {item["Id"] for item in answer.get("Successful", [])}
        for i, message in enumerate(chunk):
            if str(i) in ok:
                message["_deleted"] = True
                deleted += 1
        errors += [
            scrub(f"{f.get('Code')}: {f.get('Message', '')}") for f in answer.get("Failed", [])
        ]
    forget(state.ref.name, topo)
    return deleted, errors
