"""The project's kombu SQS transport: kombu 5.7's, with what a worker depends on replaced.

:func:`sqs_broker.settings.include` selects it through Celery's ``broker_transport``
(``sqs_broker.transport:Transport``); the broker URL keeps its ``sqs://`` scheme.
``SQS_TRANSPORT=kombu`` selects kombu's own instead. Publishing, queue creation,
rejection, requeue, backoff policies and the blocking ``drain_events`` path are
kombu's. What a worker depends on is replaced, each in one place and each for a
bug or a cost of kombu's (see docs/reliability.md for the reproductions):

* **Receiving** (:mod:`sqs_broker.transport.receiving`): every request with a
  deadline, made on a few I/O threads (:mod:`sqs_broker.transport.io`) and
  completed on the hub; failures logged once per outage and probed with short
  polls; receives batched and woken by acknowledgements.
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
* **Acknowledging** (:meth:`Channel.basic_ack`). Deletes are collected on the hub
  and sent with ``DeleteMessageBatch`` (10 per request) after at most
  ``ack_batch_window`` seconds (:mod:`sqs_broker.transport.acks`); kombu sends
  one ``DeleteMessage`` per task.
* **The visibility lease** (``visibility_lease``, :mod:`sqs_broker.transport.lease`):
  held messages are received with a short visibility timeout and extended until
  they are acknowledged.
* **Remote control** (:mod:`sqs_broker.transport.remote`): with ``supports_fanout``,
  Celery's mailbox and its replies through SNS and SQS, in workers and callers.
* **Closing** (:meth:`Channel.close`): the collected deletes are sent, what was
  received and never run is released at once, a receive in flight is waited
  for (bounded by its deadline) and its messages released.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import kombu
from django.core.exceptions import ImproperlyConfigured
from kombu import messaging
from kombu.transport import SQS, virtual

from sqs_broker.limits import MAX_VISIBILITY_TIMEOUT
from sqs_broker.topology import is_quarantine, quarantine_name
from sqs_broker.transport import payloads
from sqs_broker.transport.acks import AckBatcher
from sqs_broker.transport.faults import Fault, Faults, answer_of
from sqs_broker.transport.kombu_types import (
    SQSChannel,
    SQSTransport,
    VirtualChannel,
    VirtualQoS,
    bytes_to_str,
)
from sqs_broker.transport.lease import Lease
from sqs_broker.transport.poison import (
    KOMBU_CONTRACT,
    Contract,
    Poison,
    check_envelope,
    contract_of,
    envelope_of,
    identify,
)
from sqs_broker.transport.quarantine import Quarantine
from sqs_broker.transport.receiving import MAX_RECEIVE, NO_QUEUE_CODES, QoS, Receiving
from sqs_broker.transport.remote import RemoteControl, exchange_types

__all__ = [
    "MAX_RECEIVE",
    "NO_QUEUE_CODES",
    "Channel",
    "Fault",
    "Faults",
    "Poison",
    "Transport",
    "answer_of",
    "check_envelope",
    "envelope_of",
    "is_quarantine",
    "quarantine_name",
]

logger = logging.getLogger(__name__)

#: kombu versions this module is tested with: it overrides kombu internals.
KOMBU_TESTED = ((5, 7), (5, 8))  # >= 5.7, < 5.8
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


class Channel(RemoteControl, Receiving, SQSChannel):
    """kombu's SQS channel with deadlines, batched receives and deletes, a visibility lease and
    remote control."""

    QoS = QoS
    #: Seconds of the first retry after a failed request, and the most between two.
    retry_base = 0.5
    retry_cap = 5.0
    #: Seconds a delete may wait for others to fill its batch (0: kombu's DeleteMessage);
    #: on a FIFO queue at most :attr:`fifo_ack_window`, since the next message of a
    #: group waits for the delete.
    ack_window = 0.5
    fifo_ack_window = 0.05
    #: Seconds :meth:`close` waits for the collected deletes to be sent.
    ack_flush_timeout = 10.0
    #: Seconds :meth:`close` waits for a receive in flight under a lease (without one:
    #: up to the long poll's deadline).
    lease_close_wait = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.transport_options
        self.ack_window = float(options.get("ack_batch_window", self.ack_window))
        self.batch_wait = float(options.get("receive_batch_wait", self.batch_wait))
        lease = int(options.get("visibility_lease") or 0)
        if not 0 <= lease <= MAX_VISIBILITY_TIMEOUT:
            raise ImproperlyConfigured(
                f"visibility_lease must be 0 (off) to {MAX_VISIBILITY_TIMEOUT} seconds, "
                f"not {lease}."
            )
        if options.get("visibility_timeout") not in (None, ""):
            # Never slower to return a message than the visibility timeout chosen.
            lease = min(lease, int(float(options["visibility_timeout"])))
        self.lease_seconds = lease
        limit = options.get("task_time_limit")
        self.task_time_limit = float(limit) if limit else None
        self._faults = Faults(self.retry_base, self.retry_cap)
        self._release_clients: dict[int, Any] = {}
        self.acks: AckBatcher | None = None
        self.lease: Lease | None = None
        self._receiving_init()
        self._remote_init()
        self.quarantine = Quarantine(self._release_client)
        self.quarantine.on_poison = self._count_poison
        self.quarantine.identify = self._identify
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

    def serve_tasks(
        self, consumer: Any, on_poison: Callable[[str, str | None], None] | None = None
    ) -> None:
        """Mark ``consumer`` (a kombu Consumer) as Celery's task consumer; set the counter.

        Called by the worker's bootstep (:mod:`sqs_broker.transport.worker`)
        before the consumer consumes. ``on_poison`` is called once per poison
        message, of any channel of this connection, with its queue's name and
        the task it names (``None`` when none can be read).
        """
        self._task_consumers.add(consumer)
        # On the transport: every channel of this connection counts with it.
        self.connection.on_poison = on_poison

    def _count_poison(self, queue: str, task: str | None) -> None:
        counter = self.connection.on_poison
        if counter is not None:
            counter(queue, task)

    def _identify(self, body: Any) -> tuple[str | None, str | None]:
        return identify(body, self._decode_python_message_body)

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, *args: Any, **kwargs: Any
    ) -> Any:
        """Record the consumer's contract (its ``accept``; a task consumer or not), then consume."""
        self._contracts[queue] = contract_of(callback, self._task_consumers)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, *args, **kwargs)

    def _io_started(self) -> None:
        io = self._io()
        if self.ack_window > 0:
            self.acks = AckBatcher(
                io,
                lambda queue: self._io_client(queue, self.request_timeout),
                self.hub.call_later,
                self._faults,
                self.ack_window,
                self.request_timeout,
                fifo_window=min(self.ack_window, self.fifo_ack_window),
            )
            # Offloaded bodies go once their messages are deleted, not before.
            self.acks.on_deleted = payloads.acknowledged
        if self.lease_seconds:
            self.lease = Lease(
                self.lease_seconds,
                lambda queue: self._io_client(queue, self.request_timeout),
                self._faults,
                self.request_timeout,
            )

    @property
    def extensions(self) -> int:
        """Messages whose visibility the lease extended (for liveness and telemetry)."""
        return self.lease.extensions if self.lease is not None else 0

    def _took(self, queue: str, qname: str, url: str, messages: list[dict[str, Any]]) -> None:
        """Deliver received messages; under a lease, hold those the consumer kept."""
        try:
            self._deliver(queue, qname, url, messages)
        except Exception:
            # Not one of the poison faults: say so loudly, but keep consuming.
            logger.exception("Delivering messages from queue %s failed", qname)
        if self.lease is None:
            return
        delivered = self.qos._delivered
        dirty = self.qos._dirty
        for message in messages:
            receipt = message["ReceiptHandle"]
            if receipt in delivered and receipt not in dirty:
                self.lease.hold(qname, url, message, self._hard_limit(delivered[receipt]))

    def _hard_limit(self, message: Any) -> float | None:
        """Seconds the task may run: its ``timelimit`` header's hard limit, else the app's."""
        try:
            hard = (message.headers or {}).get("timelimit", [None, None])[1]
            if hard is not None:
                return float(hard)
        except (TypeError, ValueError, IndexError, AttributeError):
            pass
        return self.task_time_limit

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
        VirtualChannel.basic_ack(self, receipt)

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
        # Frees the prefetch slot (and the lease's hold); nothing is deleted (the
        # backoff policy does not apply).
        VirtualQoS.reject(self.qos, delivery_tag, requeue=False)
        self._slot_freed(delivery_tag)
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
        message. Callable from any thread (the threads pool acknowledges from
        its own): the delete is collected on the hub. Without batching
        (``ack_batch_window`` 0), outside a worker's event loop, or for a
        delivery kombu does not know, kombu's runs.
        """
        io = self._requests
        if self.acks is None or io is None or io.closed:
            return super().basic_ack(delivery_tag, multiple)
        try:
            info = self.qos.get(delivery_tag).delivery_info
            sqs_message = info["sqs_message"]
            url = info["sqs_queue"]
        except KeyError:
            return super().basic_ack(delivery_tag, multiple)
        queue = self.canonical_queue_name(info["routing_key"]) if "routing_key" in info else None
        entry = (queue, url, sqs_message["ReceiptHandle"], str(sqs_message.get("MessageId", "?")))
        acks = self.acks
        if io.on_hub():
            acks.add(*entry)
        else:
            io.post(lambda: acks.add(*entry))
        VirtualChannel.basic_ack(self, delivery_tag)
        return None

    def basic_cancel(self, consumer_tag: str) -> Any:
        """Stop consuming as kombu does; the queue's timers and liveness end with it."""
        queue = self._tag_to_queue.get(consumer_tag)
        result = super().basic_cancel(consumer_tag)
        if queue is not None and queue not in self._active_queues:
            self._stop_consuming(queue)
        return result

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
            code = ((getattr(exc, "response", None) or {}).get("Error") or {}).get("Code")
            if code not in NO_QUEUE_CODES or self.predefined_queues:
                raise
            qname = self.canonical_queue_name(queue)
            self._queue_cache.pop(qname, None)
            logger.warning("Queue %s no longer existed when publishing: declared it again.", qname)
            super()._put(queue, again, **kwargs)

    # --- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Send the deletes, release what never ran, wait for a receive in flight; then kombu's.

        Bounded: the deletes by :attr:`ack_flush_timeout`, a receive in flight by
        its own deadline (a long poll and its margin) without a lease, by
        :attr:`lease_close_wait` under one; what it brings in that time is
        released at once, what it brings later returns within the lease.
        """
        if not self.closed and not self._closing:
            self._closing = True
            for queue in list(self._consuming):
                self._stop_consuming(queue)
            if self.acks is not None:
                self.acks.close(self.ack_flush_timeout)
            if self.lease is not None:
                self.lease.close()
            self._release_unacked()
            if self._requests is not None:
                # Without a lease nothing else returns what a long poll in flight
                # brings: wait for it (up to a long poll). With one, it returns within
                # the lease, and an idle worker's stop is not a long poll longer.
                poll = self.wait_time_seconds + self.receive_margin + 1.0
                self._requests.close(
                    self.ack_flush_timeout,
                    receives=self.lease_close_wait if self.lease_seconds else poll,
                )
        super().close()


class Transport(SQSTransport):
    """kombu's SQS transport with :class:`Channel`; the ``sqs://`` URL is unchanged."""

    Channel = Channel

    def __init__(self, client: Any, **kwargs: Any) -> None:
        if not kombu_tested():
            logger.warning(
                "sqs_broker.transport is tested with kombu %d.%d only, not %s: set "
                "SQS_TRANSPORT=kombu if workers misbehave.",
                *KOMBU_TESTED[0],
                kombu.__version__,
            )
        super().__init__(client, **kwargs)
        # Celery starts a worker's mailbox only on a transport that lists fanout.
        fanout = bool((client.transport_options or {}).get("supports_fanout"))
        self.implements = SQSTransport.implements.extend(exchange_type=exchange_types(fanout))


def relied_upon() -> Iterable[tuple[Any, str]]:
    """The kombu (and botocore) internals this package calls or replaces, as (owner, attribute).

    Attributes set on instances only are in :data:`INSTANCE_ATTRIBUTES`.
    """
    from kombu.asynchronous import Hub

    for name in (
        "_schedule_queue",
        "_new_queue",
        "canonical_queue_name",
        "asynsqs",
        "sqs",
        "_release_messages",
        "_new_release_client",
        "_new_boto_client",
        "new_sqs_client",
        "get_message_attributes",
        "_envelope_payload",
        "_decode_python_message_body",
        "_delete_message",
        "_noack_queues",
        "basic_ack",
        "basic_cancel",
        "close",
        "wait_time_seconds",
        "_queue_cache",
        "transport_options",
        "QoS",
        "_put",
        "predefined_queues",
    ):
        yield SQS.Channel, name
    # Poison and the consumers' contracts (what is moved aside, and for whom).
    for name in ("_prepare_json_payload", "basic_consume", "basic_reject"):
        yield SQS.Channel, name
    # Remote control (sqs_broker.transport.remote).
    for name in (
        "_lookup",
        "_resolve_queue_url",
        "_create_queue",
        "_receive_message",
        "_get_bulk",
        "drain_events",
        "_delete",
        "_put_fanout",
        "supports_fanout",
    ):
        yield SQS.Channel, name
    yield SQS.Transport, "implements"
    yield SQS.QoS, "is_backoff_task"
    for name in ("polling_interval", "_callbacks"):
        yield SQS.Transport, name
    for name in (
        "can_consume",
        "can_consume_max_estimate",
        "get",
        "ack",
        "reject",
        "prefetch_count",
        "_delivered",
        "_dirty",
        "_flush",
    ):
        yield virtual.QoS, name
    yield virtual.Channel, "codecs"
    for name in ("call_later", "call_repeatedly", "call_soon", "add_reader", "remove"):
        yield Hub, name
    for name in ("accept", "on_message"):
        yield messaging.Consumer, name


#: Attributes kombu (and botocore) set on instances that this package reads.
INSTANCE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "channel": ("_active_queues", "_tag_to_queue", "_qos", "hub", "connection"),
    "transport": ("_callbacks", "polling_interval"),
    "sqs client": ("_request_signer",),
    "request signer": ("_credentials",),
}
