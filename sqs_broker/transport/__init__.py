"""The project's kombu SQS transport: kombu 5.7's, with what a worker depends on replaced.

:func:`sqs_broker.settings.include` selects it through Celery's ``broker_transport``
(``sqs_broker.transport:Transport``); the broker URL keeps its ``sqs://`` scheme.
``SQS_TRANSPORT=kombu`` selects kombu's own instead. Publishing, queue creation,
requeue, backoff policies and the blocking ``drain_events`` path are
kombu's. Five things of ``kombu.transport.SQS.Channel`` are replaced, each in one
place and each for a bug or a cost of kombu's (see docs/reliability.md for the
reproductions):

* **Receiving** (:meth:`Channel._schedule_queue`, replacing kombu's
  ``_schedule_queue`` → ``_get_bulk_async`` → ``_get_async`` → ``_on_messages_ready``
  → ``_loop1`` chain). kombu hands a failed request to ``_on_messages_ready`` as a
  list (``AttributeError`` kills the worker) or raises out of the event loop; here
  every failure is logged once per outage, retried with capped, jittered
  exponential backoff, and a queue that disappeared is declared again. kombu
  sleeps ``polling_interval`` while the prefetch buffer is full; here the channel
  checks for a free slot every :attr:`Channel.capacity_check_interval` (no request
  is made) and asks for as many messages as slots are free.
* **Decoding** (:meth:`Channel._deliver`). Each message is checked against the
  contract of the consumer it is for (:meth:`Channel.basic_consume` records it):
  for Celery's task consumer, every level (SQS body, kombu envelope, body
  encoding, compression, serializer with that consumer's ``accept``, and every
  header of the task protocol); for any other consumer, kombu's behaviour with
  its own ``accept``. What fails is moved aside (:mod:`.quarantine`): to the
  queue's dead-letter queue, or else to ``<queue>-quarantine``, never deleted
  without a copy, and counted once. kombu raises on most of them (the worker
  dies, again on every restart); Celery deletes the rest.
* **Rejecting** (:meth:`Channel.basic_reject`). A message rejected without
  requeue (an unregistered task, one Celery finds invalid) is moved aside the
  same way, with Celery's reason (:mod:`.worker`); kombu deletes it.
* **Acknowledging** (:meth:`Channel.basic_ack`). Deletes are collected and sent
  with ``DeleteMessageBatch`` (10 per request) after at most
  :attr:`Channel.ack_window` seconds, by one thread per channel; kombu sends one
  ``DeleteMessage`` per task from the event loop.
* **Closing** (:meth:`Channel.close`): the collected deletes are sent first.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import kombu
from kombu import messaging
from kombu.asynchronous.aws.sqs.connection import _query_object_encode
from kombu.transport import SQS, virtual
from kombu.utils.encoding import bytes_to_str
from vine import promise

from sqs_broker.limits import MAX_BATCH_ENTRIES
from sqs_broker.topology import is_quarantine, quarantine_name
from sqs_broker.transport import payloads
from sqs_broker.transport.acks import AckBatcher, PendingDelete
from sqs_broker.transport.faults import Fault, Faults, answer_of
from sqs_broker.transport.poison import (
    KOMBU_CONTRACT,
    Contract,
    Poison,
    check_envelope,
    contract_of,
    envelope_of,
)
from sqs_broker.transport.quarantine import Quarantine

__all__ = ["Channel", "Transport", "is_quarantine", "quarantine_name"]

logger = logging.getLogger(__name__)

#: kombu versions this module is tested with: it overrides kombu internals.
KOMBU_TESTED = ((5, 7), (5, 8))  # >= 5.7, < 5.8
#: SQS's limit of messages per ReceiveMessage.
MAX_RECEIVE = MAX_BATCH_ENTRIES
#: Error codes of a queue that no longer exists (query and JSON protocols).
NO_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
#: The system attribute a FIFO message's copy needs (its group).
GROUP_ATTRIBUTE = "MessageGroupId"


def kombu_version() -> tuple[int, int]:
    """``(major, minor)`` of the installed kombu."""
    major, minor = kombu.__version__.split(".")[:2]
    return int(major), int(minor)


def kombu_tested() -> bool:
    """Whether the installed kombu is one this module is tested with."""
    low, high = KOMBU_TESTED
    return low <= kombu_version() < high


class Channel(SQS.Channel):
    """kombu's SQS channel with fault-tolerant, capacity-driven receiving and batched deletes."""

    #: Seconds between two looks for a free prefetch slot while the buffer is full.
    capacity_check_interval = 0.01
    #: Seconds of the first retry after a failed request, and the most between two.
    retry_base = 0.5
    retry_cap = 5.0
    #: Seconds a delete may wait for others to fill its batch (0: one DeleteMessage each).
    ack_window = 0.05
    #: Seconds :meth:`close` waits for the collected deletes to be sent.
    ack_flush_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.transport_options
        self.ack_window = float(options.get("ack_batch_window", self.ack_window))
        self._faults = Faults(self.retry_base, self.retry_cap)
        self._busy: set[str] = set()  # queues with a request or a timer pending
        self._release_clients: dict[int, Any] = {}
        self.acks: AckBatcher | None = None
        if self.ack_window > 0:
            self.acks = AckBatcher(self._delete_batch, self._faults, self.ack_window)
            _open_batchers.add(self.acks)
        self.quarantine = Quarantine(self._release_client)
        self.quarantine.on_poison = self._count_poison
        self._contracts: dict[str, Contract] = {}
        self._task_consumers: weakref.WeakSet[Any] = weakref.WeakSet()
        # Rejected deliveries waiting to be moved: [queue, url, SQS message, reason].
        self._rejected: dict[str, list[Any]] = {}

    @property
    def poisoned(self) -> int:
        """Poison messages this channel counted, each once."""
        return self.quarantine.poisoned

    @property
    def get_message_attributes(self) -> dict[str, Any]:
        """kombu's attribute names to receive, plus every message attribute and the group id.

        A copy moved aside keeps the original's message attributes and FIFO group.
        """
        wanted = super().get_message_attributes
        system = list(wanted.get("MessageSystemAttributeNames") or [])
        if not any(name.lower() == "all" for name in system) and GROUP_ATTRIBUTE not in system:
            system.append(GROUP_ATTRIBUTE)
        return {"MessageAttributeNames": ["All"], "MessageSystemAttributeNames": sorted(system)}

    # --- the consumers' contracts ------------------------------------------------------

    def serve_tasks(self, consumer: Any, on_poison: Callable[[str], None] | None = None) -> None:
        """Mark ``consumer`` (a kombu Consumer) as Celery's task consumer; set the counter.

        Called by the worker's bootstep (:mod:`sqs_broker.transport.worker`)
        before the consumer consumes. ``on_poison`` is called once per poison
        message, of any channel of this connection, with its queue's name.
        """
        self._task_consumers.add(consumer)
        # On the transport: every channel of this connection counts with it.
        self.connection.on_poison = on_poison

    def _count_poison(self, queue: str) -> None:
        counter = self.connection.on_poison
        if counter is not None:
            counter(queue)

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, *args: Any, **kwargs: Any
    ) -> Any:
        """Record the consumer's contract (its ``accept``; a task consumer or not), then consume."""
        self._contracts[queue] = contract_of(callback, self._task_consumers)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, *args, **kwargs)

    # --- receiving (replaces kombu's _schedule_queue ... _on_messages_ready, _loop1) ---

    def _schedule_queue(self, queue: str) -> None:
        """Receive from ``queue`` now if a prefetch slot is free, else look again shortly.

        Replaces kombu's: that one sleeps ``polling_interval`` when no slot is
        free and lets any failure of the request escape into the event loop.
        """
        if queue not in self._active_queues or queue in self._busy:
            return
        if not self.qos.can_consume():
            self._later(self.capacity_check_interval, queue)
            return
        estimate = self.qos.can_consume_max_estimate()
        count = MAX_RECEIVE if estimate is None else max(1, min(int(estimate), MAX_RECEIVE))
        qname = self.canonical_queue_name(queue)
        self._busy.add(queue)
        try:
            self._receive(queue, qname, count)
        except Exception as exc:  # queue lookup, credentials, signing: before any request
            self._busy.discard(queue)
            self._failed("ReceiveMessage", queue, qname, exc)

    def _event_loop(self) -> Any:
        # Polling is scheduled only by the asynchronous consumer, which sets the hub.
        if self.hub is None:
            raise RuntimeError("the SQS channel polls only inside a worker's event loop")
        return self.hub

    def _later(self, delay: float, queue: str) -> None:
        self._busy.add(queue)
        self._event_loop().call_later(delay, self._resume, queue)

    def _resume(self, queue: str) -> None:
        self._busy.discard(queue)
        self._schedule_queue(queue)

    def _receive(self, queue: str, qname: str, count: int) -> None:
        url = self._new_queue(queue)
        connection = self.asynsqs(queue=qname)
        params: dict[str, Any] = {
            "MaxNumberOfMessages": count,
            "WaitTimeSeconds": self.wait_time_seconds,
        }
        protocols: dict[str, dict[str, Any]] = {"json": {}, "query": {}}
        for key, names in (
            ("MessageSystemAttributeName", connection.message_system_attribute_names),
            ("MessageAttributeName", connection.message_attribute_names),
        ):
            if names:
                protocols["json"][key + "s"] = list(names)
                protocols["query"].update(_query_object_encode({key: list(names)}))
        connection.make_request(
            "ReceiveMessage",
            params,
            url,
            "POST",
            callback=promise(self._on_answer, (queue, qname, url, connection.sqs_connection)),
            protocol_params=protocols,
        )

    def _on_answer(self, queue: str, qname: str, url: str, client: Any, response: Any) -> None:
        self._busy.discard(queue)
        try:
            messages = answer_of("ReceiveMessage", client, response).get("Messages") or []
        except Fault as fault:
            if fault.code in NO_QUEUE_CODES:
                # Declared again by _new_queue() on the next attempt.
                self._queue_cache.pop(qname, None)
            self._failed("ReceiveMessage", queue, qname, fault)
            return
        self._faults.answered("ReceiveMessage", qname)
        if messages:
            try:
                self._deliver(queue, qname, url, messages)
            except Exception:
                # Not one of the faults above: say so loudly, but keep consuming.
                logger.exception("Delivering messages from queue %s failed", qname)
            # A timer due now, not call_soon: the loop runs it after the callbacks
            # already queued, among them Celery's acknowledgements of what was
            # just delivered, so the next receive sees the slots they free.
            self._later(0, queue)
        elif self.connection.polling_interval:
            self._later(self.connection.polling_interval, queue)
        else:
            self._event_loop().call_soon(self._schedule_queue, queue)

    def _failed(self, operation: str, queue: str, qname: str, exc: BaseException) -> None:
        delay = self._faults.failed(operation, qname, exc)
        if queue in self._active_queues:
            self._later(delay, queue)

    # --- decoding (poison messages) ----------------------------------------------

    def _deliver(self, queue: str, qname: str, url: str, messages: list[dict[str, Any]]) -> None:
        callback = self.connection._callbacks.get(queue)
        if callback is None:
            # The consumer is gone (shutdown): kombu's release makes them visible at once.
            self._release_messages(url, queue, messages)
            return
        contract = self._contracts.get(queue, KOMBU_CONTRACT)
        for message in messages:
            try:
                payload = self._checked(message, url, contract)
            except payloads.Unavailable as exc:
                # S3 did not answer for an offloaded body: SQS delivers the message again.
                logger.warning("Message left for redelivery: %s", exc)
                continue
            except Poison as poison:
                self.quarantine.move(qname, url, message, str(poison))
                continue
            if queue in self._noack_queues:
                # As kombu does for a consumer without acknowledgements: delete on receipt.
                self._delete_message(queue, message)
            try:
                callback(payload)
            except Exception as exc:
                # The consumer could not take it (a field checked nowhere above):
                # move it rather than let the worker die on it.
                tag = message["ReceiptHandle"]
                reason = f"the worker could not accept it ({type(exc).__name__}: {exc})"
                if tag in self._rejected:  # rejected before it raised: moved from the loop
                    self.rejected_because(tag, reason)
                    continue
                self._forget(tag)
                self.quarantine.move(qname, url, message, reason)

    def _checked(self, message: dict[str, Any], url: str, contract: Contract) -> Any:
        """The payload of ``message`` for its consumer; :class:`Poison` if it cannot take it.

        Celery's task consumer gets every check, with its own ``accept``. Any
        other consumer gets kombu's behaviour: a body that is no kombu
        envelope is handed over as text, and an envelope is checked only as
        far as that consumer decodes it, with its own ``accept``.
        """
        # An offloaded body (an S3 pointer) is read first; poison still moves the pointer.
        raw = payloads.body_of(message)
        try:
            envelope, text = envelope_of(raw, self._decode_python_message_body)
        except Poison:
            if contract.tasks:
                raise
            try:
                text = bytes_to_str(self._decode_python_message_body(raw))
            except (UnicodeDecodeError, TypeError) as exc:
                raise Poison(f"the SQS body is not text ({type(exc).__name__})") from None
            return self._envelope_payload(self._prepare_json_payload(text), text, message, url)
        check_envelope(envelope, self.codecs, contract.accept, task=contract.tasks)
        return self._envelope_payload(envelope, text, message, url)

    def _forget(self, receipt: str) -> None:
        try:
            self.qos.get(receipt)
        except KeyError:
            return
        virtual.Channel.basic_ack(self, receipt)

    # --- rejecting (replaces kombu's delete of a message rejected without requeue) ----

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Move a message rejected without requeue aside instead of deleting it.

        kombu deletes it (or, with a redrive policy, leaves it to be received
        ``maxReceiveCount`` times). Here it is copied to the dead-letter or
        quarantine queue, then deleted, with the reason Celery gave
        (:meth:`rejected_because`, from the worker's signal handlers). The move
        runs from the event loop right after the consumer's handler returns,
        which is when Celery has said why. A requeue and a task under a
        backoff policy are kombu's.
        """
        if requeue or self.qos.is_backoff_task(delivery_tag):
            return super().basic_reject(delivery_tag, requeue=requeue)
        try:
            info = self.qos.get(delivery_tag).delivery_info
            sqs_message = info["sqs_message"]
            url = info["sqs_queue"]
        except KeyError:
            return super().basic_reject(delivery_tag, requeue=requeue)
        if "routing_key" in info:
            qname = self.canonical_queue_name(info["routing_key"])
        else:
            qname = url.rstrip("/").rsplit("/", 1)[-1]
        # Frees the prefetch slot; nothing is deleted (the backoff policy does not apply).
        virtual.QoS.reject(self.qos, delivery_tag, requeue=False)
        reason = "its consumer rejected it without requeue"
        self._rejected[delivery_tag] = [qname, url, sqs_message, reason]
        if self.hub is None:
            self._move_rejected(delivery_tag)
        else:
            self.hub.call_soon(self._move_rejected, delivery_tag)
        return None

    def rejected_because(self, delivery_tag: str, reason: str) -> None:
        """The reason a rejected delivery is moved with (Celery's, told after the reject)."""
        pending = self._rejected.get(delivery_tag)
        if pending is not None:
            pending[3] = reason

    def _move_rejected(self, delivery_tag: str) -> None:
        pending = self._rejected.pop(delivery_tag, None)
        if pending is not None:
            self.quarantine.move(*pending)

    def _release_client(self, qname: str | None) -> Any:
        """kombu's short-timeout copy of the queue's client, made once per client."""
        client = self.sqs(queue=qname)
        copy = self._release_clients.get(id(client))
        if copy is None:
            copy = self._release_clients[id(client)] = self._new_release_client(client)
        return copy

    # --- acknowledging (replaces kombu's one DeleteMessage per ack) -----------------

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        """Release the prefetch slot now; the delete goes in the next batch.

        Replaces kombu's ``basic_ack``, which sends one ``DeleteMessage`` per
        message from the event loop. Without batching (``ack_batch_window``
        0), or for a delivery kombu does not know, kombu's runs.
        """
        if self.acks is None:
            return super().basic_ack(delivery_tag, multiple)
        try:
            info = self.qos.get(delivery_tag).delivery_info
            sqs_message = info["sqs_message"]
            url = info["sqs_queue"]
        except KeyError:
            return super().basic_ack(delivery_tag, multiple)
        queue = self.canonical_queue_name(info["routing_key"]) if "routing_key" in info else None
        self.acks.add(
            queue, url, sqs_message["ReceiptHandle"], str(sqs_message.get("MessageId", "?"))
        )
        virtual.Channel.basic_ack(self, delivery_tag)
        return None

    def _delete_batch(
        self, queue: str | None, url: str, batch: list[PendingDelete]
    ) -> list[tuple[PendingDelete, str | None]]:
        """One ``DeleteMessageBatch``; the entries that failed, with their error codes."""
        client = self._release_client(queue)
        answer = client.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(n), "ReceiptHandle": e.receipt} for n, e in enumerate(batch)],
        )
        failed = [(batch[int(f["Id"])], f.get("Code")) for f in answer.get("Failed") or []]
        # Offloaded bodies go once their messages are deleted, not before.
        payloads.acknowledged({e.receipt for e in batch} - {e.receipt for e, _ in failed})
        return failed

    # --- closing -------------------------------------------------------------------

    # --- publishing ---------------------------------------------------------------------

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        """kombu's publish, declaring the queue again once if SQS says it no longer exists.

        kombu keeps a queue's URL for the channel's life, so a long-lived publisher
        (beat, a web process) failed on every publish after the queue was deleted or
        a local SQS restarted, where a fresh process declares it on first use (as
        :meth:`_on_answer` has receives do). A predefined queue is never created:
        its error stands.
        """
        # kombu's _put pops the message attributes out of the properties it is given.
        again = dict(message)
        if isinstance(message.get("properties"), dict):
            again["properties"] = dict(message["properties"])
        try:
            super()._put(queue, message, **kwargs)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code not in NO_QUEUE_CODES or self.predefined_queues:
                raise
            qname = self.canonical_queue_name(queue)
            self._queue_cache.pop(qname, None)
            logger.warning("Queue %s no longer existed when publishing: declared it again.", qname)
            super()._put(queue, again, **kwargs)

    def close(self) -> None:
        """Send the collected deletes (bounded), then close as kombu does."""
        if self.acks is not None:
            self.acks.close(self.ack_flush_timeout)
            _open_batchers.discard(self.acks)
        super().close()


class Transport(SQS.Transport):
    """kombu's SQS transport with :class:`Channel`; the ``sqs://`` URL is unchanged."""

    Channel = Channel
    #: Called once per poison message with its queue's SQS name (set by the worker).
    on_poison: Callable[[str], None] | None = None

    def __init__(self, client: Any, **kwargs: Any) -> None:
        if not kombu_tested():
            logger.warning(
                "sqs_broker.transport is tested with kombu %d.%d only, not %s: set "
                "SQS_TRANSPORT=kombu if workers misbehave.",
                *KOMBU_TESTED[0],
                kombu.__version__,
            )
        super().__init__(client, **kwargs)


#: Batchers not closed yet: their deletes are sent when the interpreter exits.
_open_batchers: weakref.WeakSet[AckBatcher] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for batcher in list(_open_batchers):
        batcher.close(timeout=5.0)


def relied_upon() -> Iterable[tuple[Any, str]]:
    """The kombu internals this module calls or replaces, as (owner, attribute)."""
    from kombu.asynchronous.aws.sqs.connection import AsyncSQSConnection

    for name in (
        "_schedule_queue",
        "_new_queue",
        "canonical_queue_name",
        "asynsqs",
        "sqs",
        "_release_messages",
        "_new_release_client",
        "_envelope_payload",
        "_decode_python_message_body",
        "_delete_message",
        "_noack_queues",
        "basic_ack",
        "close",
        "wait_time_seconds",
        "_queue_cache",
        "transport_options",
        "_put",
        "predefined_queues",
    ):
        yield SQS.Channel, name
    # Poison and the consumers' contracts (what is moved aside, and for whom).
    for name in (
        "_prepare_json_payload",
        "get_message_attributes",
        "basic_consume",
        "basic_reject",
    ):
        yield SQS.Channel, name
    yield SQS.QoS, "is_backoff_task"
    yield AsyncSQSConnection, "make_request"
    for name in ("can_consume", "can_consume_max_estimate", "get", "reject"):
        yield virtual.QoS, name
    yield virtual.Channel, "codecs"
    for name in ("accept", "on_message"):
        yield messaging.Consumer, name
