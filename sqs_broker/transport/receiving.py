"""The worker's receive loop: when to receive, how many, with what deadline, and what follows.

:class:`Receiving` is mixed into :class:`sqs_broker.transport.Channel` and replaces
kombu's ``_schedule_queue`` → ``_get_bulk_async`` → ``_get_async`` →
``_on_messages_ready`` → ``_loop1`` chain. Everything here runs on the hub
thread; the requests run on the I/O threads of :mod:`sqs_broker.transport.io`.

* **Batches.** A queue is received from when the free prefetch slots reach
  ``min(10, prefetch limit)``, when the first free slot has waited
  :attr:`Receiving.batch_wait` seconds, or at once when the worker holds
  nothing (an idle worker's pickup latency does not change). An
  acknowledgement or rejection wakes the loop (:class:`QoS`), with a timer as
  a safety net only, so a busy worker asks for close to 10 messages per
  request and an idle one picks a task up at once.
* **Deadlines.** A receive fails at its deadline (the long poll plus
  :attr:`Receiving.receive_margin`) or at once when its connection dies. While
  a queue fails, it is probed with short polls and short timeouts, so the end
  of an outage is seen within seconds; anything SQS answers starts the backoff
  low again. A queue SQS no longer knows is declared again.
* **What was received after the consumer left** (cancel, shutdown, a request
  the watchdog had given up) is made visible again at once.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError
from kombu.transport import SQS

from sqs_broker.limits import MAX_BATCH_ENTRIES
from sqs_broker.transport import liveness
from sqs_broker.transport.faults import Faults, describe
from sqs_broker.transport.io import Requests

logger = logging.getLogger(__name__)

#: SQS's limit of messages per ReceiveMessage.
MAX_RECEIVE = MAX_BATCH_ENTRIES
#: Error codes of a queue that no longer exists (query and JSON protocols).
NO_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


class QoS(SQS.QoS):
    """kombu's SQS QoS that tells the channel each time a prefetch slot frees."""

    def ack(self, delivery_tag: str) -> None:
        super().ack(delivery_tag)
        self.channel._slot_freed(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().reject(delivery_tag, requeue=requeue)
        self.channel._slot_freed(delivery_tag)


class Receiving:
    """The receive loop of :class:`sqs_broker.transport.Channel` (see the module's docstring)."""

    # Set by kombu's channel (declared here for the type checker).
    qos: Any
    hub: Any
    connection: Any
    closed: bool
    _active_queues: list[str]
    wait_time_seconds: int
    transport_options: Any
    get_message_attributes: Any
    _queue_cache: Any
    _faults: Faults
    _qos: Any
    acks: Any
    lease: Any
    # kombu's channel methods the loop calls.
    canonical_queue_name: Any
    sqs: Any
    _new_queue: Any
    _new_boto_client: Any
    new_sqs_client: Any

    #: Seconds the first free prefetch slot waits for others before a smaller receive
    #: (transport option ``receive_batch_wait``). Measured in docs/reliability.md: at
    #: the example project's defaults a task takes tens of milliseconds, and 20 ms
    #: gathered 3-4 slots a receive.
    batch_wait = 0.25
    #: Seconds between two looks for a free slot while the buffer is full (a safety
    #: net: acknowledgements wake the loop).
    capacity_check_interval = 0.25
    #: Seconds a long poll may take beyond its wait before it counts as unanswered.
    receive_margin = 5.0
    #: Long-poll wait and read timeout of the probes sent while a queue fails.
    probe_wait = 1
    probe_timeout = 3.0
    #: Connect timeout and the deadline of every other request.
    connect_timeout = 3.0
    request_timeout = 5.0
    #: Most backoff between two probes when SQS gives no answer at all.
    probe_cap = 1.0
    #: Threads making the SQS requests.
    io_threads = 4

    def _receiving_init(self) -> None:
        self._requests: Requests | None = None
        self._in_flight: dict[str, Any] = {}  # queue -> its receive request
        # queue -> (timer, whether a free slot ends it early)
        self._timers: dict[str, tuple[Any, bool]] = {}
        self._first_free: dict[str, float] = {}
        self._consuming: set[str] = set()
        self._io_clients: dict[tuple[Any, ...], Any] = {}
        self._closing = False
        #: ReceiveMessage requests sent and messages they brought, for tests and benchmarks.
        self.receives = 0
        self.received = 0

    # --- the loop ----------------------------------------------------------------

    def _io(self) -> Requests:
        """The I/O threads, attached to the hub on first use (on the hub thread)."""
        if self.hub is None:
            raise RuntimeError("the SQS channel polls only inside a worker's event loop")
        if self._requests is None:
            self._requests = Requests(self.io_threads)
            self._requests.attach(self.hub)
            self._io_started()
        return self._requests

    def _io_started(self) -> None:
        """Hook: the I/O threads are attached (the channel starts its batchers here)."""

    def _schedule_queue(self, queue: str) -> None:
        """Receive from ``queue`` when the batching rule says so, else wait for a slot or timer."""
        if self._closing or queue not in self._active_queues or queue in self._in_flight:
            return
        io = self._io()
        if queue not in self._consuming:
            self._consuming.add(queue)
            liveness.expect(queue, self._stall_after())
        timer = self._timers.get(queue)
        if timer is not None:
            if not timer[1]:  # a backoff or polling pause: not cut short by a free slot
                return
            self._cancel_timer(queue)
        if not self.qos.can_consume():
            liveness.progressed(queue)  # busy is not stalled
            self._first_free.pop(queue, None)
            self._later(self.capacity_check_interval, queue, early=True)
            return
        free = self.qos.can_consume_max_estimate()
        failing = self._faults.failing("ReceiveMessage", self.canonical_queue_name(queue))
        if free is not None and not failing and free < min(MAX_RECEIVE, self.qos.prefetch_count):
            now = time.monotonic()
            since = self._first_free.setdefault(queue, now)
            if now - since < self.batch_wait:
                self._later(since + self.batch_wait - now, queue, early=True)
                return
        self._first_free.pop(queue, None)
        count = MAX_RECEIVE if free is None else max(1, min(free, MAX_RECEIVE))
        self._receive(io, queue, count, probe=failing)

    def _stall_after(self) -> float:
        return self.wait_time_seconds + self.receive_margin + 10.0

    def _receive(self, io: Requests, queue: str, count: int, probe: bool) -> None:
        qname = self.canonical_queue_name(queue)
        wait = min(self.probe_wait, self.wait_time_seconds) if probe else self.wait_time_seconds
        timeout = self.probe_timeout if probe else wait + self.receive_margin
        params: dict[str, Any] = {"MaxNumberOfMessages": count, "WaitTimeSeconds": wait}
        for key, names in self.get_message_attributes.items():
            if names:
                params[key] = list(names)
        if self.lease is not None:
            params["VisibilityTimeout"] = self.lease.seconds
        try:
            client = self._io_client(qname, timeout)
        except Exception as exc:  # credentials, STS: before any request
            self._failed(queue, qname, exc)
            return
        new_queue = self._new_queue

        def call() -> tuple[str, Any]:
            url = new_queue(queue)  # a dict lookup, or the queue declared again
            return url, client.receive_message(QueueUrl=url, **params)

        self.receives += 1
        self._in_flight[queue] = io.submit(
            "ReceiveMessage",
            qname,
            call,
            timeout,
            partial(self._on_answer, queue, qname),
            partial(self._release_answer, qname, client),
        )

    def _on_answer(
        self, queue: str, qname: str, answer: tuple[str, Any] | None, error: BaseException | None
    ) -> None:
        self._in_flight.pop(queue, None)
        if error is not None:
            code = ""
            if isinstance(error, ClientError):
                code = error.response.get("Error", {}).get("Code", "")
            if code in NO_QUEUE_CODES:
                # Declared again by _new_queue() on the next attempt, made at once.
                self._queue_cache.pop(qname, None)
            self._failed(queue, qname, error, at_once=code in NO_QUEUE_CODES)
            return
        url, response = answer or ("", {})
        liveness.progressed(queue)
        self._answered("ReceiveMessage", qname)
        messages = response.get("Messages") or []
        self.received += len(messages)
        if messages and (self._closing or queue not in self._active_queues):
            self._release(qname, url, messages, "the consumer is gone")
            return
        if messages:
            self._took(queue, qname, url, messages)
            # A timer due now, not call_soon: the loop runs it after the callbacks
            # already queued, among them the acknowledgements of what was just
            # delivered, so the next receive sees the slots they free.
            self._later(0, queue, early=True)
        elif self.connection.polling_interval:
            self._later(self.connection.polling_interval, queue, early=False)
        else:
            self._later(0, queue, early=True)

    def _took(self, queue: str, qname: str, url: str, messages: list[dict[str, Any]]) -> None:
        """Hand received messages to the consumer (the channel holds them under its lease)."""
        raise NotImplementedError

    def _failed(self, queue: str, qname: str, exc: BaseException, at_once: bool = False) -> None:
        delay = 0.0 if at_once else self._faults.failed("ReceiveMessage", qname, exc)
        if at_once:
            self._faults.failed("ReceiveMessage", qname, exc)
        elif not isinstance(exc, ClientError):
            # No answer at all (refused, reset, timed out): each probe is short and
            # bounded by its own deadline, so the end of the outage is found fast.
            delay = min(delay, self.probe_cap)
        if queue in self._active_queues and not self._closing:
            self._later(delay, queue, early=False)

    def _answered(self, operation: str, qname: str) -> None:
        """SQS answered: end the outage and start every queue's backoff low again."""
        self._faults.answered(operation, qname)
        relaxed = {queue for op, queue in self._faults.relax() if op == "ReceiveMessage"}
        for queue, (_, early) in list(self._timers.items()):
            if not early and self.canonical_queue_name(queue) in relaxed:
                self._cancel_timer(queue)
                self._later(0, queue, early=True)

    def _later(self, delay: float, queue: str, early: bool) -> None:
        self._cancel_timer(queue)
        token: list[Any] = []
        entry = self.hub.call_later(delay, self._resume, queue, token)
        token.append(entry)
        self._timers[queue] = (entry, early)

    def _resume(self, queue: str, token: list[Any]) -> None:
        current = self._timers.get(queue)
        if current is None or current[0] is not token[0]:
            return
        del self._timers[queue]
        self._schedule_queue(queue)

    def _cancel_timer(self, queue: str) -> None:
        timer = self._timers.pop(queue, None)
        if timer is not None:
            timer[0].cancel()

    def _slot_freed(self, delivery_tag: str) -> None:
        """A delivery was acknowledged or rejected (any thread): wake the loop on the hub."""
        io = self._requests
        if io is None:
            return
        if io.on_hub():
            self._on_slot_freed(delivery_tag)
        else:
            io.post(partial(self._on_slot_freed, delivery_tag))

    def _on_slot_freed(self, delivery_tag: str) -> None:
        if self.lease is not None:
            self.lease.drop(delivery_tag)
        for queue, (_, early) in list(self._timers.items()):
            if early:
                self._schedule_queue(queue)

    def _stop_consuming(self, queue: str) -> None:
        self._cancel_timer(queue)
        self._first_free.pop(queue, None)
        self._consuming.discard(queue)
        liveness.forget(queue)

    # --- clients and releases ------------------------------------------------------

    def _io_client(self, qname: str | None, read_timeout: float) -> Any:
        """A botocore client for ``qname``'s credentials: our timeouts, no retries of its own."""
        base = self.sqs(queue=qname)
        credentials = base._request_signer._credentials
        if credentials is None or type(self).new_sqs_client is not SQS.Channel.new_sqs_client:
            # Unsigned, or a client an override builds: its own configuration stays
            # (the watchdog still bounds every request).
            return base
        # Current credentials: an STS or instance-role client gets a new copy once
        # they change.
        frozen = credentials.get_frozen_credentials()
        key = (base.meta.region_name, frozen.access_key, frozen.token, read_timeout)
        client = self._io_clients.get(key)
        if client is None:
            if len(self._io_clients) > 32:
                self._io_clients.clear()
            config = Config(
                connect_timeout=self.connect_timeout,
                read_timeout=read_timeout,
                retries={"total_max_attempts": 1},
                max_pool_connections=self.io_threads * 2,
            )
            client = self._io_clients[key] = self._new_boto_client(
                service="sqs",
                region=base.meta.region_name,
                access_key_id=frozen.access_key,
                secret_access_key=frozen.secret_key,
                session_token=frozen.token,
                config=config,
            )
        return client

    def _release(self, qname: str, url: str, messages: list[dict[str, Any]], why: str) -> None:
        """Make ``messages`` visible again now, through the I/O threads (on the hub)."""
        try:
            client = self._io_client(qname, self.request_timeout)
        except Exception as exc:
            self._release_failed(qname, len(messages), exc)
            return
        logger.info("Releasing %d message(s) of queue %s: %s", len(messages), qname, why)
        if self._requests is None or self._closing:
            self._release_now(qname, client, url, messages)
            return
        self._requests.submit(
            "ChangeMessageVisibilityBatch",
            qname,
            partial(release_messages, client, url, messages),
            self.request_timeout,
            partial(self._release_answered, qname, len(messages)),
        )

    def _release_answer(self, qname: str, client: Any, answer: tuple[str, Any]) -> None:
        """A receive answered after nobody waited for it (any thread): release its messages."""
        url, response = answer
        messages = response.get("Messages") or []
        if messages:
            logger.info(
                "Releasing %d message(s) of queue %s received after the consumer stopped waiting",
                len(messages),
                qname,
            )
            self._release_now(qname, client, url, messages)

    def _release_now(self, qname: str, client: Any, url: str, messages: list[Any]) -> None:
        try:
            release_messages(client, url, messages)
        except Exception as exc:
            self._release_failed(qname, len(messages), exc)

    def _release_answered(self, qname: str, n: int, _: Any, error: BaseException | None) -> None:
        if error is not None:
            self._release_failed(qname, n, error)

    def _release_failed(self, qname: str, count: int, exc: BaseException) -> None:
        logger.warning(
            "SQS ChangeMessageVisibilityBatch on queue %s: %d message(s) not released (%s); "
            "they return when their visibility timeout ends.",
            qname,
            count,
            describe(exc),
        )

    def _release_unacked(self) -> None:
        """At close: release what the worker received and never ran, at once."""
        qos = getattr(self, "_qos", None)  # None: nothing was ever delivered
        if qos is None:
            return
        qos._flush()
        by_queue: dict[tuple[str, str], list[Any]] = {}
        for tag, message in list(qos._delivered.items()):
            info = message.delivery_info
            if "sqs_message" not in info:
                continue
            qname = self.canonical_queue_name(info.get("routing_key") or "")
            by_queue.setdefault((qname, info["sqs_queue"]), []).append(info["sqs_message"])
            # Released here: kombu's close would publish a copy of it instead.
            del qos._delivered[tag]
        for (qname, url), messages in by_queue.items():
            self._release(qname, url, messages, "received but not run before closing")


def release_messages(client: Any, url: str, messages: list[dict[str, Any]]) -> None:
    """Make ``messages`` visible again now (``ChangeMessageVisibilityBatch``, 10 at a time)."""
    for start in range(0, len(messages), MAX_BATCH_ENTRIES):
        batch = messages[start : start + MAX_BATCH_ENTRIES]
        client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for n, m in enumerate(batch)
            ],
        )
