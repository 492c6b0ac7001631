"""The visibility lease: messages the worker holds are kept invisible a short while at a time.

With a lease of ``L`` seconds the channel receives with ``VisibilityTimeout=L``
and, every ``L/3`` seconds, extends with ``ChangeMessageVisibilityBatch`` every
held message (prefetched or running) whose visibility ends within ``2L/3``,
until it is acknowledged or rejected, or the span the channel gives it has
passed (the longer of the visibility timeout and twice the task's hard time
limit; never past SQS's 12 hours from the receipt). A worker that dies stops
extending: its messages come back within one lease, not after the queue's
visibility timeout. The extensions run on a thread of their own, so a task
that blocks the event loop (the solo pool's) does not stop them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqs_broker.limits import MAX_BATCH_ENTRIES, MAX_VISIBILITY_TIMEOUT
from sqs_broker.transport.faults import Faults

logger = logging.getLogger(__name__)

#: Seconds kept free below SQS's 12 hours from a receipt, for the request's own time.
CEILING_MARGIN = 60.0

_total_lock = threading.Lock()
_total = 0


def extensions() -> int:
    """Messages whose visibility this process's leases extended, in all: for telemetry."""
    return _total


def _count(extended: int) -> None:
    global _total
    with _total_lock:
        _total += extended


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
    client: Any = field(default=None, repr=False)


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
    """The messages held under a lease of ``seconds``, extended ahead of their expiry.

    :meth:`hold` and :meth:`drop` are called on the hub thread; the extensions
    run on a thread of their own, so a task that blocks the event loop (the
    solo pool runs tasks on it) does not stop them.
    """

    def __init__(
        self,
        seconds: int,
        client_for: Callable[[str], Any],
        faults: Faults,
        timeout: float,
    ) -> None:
        self.seconds = seconds
        self.every = max(1.0, seconds / 3)
        self._client_for = client_for
        self._faults = faults
        self.timeout = timeout
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs_broker-lease", daemon=True)
        self._thread.start()
        #: Messages extended, and ChangeMessageVisibilityBatch requests sent for it.
        self.extensions = 0
        self.requests = 0

    def hold(self, queue: str, url: str, message: dict[str, Any], span: float | None) -> None:
        """Hold a message received now, extended for at most ``span`` seconds (None: 12 h)."""
        now = time.monotonic()
        ceiling = MAX_VISIBILITY_TIMEOUT - CEILING_MARGIN
        span = ceiling if span is None else min(ceiling, span)
        held = Held(
            queue,
            url,
            message["ReceiptHandle"],
            str(message.get("MessageId", "?")),
            now,
            now + self.seconds,
            now + span,
            self._client_for(queue),
        )
        with self._lock:
            self._held[held.receipt] = held

    def drop(self, receipt: str) -> Held | None:
        """The message is acknowledged, rejected or released: extend it no more."""
        with self._lock:
            return self._held.pop(receipt, None)

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.extend()
            except Exception:
                logger.exception("Extending the visibility of held messages failed")

    def extend(self) -> None:
        """Extend the held messages whose visibility ends within two ticks."""
        now = time.monotonic()
        due: dict[tuple[str, str], list[Held]] = {}
        expired: list[Held] = []
        with self._lock:
            for receipt, held in list(self._held.items()):
                if held.until <= now:
                    del self._held[receipt]
                    expired.append(held)
                elif held.expires - now <= 2 * self.every:
                    due.setdefault((held.queue, held.url), []).append(held)
        for held in expired:
            # Past its span: left to expire, SQS delivers it again.
            logger.warning(
                "Message %s on queue %s has been held %.0f s, past its task's time limit: no "
                "longer extended, SQS delivers it again when its visibility ends.",
                held.message_id,
                held.queue,
                now - held.received,
            )
        for (queue, url), entries in due.items():
            for start in range(0, len(entries), MAX_BATCH_ENTRIES):
                self._send(queue, url, entries[start : start + MAX_BATCH_ENTRIES], now)

    def _send(self, queue: str, url: str, batch: list[Held], now: float) -> None:
        self.requests += 1
        try:
            failed = dict(change_visibility(batch[0].client, url, batch, self.seconds))
        except Exception as exc:
            self._faults.failed("ChangeMessageVisibilityBatch", queue, exc)
            return
        self._faults.answered("ChangeMessageVisibilityBatch", queue)
        extended = 0
        with self._lock:
            for index, held in enumerate(batch):
                if index in failed:
                    # A stale receipt: the message was deleted, or its visibility ended.
                    if failed[index] in ("ReceiptHandleIsInvalid", "InvalidParameterValue"):
                        self._held.pop(held.receipt, None)
                    continue
                if held.receipt in self._held:
                    held.expires = now + self.seconds
                    extended += 1
            self.extensions += extended
        _count(extended)

    def close(self) -> list[Held]:
        """Stop extending; the messages still held (for the channel to release)."""
        self._stop.set()
        with self._lock:
            held, self._held = list(self._held.values()), {}
        return held
