"""The publish side: each task message checked against its queue's limit, offloaded or refused.

:mod:`sqs_broker.publishing`'s task sender wraps every send in :func:`sized`:
while the task is sent, kombu's SQS client for it is a :class:`SizedClient`,
whose ``send_message`` sees the final message (the body and attributes as
kombu built them) and passes it through :func:`prepare`. A queue's
``MaximumMessageSize`` is read once per process (:func:`max_message_size`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sqs_broker import limits, payloads, sqs
from sqs_broker.cache import Local
from sqs_broker.conf import app_settings
from sqs_broker.payloads import MessageTooLarge
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

#: Seconds an unreadable ``MaximumMessageSize`` is taken as 1 MiB before SQS is asked again.
UNKNOWN_SIZE_TTL = 60.0

_sizes: Local[tuple[str | None, str], tuple[int, float]] = Local("message size limits")

#: Pointers offloaded while ``publish_many`` builds its messages (None: not collecting).
offloaded: ContextVar[list[payloads.Pointer] | None] = ContextVar("offloaded", default=None)


def max_message_size(queue: str, app: Celery | None = None, url: str | None = None) -> int:
    """The ``MaximumMessageSize`` of ``queue`` (its SQS name), read once per process.

    Unreadable (no permission, SQS down), it is taken as 1 MiB, SQS's largest,
    for :data:`UNKNOWN_SIZE_TTL` seconds: a publish does not pay a request for it.
    """
    topo = Topology.of(app)
    key = (topo.endpoint, queue)
    known = _sizes.get(key)
    if known is not None and known[1] > time.monotonic():
        return known[0]
    spec = topo.predefined.get(queue)
    source: sqs.Source = "predefined" if spec else "declared"
    state = sqs.fetch_one(sqs.QueueRef(queue, source, url or (spec and spec.get("url"))), topo)
    size = state.int("MaximumMessageSize") if state.error is None else None
    expires = math.inf
    if size is None:
        logger.warning(
            "Could not read the MaximumMessageSize of queue %r (%s); messages are checked "
            "against SQS's largest, %s bytes.",
            queue,
            state.error or "not in the answer",
            limits.MAX_MESSAGE_SIZE,
        )
        size, expires = limits.MAX_MESSAGE_SIZE, time.monotonic() + UNKNOWN_SIZE_TTL
    _sizes.put(key, (size, expires))
    return size


def forget_sizes() -> None:
    """Forget the limits read so far (tests, queue changes)."""
    _sizes.clear()


def _too_long(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    message = str(error.get("Message", "")).lower()
    return error.get("Code") in ("MessageTooLong", "InvalidParameterValue") and (
        "too long" in message or "shorter than" in message
    )


def prepare(kwargs: dict[str, Any], queue: str, task: str, app: Celery) -> dict[str, Any]:
    """``SendMessage`` arguments that fit ``queue``: as given, offloaded to S3, or refused.

    Raises :class:`~sqs_broker.payloads.MessageTooLarge` when the message is
    over the queue's ``MaximumMessageSize`` and no bucket is configured (or the
    pointer message itself would still be too large).
    """
    size = payloads.message_size(kwargs)
    if size <= payloads.MARGIN and app_settings.LARGE_PAYLOAD_THRESHOLD is None:
        return kwargs  # smaller than any queue's limit can be: no lookup needed
    where = payloads.settings()
    limit = max_message_size(queue, app, kwargs.get("QueueUrl"))
    if where is not None and size > where.limit_for(limit):
        kwargs, pointer = payloads.offload(kwargs, queue, app)
        collecting = offloaded.get()
        if collecting is not None:
            collecting.append(pointer)
        size = payloads.message_size(kwargs)
        logger.info(
            "Task %s: message for queue %s stored in S3 (%s bytes) as %s",
            task, queue, kwargs["MessageAttributes"][payloads.SIZE_ATTRIBUTE]["StringValue"],
            pointer.key,
        )  # fmt: skip
    if size > limit:
        raise MessageTooLarge(task, queue, size, limit, where.bucket if where else None)
    return kwargs


@dataclass
class SizedClient:
    """Stands in for the SQS client kombu sends a task with: offloads or refuses it if too large."""

    client: Any
    queue: str | None
    task: str
    app: Celery

    def send_message(self, **kwargs: Any) -> Any:
        url = str(kwargs.get("QueueUrl", ""))
        queue = self.queue or url.rstrip("/").rsplit("/", 1)[-1]
        kwargs = prepare(kwargs, queue, self.task, self.app)
        try:
            return self.client.send_message(**kwargs)
        except ClientError as exc:
            if not _too_long(exc):
                raise
            # The queue's limit was lowered since it was read, or could not be read.
            forget_sizes()
            raise MessageTooLarge(
                self.task, queue, payloads.message_size(kwargs),
                max_message_size(queue, self.app, url), app_settings.LARGE_PAYLOAD_BUCKET,
            ) from None  # fmt: skip

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@contextmanager
def sized(producer: Any, app: Celery, task: str) -> Iterator[None]:
    """While a task is sent, kombu's SQS client for it checks (and offloads) the message."""
    from kombu.transport.SQS import Channel

    channel = getattr(producer, "channel", None)
    if not isinstance(channel, Channel):
        yield
        return
    shadowed = "sqs" in vars(channel)
    base: Callable[..., Any] = channel.sqs

    def sized_client(queue: str | None = None) -> SizedClient:
        return SizedClient(base(queue=queue), queue, task, app)

    # An instance attribute shadows Channel.sqs on this channel only, while this
    # task is sent; the producer (and so its channel) is ours alone meanwhile.
    channel.sqs = sized_client  # type: ignore[method-assign]
    try:
        yield
    finally:
        if shadowed:
            channel.sqs = base  # type: ignore[method-assign]
        else:
            del channel.sqs


@contextmanager
def collected(app: Celery) -> Iterator[list[payloads.Pointer]]:
    """The bodies stored while the block runs; deleted if it raises (nothing was sent)."""
    pointers: list[payloads.Pointer] = []
    token = offloaded.set(pointers)
    try:
        yield pointers
    except BaseException:
        discard(pointers, app)
        raise
    finally:
        offloaded.reset(token)


def discard_unsent(bodies: list[str], app: Celery) -> None:
    """Delete the stored bodies of the SQS bodies given (messages that were not sent)."""
    pointers = []
    for body in bodies:
        try:
            pointer = payloads.pointer_of(body)
        except payloads.PayloadError:
            continue
        if pointer is not None:
            pointers.append(pointer)
    discard(pointers, app)


def discard(pointers: list[payloads.Pointer], app: Celery) -> None:
    """Delete stored bodies whose messages were never sent (the sweep would, much later)."""
    if not pointers:
        return
    for error in payloads.delete(pointers, app):
        logger.warning("A stored body of an unsent message was not deleted: %s", error)
