"""Batched acknowledgements: deletes collected per queue on the hub, sent with DeleteMessageBatch.

The batches are kept and timed on the event loop's thread (hub timers) and sent
through the channel's I/O threads (:mod:`sqs_broker.transport.io`), so there is
no thread of their own and no exit hook: the channel's ``close`` sends what is
left, bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from sqs_broker.limits import MAX_BATCH_ENTRIES
from sqs_broker.transport.faults import Fault, Faults
from sqs_broker.transport.io import Requests

logger = logging.getLogger(__name__)

#: SQS's limit of entries per DeleteMessageBatch.
MAX_BATCH = MAX_BATCH_ENTRIES
#: Entry errors that no retry mends: the receipt handle is stale or unknown.
PERMANENT = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue"})

Key = tuple[str | None, str]


@dataclass
class PendingDelete:
    receipt: str
    message_id: str
    failed_since: float | None = None


def delete_batch(client: Any, url: str, batch: list[PendingDelete]) -> list[tuple[int, str]]:
    """One ``DeleteMessageBatch``: the indexes of the entries that failed, with their codes."""
    answer = client.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(n), "ReceiptHandle": e.receipt} for n, e in enumerate(batch)],
    )
    return [(int(f["Id"]), str(f.get("Code") or "")) for f in answer.get("Failed") or []]


class AckBatcher:
    """Deletes collected per queue, sent with ``DeleteMessageBatch``; used on the hub thread only.

    A batch leaves when it holds :data:`MAX_BATCH` entries or when its first
    entry has waited ``window`` seconds. A failed request, or failed entries,
    hold the queue's deletes back with the backoff of ``faults`` (the same as a
    failed receive) for up to ``retry_for`` seconds, then the entries are
    logged with their message ids: SQS delivers those messages again after
    their visibility timeout.
    """

    def __init__(
        self,
        requests: Requests,
        client_for: Callable[[str | None], Any],
        call_later: Callable[[float, Callable[[], None]], Any],
        faults: Faults,
        window: float,
        timeout: float,
        retry_for: float = 60.0,
        fifo_window: float | None = None,
    ) -> None:
        self._requests = requests
        self._client_for = client_for
        self._call_later = call_later
        self._faults = faults
        self.window = window
        self.fifo_window = window if fifo_window is None else fifo_window
        self.timeout = timeout
        self.retry_for = retry_for
        self._pending: dict[Key, list[PendingDelete]] = {}
        self._timers: dict[Key, Any] = {}
        self._held_until: dict[Key, float] = {}
        self._sending = 0
        self.closed = False
        #: Requests sent and entries deleted, for the benchmarks and tests.
        self.requests = 0
        self.deleted = 0
        #: Called with the receipt handles SQS deleted (an offloaded body goes after its message).
        self.on_deleted: Callable[[set[str]], None] | None = None

    def add(self, queue: str | None, url: str, receipt: str, message_id: str) -> None:
        """Collect one delete; it leaves within ``window`` seconds (or when SQS answers again)."""
        key = (queue, url)
        if self.closed:
            # A task that ended while the channel closed: no batch will leave any more.
            self._delete_now(key, PendingDelete(receipt, message_id))
            return
        entries = self._pending.setdefault(key, [])
        entries.append(PendingDelete(receipt, message_id))
        if len(entries) >= MAX_BATCH:
            self._flush(key)
        elif key not in self._timers:
            self._timers[key] = self._call_later(self._window(key), lambda: self._due(key))

    def _window(self, key: Key) -> float:
        return self.fifo_window if key[1].endswith(".fifo") else self.window

    def _delete_now(self, key: Key, entry: PendingDelete) -> None:
        try:
            failed = delete_batch(self._client_for(key[0]), key[1], [entry])
        except Exception as exc:
            failed = [(0, type(exc).__name__)]
        self.requests += 1
        if failed:
            logger.warning(
                "SQS DeleteMessageBatch on queue %s: message %s not deleted after closing "
                "(%s); SQS delivers it again after its visibility timeout.",
                _name(key),
                entry.message_id,
                failed[0][1],
            )
        else:
            self.deleted += 1
            self._deleted({entry.receipt})

    def _deleted(self, receipts: set[str]) -> None:
        if self.on_deleted is not None and receipts:
            try:
                self.on_deleted(receipts)
            except Exception:  # the delete stands; what failed to follow it is said
                logger.exception("After deleting %d message(s)", len(receipts))

    def pending(self) -> int:
        """Deletes collected and not yet answered."""
        return sum(len(entries) for entries in self._pending.values()) + self._sending

    def _due(self, key: Key) -> None:
        self._timers.pop(key, None)
        self._flush(key, everything=True)

    def _flush(self, key: Key, everything: bool = False) -> None:
        """Send the full batches of ``key`` (and the partial one when ``everything``)."""
        if self.closed:
            return
        held = self._held_until.get(key, 0.0) - time.monotonic()
        if held > 0:  # backing off: one timer sends everything once the wait is over
            if key not in self._timers:
                self._timers[key] = self._call_later(held, lambda: self._due(key))
            return
        entries = self._pending.get(key) or []
        while len(entries) >= MAX_BATCH or (entries and everything):
            batch, entries[:] = entries[:MAX_BATCH], entries[MAX_BATCH:]
            self._send(key, batch)
        if not entries:
            self._pending.pop(key, None)
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
        elif key not in self._timers:
            self._timers[key] = self._call_later(self._window(key), lambda: self._due(key))

    def _send(self, key: Key, batch: list[PendingDelete]) -> None:
        queue, url = key
        name = _name(key)
        try:
            client = self._client_for(queue)
        except Exception as exc:  # credentials, signing: before any request
            self._answered(key, batch, None, exc)
            return
        self.requests += 1
        self._sending += len(batch)
        self._requests.submit(
            "DeleteMessageBatch",
            name,
            lambda: delete_batch(client, url, batch),
            self.timeout,
            lambda answer, error: self._answered(key, batch, answer, error),
        )

    def _answered(
        self,
        key: Key,
        batch: list[PendingDelete],
        answer: list[tuple[int, str]] | None,
        error: BaseException | None,
    ) -> None:
        self._sending = max(0, self._sending - len(batch))
        name = _name(key)
        failed: list[tuple[PendingDelete, str]]
        if error is not None:
            failed = [(entry, "") for entry in batch]
            delay = self._faults.failed("DeleteMessageBatch", name, error)
        else:
            failed = [(batch[index], code) for index, code in answer or []]
            retriable = [code for _, code in failed if code not in PERMANENT]
            if retriable:
                reason = Fault(f"{len(retriable)} of {len(batch)} entries failed", retriable[0])
                delay = self._faults.failed("DeleteMessageBatch", name, reason)
            else:
                self._faults.answered("DeleteMessageBatch", name)
                self._held_until.pop(key, None)
                delay = 0.0
        self.deleted += len(batch) - len(failed)
        if error is None:
            self._deleted({e.receipt for e in batch} - {e.receipt for e, _ in failed})
        now = time.monotonic()
        retry: list[PendingDelete] = []
        given_up: list[PendingDelete] = []
        for entry, code in failed:
            if entry.failed_since is None:
                entry.failed_since = now
            expired = now - entry.failed_since > self.retry_for
            (given_up if code in PERMANENT or expired or self.closed else retry).append(entry)
        if given_up:
            logger.warning(
                "SQS DeleteMessageBatch on queue %s: %d message(s) not deleted (%s); SQS "
                "delivers them again after their visibility timeout.",
                name,
                len(given_up),
                ", ".join(entry.message_id for entry in given_up),
            )
        if retry and not self.closed:
            self._pending.setdefault(key, [])[:0] = retry
            self._held_until[key] = now + delay
            self._flush(key, everything=True)

    def close(self, timeout: float) -> None:
        """Send everything collected now, waiting at most ``timeout`` seconds for SQS."""
        self.closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        started = time.monotonic()
        futures = []
        for key, entries in self._pending.items():
            queue, url = key
            while entries:
                batch, entries[:] = entries[:MAX_BATCH], entries[MAX_BATCH:]
                try:
                    client = self._client_for(queue)
                except Exception as exc:
                    logger.warning("SQS DeleteMessageBatch on queue %s: %s", _name(key), exc)
                    continue
                futures.append((key, batch, self._requests.executor.submit(
                    delete_batch, client, url, batch
                )))  # fmt: skip
        self._pending.clear()
        running: list[Future[Any]] = [
            r.future for r in self._requests.pending("DeleteMessageBatch") if r.future
        ]
        wait(
            [f for _, _, f in futures] + running,
            max(0.0, timeout - (time.monotonic() - started)),
        )
        left = 0
        for _, batch, future in futures:
            if not future.done() or future.exception() is not None:
                left += len(batch)
                continue
            failed = future.result()
            self.deleted += len(batch) - len(failed)
            left += len(failed)
        left += sum(1 for future in running if not future.done())
        if left:
            logger.warning(
                "SQS DeleteMessageBatch: %d delete(s) not sent before closing; SQS delivers "
                "those messages again after their visibility timeout.",
                left,
            )


def _name(key: Key) -> str:
    queue, url = key
    return queue or url.rstrip("/").rsplit("/", 1)[-1]
