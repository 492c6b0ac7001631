"""The project's kombu SQS transport: kombu 5.7's, with what a worker depends on replaced.

:func:`sqs_broker.settings.include` selects it through Celery's ``broker_transport``
(``sqs_broker.transport:Transport``); the broker URL keeps its ``sqs://`` scheme.
``SQS_TRANSPORT=kombu`` selects kombu's own instead. Publishing, queue creation,
rejection, requeue, backoff policies and the blocking ``drain_events`` path are
kombu's. Four things of ``kombu.transport.SQS.Channel`` are replaced, each in one
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
* **Decoding** (:meth:`Channel._deliver`). A message that cannot become a task
  (SQS body, kombu envelope, body encoding, compression, serializer, task shape)
  is moved to the queue's dead-letter queue, or else to ``<queue>-quarantine``,
  never deleted without a copy, and counted in telemetry. kombu raises on most of
  them (the worker dies, again on every restart); Celery deletes the rest.
* **Acknowledging** (:meth:`Channel.basic_ack`). Deletes are collected and sent
  with ``DeleteMessageBatch`` (10 per request) after at most
  :attr:`Channel.ack_window` seconds, by one thread per channel; kombu sends one
  ``DeleteMessage`` per task from the event loop.
* **Closing** (:meth:`Channel.close`): the collected deletes are sent first.
"""

from __future__ import annotations

import atexit
import json
import logging
import time
import weakref
from collections.abc import Iterable
from typing import Any

import kombu
from django.core.exceptions import ImproperlyConfigured
from kombu import serialization
from kombu.asynchronous.aws.sqs.connection import _query_object_encode
from kombu.transport import SQS, virtual
from vine import promise

from sqs_broker.limits import MAX_BATCH_ENTRIES
from sqs_broker.redact import scrub
from sqs_broker.transport.acks import AckBatcher, PendingDelete
from sqs_broker.transport.faults import Fault, Faults, answer_of, describe
from sqs_broker.transport.poison import (
    Poison,
    check_envelope,
    envelope_of,
    is_quarantine,
    quarantine_name,
)

__all__ = ["Channel", "Transport", "is_quarantine", "quarantine_name"]

logger = logging.getLogger(__name__)

#: kombu versions this module is tested with: it overrides kombu internals.
KOMBU_TESTED = ((5, 7), (5, 8))  # >= 5.7, < 5.8
#: SQS's limit of messages per ReceiveMessage.
MAX_RECEIVE = MAX_BATCH_ENTRIES
#: Error codes of a queue that no longer exists (query and JSON protocols).
NO_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
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
    #: Seconds a queue's dead-letter target is reused before it is read again.
    poison_target_ttl = 300.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.transport_options
        self.ack_window = float(options.get("ack_batch_window", self.ack_window))
        self._faults = Faults(self.retry_base, self.retry_cap)
        self._busy: set[str] = set()  # queues with a request or a timer pending
        self._targets: dict[str, tuple[str, str, float]] = {}
        self._release_clients: dict[int, Any] = {}
        self._accept: Any = None
        self.acks: AckBatcher | None = None
        if self.ack_window > 0:
            self.acks = AckBatcher(self._delete_batch, self._faults, self.ack_window)
            _open_batchers.add(self.acks)
        self.poisoned = 0

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
        return [(batch[int(f["Id"])], f.get("Code")) for f in answer.get("Failed") or []]

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
    yield AsyncSQSConnection, "make_request"
    for name in ("can_consume", "can_consume_max_estimate", "get"):
        yield virtual.QoS, name
    yield virtual.Channel, "codecs"
