"""Batched acknowledgements: deletes collected per queue and sent with DeleteMessageBatch."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqs_broker.limits import MAX_BATCH_ENTRIES
from sqs_broker.transport.faults import Faults

logger = logging.getLogger(__name__)

#: SQS's limit of entries per DeleteMessageBatch.
MAX_BATCH = MAX_BATCH_ENTRIES


@dataclass
class PendingDelete:
    receipt: str
    message_id: str
    failed_since: float | None = None


#: Sends one batch of deletes of a queue (name or None, URL); answers the failed entries
#: with their error codes.
SendBatch = Callable[[str | None, str, list[PendingDelete]], list[tuple[PendingDelete, str | None]]]


class AckBatcher:
    """Deletes collected per queue and sent with ``DeleteMessageBatch`` by one thread.

    A batch leaves when it holds :data:`MAX_BATCH` entries or when its first
    entry has waited ``window`` seconds. A failed entry or request is tried
    again with the backoff of ``faults`` for ``retry_for`` seconds (once more
    on closing), then logged with its message ids: SQS delivers those
    messages again after their visibility timeout.
    """

    def __init__(
        self,
        send: SendBatch,
        faults: Faults,
        window: float,
        retry_for: float = 60.0,
    ) -> None:
        self._send = send
        self._faults = faults
        self.window = window
        self.retry_for = retry_for
        self._cond = threading.Condition()
        self._pending: dict[tuple[str | None, str], list[PendingDelete]] = {}
        self._due: dict[tuple[str | None, str], float] = {}
        self._thread: threading.Thread | None = None
        self._busy = 0
        self._closed = False
        #: Requests sent and entries deleted, for the benchmarks and tests.
        self.requests = 0
        self.deleted = 0

    def add(self, queue: str | None, url: str, receipt: str, message_id: str) -> None:
        """Collect one delete; the thread sends it within ``window`` seconds."""
        with self._cond:
            key = (queue, url)
            entries = self._pending.setdefault(key, [])
            if not entries:
                self._due[key] = time.monotonic() + self.window
            entries.append(PendingDelete(receipt, message_id))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="sqs_broker-acks", daemon=True
                )
                self._thread.start()
            if len(entries) == 1 or len(entries) >= MAX_BATCH:
                # A new deadline, or a full batch: the thread may be waiting on neither.
                self._cond.notify()

    def pending(self) -> int:
        """Deletes collected and not yet sent."""
        with self._cond:
            return sum(len(entries) for entries in self._pending.values()) + self._busy

    def _take(self, everything: bool) -> list[tuple[tuple[str | None, str], list[PendingDelete]]]:
        now = time.monotonic()
        ready = []
        for key, entries in list(self._pending.items()):
            if everything or len(entries) >= MAX_BATCH or self._due[key] <= now:
                batch, rest = entries[:MAX_BATCH], entries[MAX_BATCH:]
                ready.append((key, batch))
                if rest:
                    self._pending[key] = rest
                    self._due[key] = now  # the rest of a backlog goes at once
                else:
                    del self._pending[key]
                    del self._due[key]
        return ready

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed and not self._pending:
                        return
                    ready = self._take(everything=self._closed)
                    if ready:
                        self._busy += sum(len(batch) for _, batch in ready)
                        break
                    wait = min(self._due.values()) - time.monotonic() if self._due else None
                    self._cond.wait(timeout=wait)
            for key, batch in ready:
                try:
                    self._flush_batch(key, batch)
                finally:
                    with self._cond:
                        self._busy -= len(batch)
                        self._cond.notify_all()

    def _flush_batch(self, key: tuple[str | None, str], batch: list[PendingDelete]) -> None:
        queue, url = key
        name = queue or url.rstrip("/").rsplit("/", 1)[-1]
        delay = 0.0
        self.requests += 1
        try:
            failed = self._send(queue, url, batch)
        except Exception as exc:
            delay = self._faults.failed("DeleteMessageBatch", name, exc)
            failed = [(entry, None) for entry in batch]
        else:
            self._faults.answered("DeleteMessageBatch", name)
        self.deleted += len(batch) - len(failed)
        now = time.monotonic()
        retry: list[PendingDelete] = []
        given_up: list[PendingDelete] = []
        for entry, code in failed:
            if entry.failed_since is None:
                entry.failed_since = now
            permanent = code in ("ReceiptHandleIsInvalid", "InvalidParameterValue")
            expired = now - entry.failed_since > self.retry_for
            (given_up if permanent or expired or self._closed else retry).append(entry)
        if given_up:
            logger.warning(
                "SQS DeleteMessageBatch on queue %s: %d message(s) not deleted (%s); SQS "
                "delivers them again after their visibility timeout.",
                name,
                len(given_up),
                ", ".join(entry.message_id for entry in given_up),
            )
        if retry:
            with self._cond:
                self._pending.setdefault(key, [])[:0] = retry
                self._due[key] = time.monotonic() + delay
                if delay and not self._closed:
                    # Back off; close() wakes the thread for one last attempt.
                    self._cond.wait(delay)

    def close(self, timeout: float) -> None:
        """Send everything collected, waiting at most ``timeout`` seconds; stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        left = self.pending()
        if left:
            logger.warning(
                "SQS DeleteMessageBatch: %d delete(s) not sent before closing; SQS delivers "
                "those messages again after their visibility timeout.",
                left,
            )


# --- the channel -----------------------------------------------------------------
