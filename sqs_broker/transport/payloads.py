"""The worker's side of offloaded task messages: the body read before decoding, deleted after ack.

A received SQS body that is an S3 pointer (:mod:`sqs_broker.payloads`) is
replaced by the stored body before the channel decodes it (:func:`body_of`).
The object is kept while the message may come back: it is deleted only after
the acknowledgement deleted the message from SQS (:func:`acknowledged`), never
when the message is rejected, redelivered, moved to a dead-letter queue or
quarantined, so a redelivery still finds its body and a moved message keeps a
readable pointer. Objects whose acknowledgement this process never saw (a
worker killed mid-task, a dead-letter queue drained by hand) are the sweep's
(``manage.py sqs_payloads sweep``).

A pointer that cannot be honoured is :class:`~sqs_broker.transport.poison.Poison`:
a pointer to another bucket than the configured one (a message must not make
a worker read an arbitrary object), a missing or unreadable object, or no
bucket configured on this worker. An S3 that does not answer (after the
client's retries) raises :class:`Unavailable`: the message is left in the
queue and comes back after its visibility timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from sqs_broker import limits, payloads
from sqs_broker.transport.poison import Poison

logger = logging.getLogger(__name__)


class Unavailable(Exception):
    """S3 did not answer for a stored body: leave the message for a later delivery."""


class Held:
    """Pointers of delivered messages by receipt handle, until their acknowledgement.

    A receipt that is never acknowledged (the task was rejected, the worker
    gave the message back) is dropped after SQS's longest visibility timeout:
    by then that receipt can no longer delete its message.
    """

    def __init__(self, ttl: float = limits.MAX_VISIBILITY_TIMEOUT) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._by_receipt: dict[str, tuple[payloads.Pointer, float]] = {}
        self._pruned = time.monotonic()
        #: Bodies read from S3 and objects deleted by this process (tests, telemetry).
        self.resolved = 0
        self.deleted = 0

    def add(self, receipt: str, pointer: payloads.Pointer) -> None:
        """Remember ``pointer`` until ``receipt`` is acknowledged (or too old to be)."""
        now = time.monotonic()
        with self._lock:
            self._by_receipt[receipt] = (pointer, now)
            self.resolved += 1
            if now - self._pruned > 60:
                self._pruned = now
                for old in [r for r, (_, at) in self._by_receipt.items() if now - at > self.ttl]:
                    del self._by_receipt[old]

    def pop(self, receipts: Iterable[str]) -> list[payloads.Pointer]:
        """The pointers of ``receipts`` (those held), forgotten."""
        with self._lock:
            found = [self._by_receipt.pop(r, None) for r in receipts]
        return [held[0] for held in found if held is not None]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_receipt)


#: This process's held pointers.
held = Held()


def body_of(message: dict[str, Any]) -> Any:
    """The body to decode: the stored one for a pointer, else the SQS body itself.

    Raises :class:`Poison` for a pointer that cannot be honoured and
    :class:`Unavailable` when S3 does not answer.
    """
    raw = message["Body"]
    try:
        pointer = payloads.pointer_of(raw)
    except payloads.PayloadError as exc:
        raise Poison(str(exc)) from None
    if pointer is None:
        return raw
    try:
        body = payloads.fetch(pointer)
    except ImproperlyConfigured as exc:
        raise Poison(f"it is stored in S3 but the worker's settings are wrong: {exc}") from None
    except payloads.PayloadError as exc:
        if exc.permanent:
            raise Poison(str(exc)) from None
        raise Unavailable(str(exc)) from None
    receipt = message.get("ReceiptHandle")
    if receipt:
        held.add(receipt, pointer)
    return body


def acknowledged(receipts: Iterable[str]) -> None:
    """Delete the stored bodies of messages whose deletion from SQS just succeeded.

    A failed delete is logged and left to the sweep: the message is gone, so
    nothing reads the object again.
    """
    pointers = held.pop(receipts)
    if not pointers:
        return
    errors = payloads.delete(pointers)
    held.deleted += len(pointers) - len(errors)
    for error in errors:
        logger.warning(
            "The stored body of an acknowledged message was not deleted (%s); "
            "manage.py sqs_payloads sweep deletes it later.",
            error,
        )
