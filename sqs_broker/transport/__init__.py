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
* **Decoding** (:meth:`Channel._deliver`). A message that cannot become a task
  (SQS body, kombu envelope, body encoding, compression, serializer, task shape)
  is moved to the queue's dead-letter queue, or else to ``<queue>-quarantine``,
  never deleted without a copy, and counted in telemetry. kombu raises on most of
  them (the worker dies, again on every restart); Celery deletes the rest.
* **Acknowledging** (:meth:`Channel.basic_ack`). Deletes are collected on the hub
  and sent with ``DeleteMessageBatch`` (10 per request) after at most
  ``ack_batch_window`` seconds (:mod:`sqs_broker.transport.acks`); kombu sends
  one ``DeleteMessage`` per task.
* **The visibility lease** (``visibility_lease``, :mod:`sqs_broker.transport.lease`):
  held messages are received with a short visibility timeout and extended until
  they are acknowledged.
* **Closing** (:meth:`Channel.close`): the collected deletes are sent, what was
  received and never run is released at once, a receive in flight is waited
  for (bounded by its deadline) and its messages released.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import kombu
from django.core.exceptions import ImproperlyConfigured
from kombu import serialization
from kombu.transport import SQS, virtual

from sqs_broker.limits import MAX_VISIBILITY_TIMEOUT
from sqs_broker.redact import scrub
from sqs_broker.transport.acks import AckBatcher
from sqs_broker.transport.faults import Fault, Faults, answer_of, describe
from sqs_broker.transport.lease import Lease
from sqs_broker.transport.poison import (
    Poison,
    check_envelope,
    envelope_of,
    is_quarantine,
    quarantine_name,
)
from sqs_broker.transport.receiving import MAX_RECEIVE, NO_QUEUE_CODES, QoS, Receiving

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
#: Bytes of a poison message's body that its log line shows.
SHOWN_BYTES = 64


def kombu_version() -> tuple[int, int]:
    """``(major, minor)`` of the installed kombu."""
    major, minor = kombu.__version__.split(".")[:2]
    return int(major), int(minor)


def kombu_tested() -> bool:
    """Whether the installed kombu is one this module is tested with."""
    low, high = KOMBU_TESTED
    return low <= kombu_version() < high


class Channel(Receiving, SQS.Channel):
    """kombu's SQS channel with deadlines, batched receives and deletes, and a visibility lease."""

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
    #: Seconds a queue's dead-letter target is reused before it is read again.
    poison_target_ttl = 300.0

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
        self._targets: dict[str, tuple[str, str, float]] = {}
        self._release_clients: dict[int, Any] = {}
        self._accept: Any = None
        self.acks: AckBatcher | None = None
        self.lease: Lease | None = None
        self._receiving_init()
        self.poisoned = 0

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
        for message in messages:
            raw = message["Body"]
            try:
                envelope, text = envelope_of(raw, self._decode_python_message_body)
                check_envelope(envelope, self.codecs, self._accepted())
            except Poison as poison:
                self._quarantine(qname, url, message, raw, str(poison))
                continue
            if queue in self._noack_queues:
                # As kombu does for a consumer without acknowledgements: delete on receipt.
                self._delete_message(queue, message)
            payload = self._envelope_payload(envelope, text, message, url)
            try:
                callback(payload)
            except Exception as exc:
                # Celery itself could not make a task of it (a field checked
                # nowhere above): move it rather than let the worker die on it.
                self._forget(message["ReceiptHandle"])
                reason = f"the worker could not accept it ({type(exc).__name__}: {exc})"
                self._quarantine(qname, url, message, raw, reason)

    def _accepted(self) -> Any:
        """The content types the worker accepts, as Celery's consumer checks them."""
        if self._accept is None:
            from celery import current_app

            accept = current_app.conf.accept_content
            self._accept = serialization.prepare_accept_content(accept) if accept else set()
        return self._accept or None

    def _forget(self, receipt: str) -> None:
        try:
            self.qos.get(receipt)
        except KeyError:
            return
        virtual.Channel.basic_ack(self, receipt)

    def _quarantine(
        self, qname: str, url: str, message: dict[str, Any], raw: Any, reason: str
    ) -> None:
        """Copy a poison message to the dead-letter or quarantine queue, then delete it."""
        message_id = str(message.get("MessageId", "?"))
        first = raw[:SHOWN_BYTES] if isinstance(raw, str | bytes) else raw
        self.poisoned += 1
        _count_poison(qname)
        try:
            client = self._release_client(qname)
            target, kind = self._poison_target(client, qname, url)
            copy: dict[str, Any] = {
                "QueueUrl": target,
                "MessageBody": raw,
                "MessageAttributes": {
                    "sqs_broker.poison.reason": {"DataType": "String", "StringValue": reason},
                    "sqs_broker.poison.source": {"DataType": "String", "StringValue": qname},
                    "sqs_broker.poison.message_id": {
                        "DataType": "String",
                        "StringValue": message_id,
                    },
                },
            }
            if target.endswith(".fifo"):
                copy["MessageGroupId"] = "sqs_broker-poison"
                copy["MessageDeduplicationId"] = message_id[:128]
            client.send_message(**copy)
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        except Exception as exc:
            logger.error(
                "Poison message %s on queue %s (%s) could not be moved: %s. It is left in the "
                "queue and comes back after its visibility timeout; first bytes: %s",
                message_id,
                qname,
                reason,
                scrub(describe(exc)),
                scrub(repr(first)),
            )
            return
        logger.error(
            "Poison message %s on queue %s moved to %s queue %s: %s; first bytes: %s",
            message_id,
            qname,
            kind,
            target.rstrip("/").rsplit("/", 1)[-1],
            reason,
            scrub(repr(first)),
        )

    def _poison_target(self, client: Any, qname: str, url: str) -> tuple[str, str]:
        """``(url, "dead-letter" | "quarantine")`` where ``qname``'s poison goes."""
        cached = self._targets.get(url)
        if cached is not None and time.monotonic() - cached[2] < self.poison_target_ttl:
            return cached[0], cached[1]
        attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        if policy:
            arn = json.loads(policy)["deadLetterTargetArn"]
            account, name = arn.split(":")[4:6]
            target = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
            found = (target["QueueUrl"], "dead-letter")
        else:
            name = quarantine_name(qname)
            create: dict[str, Any] = {"QueueName": name}
            # Fourteen days, SQS's longest retention: time to look at it.
            create["Attributes"] = {"MessageRetentionPeriod": "1209600"}
            if name.endswith(".fifo"):
                create["Attributes"]["FifoQueue"] = "true"
            found = (client.create_queue(**create)["QueueUrl"], "quarantine")
        self._targets[url] = (*found, time.monotonic())
        return found

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
        virtual.Channel.basic_ack(self, delivery_tag)
        return None

    def basic_cancel(self, consumer_tag: str) -> Any:
        """Stop consuming as kombu does; the queue's timers and liveness end with it."""
        queue = self._tag_to_queue.get(consumer_tag)
        result = super().basic_cancel(consumer_tag)
        if queue is not None and queue not in self._active_queues:
            self._stop_consuming(queue)
        return result

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


class Transport(SQS.Transport):
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


def _count_poison(queue: str) -> None:
    """Count a poison message in this worker's telemetry (when it records any)."""
    try:
        from sqs_broker.telemetry import recorder
    except ImproperlyConfigured:  # no Django settings: nothing records telemetry here
        return
    current = recorder.recorder()
    if current is not None:
        current.poisoned(queue)


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
    ):
        yield SQS.Channel, name
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


#: Attributes kombu (and botocore) set on instances that this package reads.
INSTANCE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "channel": ("_active_queues", "_tag_to_queue", "_qos", "hub", "connection"),
    "transport": ("_callbacks", "polling_interval"),
    "sqs client": ("_request_signer",),
    "request signer": ("_credentials",),
}
