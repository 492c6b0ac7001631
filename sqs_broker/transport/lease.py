"""The visibility lease: messages the worker holds are kept invisible a short while at a time.

With a lease of ``L`` seconds the channel receives with ``VisibilityTimeout=L``
and, every ``L/3`` seconds, extends with ``ChangeMessageVisibilityBatch`` every
held message (prefetched or running) whose visibility ends within ``2L/3``,
until it is acknowledged or rejected, or its task's hard time limit has passed
(SQS allows no more than 12 hours from the receipt). A worker that dies stops
extending: its messages come back within one lease, not after the queue's
visibility timeout. Used on the hub thread only; the requests go through the
channel's I/O threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqs_broker.limits import MAX_BATCH_ENTRIES, MAX_VISIBILITY_TIMEOUT
from sqs_broker.transport.faults import Faults
from sqs_broker.transport.io import Requests

logger = logging.getLogger(__name__)

#: Seconds kept free below SQS's 12 hours from a receipt, for the request's own time.
CEILING_MARGIN = 60.0


@dataclass
class Held:
    queue: str
    url: str
    receipt: str
    message_id: str
    received: float
    expires: float
    #: Monotonic time after which the message is no longer extended.
    until: float


def change_visibility(
    client: Any, url: str, entries: list[Held], seconds: int
) -> list[tuple[int, str]]:
    """One ``ChangeMessageVisibilityBatch``: the failed entries' indexes with their codes."""
    answer = client.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(n), "ReceiptHandle": e.receipt, "VisibilityTimeout": seconds}
            for n, e in enumerate(entries)
        ],
    )
    return [(int(f["Id"]), str(f.get("Code") or "")) for f in answer.get("Failed") or []]


class Lease:
    """The messages held under a lease of ``seconds``, extended ahead of their expiry."""

    def __init__(
        self,
        seconds: int,
        requests: Requests,
        client_for: Callable[[str], Any],
        call_repeatedly: Callable[[float, Callable[[], None]], Any],
        faults: Faults,
        timeout: float,
    ) -> None:
        self.seconds = seconds
        self.every = max(1.0, seconds / 3)
        self._requests = requests
        self._client_for = client_for
        self._faults = faults
        self.timeout = timeout
        self._held: dict[str, Held] = {}
        self._timer = call_repeatedly(self.every, self.extend)
        #: Messages extended, and ChangeMessageVisibilityBatch requests sent for it.
        self.extensions = 0
        self.requests = 0

    def hold(self, queue: str, url: str, message: dict[str, Any], hard_limit: float | None) -> None:
        """Hold a message received now, extended for at most ``hard_limit`` seconds (None: 12 h)."""
        now = time.monotonic()
        ceiling = MAX_VISIBILITY_TIMEOUT - CEILING_MARGIN
        span = ceiling if hard_limit is None else min(ceiling, hard_limit)
        self._held[message["ReceiptHandle"]] = Held(
            queue,
            url,
            message["ReceiptHandle"],
            str(message.get("MessageId", "?")),
            now,
            now + self.seconds,
            now + span,
        )

    def drop(self, receipt: str) -> Held | None:
        """The message is acknowledged, rejected or released: extend it no more."""
        return self._held.pop(receipt, None)

    def held(self) -> int:
        return len(self._held)

    def receipts(self) -> list[str]:
        return list(self._held)

    def extend(self) -> None:
        """Extend the held messages whose visibility ends within two ticks; on the hub."""
        now = time.monotonic()
        due: dict[tuple[str, str], list[Held]] = {}
        for receipt, held in list(self._held.items()):
            if held.until <= now:
                # Past its task's hard time limit: left to expire, SQS delivers it again.
                del self._held[receipt]
                logger.warning(
                    "Message %s on queue %s is held past its task's hard time limit: no "
                    "longer extended, SQS delivers it again when its visibility ends.",
                    held.message_id,
                    held.queue,
                )
                continue
            if held.expires - now <= 2 * self.every:
                due.setdefault((held.queue, held.url), []).append(held)
        for (queue, url), entries in due.items():
            for start in range(0, len(entries), MAX_BATCH_ENTRIES):
                self._send(queue, url, entries[start : start + MAX_BATCH_ENTRIES], now)

    def _send(self, queue: str, url: str, batch: list[Held], now: float) -> None:
        try:
            client = self._client_for(queue)
        except Exception as exc:
            self._faults.failed("ChangeMessageVisibilityBatch", queue, exc)
            return
        self.requests += 1
        seconds = self.seconds

        def done(answer: list[tuple[int, str]] | None, error: BaseException | None) -> None:
            if error is not None:
                self._faults.failed("ChangeMessageVisibilityBatch", queue, error)
                return
            self._faults.answered("ChangeMessageVisibilityBatch", queue)
            failed = dict(answer or [])
            for index, held in enumerate(batch):
                if index in failed:
                    # A stale receipt: the message was deleted, or its visibility ended.
                    if failed[index] in ("ReceiptHandleIsInvalid", "InvalidParameterValue"):
                        self._held.pop(held.receipt, None)
                    continue
                if held.receipt in self._held:
                    held.expires = now + seconds
                    self.extensions += 1

        self._requests.submit(
            "ChangeMessageVisibilityBatch",
            queue,
            lambda: change_visibility(client, url, batch, seconds),
            self.timeout,
            done,
        )

    def close(self) -> list[Held]:
        """Stop extending; the messages still held (for the channel to release)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = list(self._held.values()), {}
        return held
