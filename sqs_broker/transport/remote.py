"""Celery's remote control over SQS: what kombu's SNS fanout leaves out, each in one place.

kombu 5.7 publishes to a ``fanout`` exchange through an SNS topic whose subscribed
queues receive a copy (``supports_fanout``); Celery's remote control (the
``<app>.pidbox`` broadcast and its replies) needs more than that:

* **Fanout declared** (:func:`exchange_types`): a worker starts its mailbox only
  when the transport lists ``fanout``; kombu's lists ``direct`` alone.
* **Replies routed by queue name** (:meth:`RemoteControl._lookup`): a caller binds
  its reply queue ``<oid>.reply.<app>.pidbox`` in its own process only, so the
  worker's reply to exchange ``reply.<app>.pidbox`` with routing key ``<oid>``
  found no binding and was dropped. It goes to that queue by its name, never
  creating it (a caller that is gone gets nothing); on a worker the send runs on
  the I/O threads, so the event loop never waits for SQS.
* **Deletes of no-ack messages** (:meth:`RemoteControl._delete_message`): kombu
  deletes them on the worker's event loop, which a web or CLI process has not
  (``'NoneType' object has no attribute 'on_close'``). On a worker they join the
  batched deletes; elsewhere they are sent at once, with a deadline.
* **Reply queues deleted** (:meth:`RemoteControl._delete`): kombu deletes a
  caller's reply queue after each call but kept its URL, so a call declaring
  the same name again failed with ``NonExistentQueue``. Callers that keep one
  reply queue per thread (:mod:`sqs_broker.control`) never ask for the delete:
  SQS refuses a deleted queue's name for 60 s.
* **Deadlines outside a worker** (:meth:`RemoteControl._receive_message`): a
  caller collecting replies receives with a long poll no longer than the
  time left to wait, and a read timeout just past it; one reply per receive,
  since kombu's mailbox counts receives towards its ``limit``.
* **Deadlines on SNS** (:meth:`RemoteControl._new_boto_client`): the SNS client
  gets the transport's connect and read timeouts instead of botocore's 60 s.
* **Predefined queues**: mailboxes and reply queues are named after workers and
  callers, so they cannot be listed in ``predefined_queues``; they are created
  and used with the connection's own credentials (the broker URL's keys, else
  boto3's chain; not an STS role's, which kombu gives predefined queues only)
  rather than refused with ``UndefinedQueueException``.

Names follow :mod:`sqs_broker.topology` (``is_remote_control``,
``remote_control_sqs_name``).
"""

from __future__ import annotations

import base64
import logging
import math
import time
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError
from kombu.transport.SQS.exceptions import DoesNotExistQueueException

from sqs_broker.topology import (
    is_remote_control,
    is_reply_exchange,
    is_reply_queue,
    remote_control_sqs_name,
    reply_queue_name,
)
from sqs_broker.transport.faults import describe
from sqs_broker.transport.kombu_types import json_dumps
from sqs_broker.transport.receiving import NO_QUEUE_CODES

logger = logging.getLogger(__name__)


def exchange_types(fanout: bool) -> frozenset[str]:
    """The exchange types the transport implements: ``fanout`` too when SNS carries it."""
    return frozenset({"direct", "fanout"}) if fanout else frozenset({"direct"})


class RemoteControl:
    """Mixed into :class:`sqs_broker.transport.Channel`; see the module's docstring."""

    # Set by kombu's channel or the other mixins (declared for the type checker).
    hub: Any
    acks: Any
    _requests: Any
    _queue_cache: dict[str, str]
    predefined_queues: dict[str, Any]
    transport_options: Any
    wait_time_seconds: int
    sqs_base64_encoding: bool
    get_message_attributes: Any
    request_timeout: float
    connect_timeout: float
    receive_margin: float
    _io_client: Any
    _new_queue: Any

    #: When the caller's current wait for replies ends (monotonic), while it drains.
    _drain_until: float | None

    def _remote_init(self) -> None:
        self._drain_until = None

    # --- SNS calls with deadlines ------------------------------------------------

    def _new_boto_client(
        self,
        service: str,
        region: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
        session_token: str | None = None,
        config: Config | None = None,
    ) -> Any:
        """kombu's client; for SNS with the transport's deadlines (botocore's: 60 s, retried).

        A worker subscribes its mailbox as it starts and a caller publishes through
        SNS: neither waits minutes for an SNS that does not answer.
        """
        if service == "sns" and config is None:
            config = Config(
                connect_timeout=self.connect_timeout,
                read_timeout=self.request_timeout,
                retries={"total_max_attempts": 2},
            )
        return super()._new_boto_client(  # type: ignore[misc]
            service=service,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            config=config,
        )

    # --- names ------------------------------------------------------------------

    def canonical_queue_name(self, queue_name: str) -> str:
        name: str = super().canonical_queue_name(queue_name)  # type: ignore[misc]
        return remote_control_sqs_name(name) if is_remote_control(name) else name

    def _control_queue(self, queue: str | None) -> bool:
        """Whether ``queue`` is a remote-control queue while queues are predefined."""
        return bool(queue) and bool(self.predefined_queues) and is_remote_control(queue or "")

    # --- predefined queues: the connection's own client for remote control --------

    def sqs(self, queue: str | None = None) -> Any:
        if self._control_queue(queue):
            queue = None
        return super().sqs(queue=queue)  # type: ignore[misc]

    def _resolve_queue_url(self, queue: str) -> str:
        if not self._control_queue(queue):
            return str(super()._resolve_queue_url(queue))  # type: ignore[misc]
        qname = self.canonical_queue_name(queue)
        url = self._queue_cache.get(qname)
        if url is None:
            url = self._queue_cache[qname] = self._queue_url(qname)
        return url

    def _create_queue(self, queue_name: str, attributes: dict[str, Any]) -> Any:
        if not self._control_queue(queue_name):
            return super()._create_queue(queue_name, attributes)  # type: ignore[misc]
        attributes.update(self.transport_options.get("sqs-creation-attributes") or {})
        return self.sqs().create_queue(QueueName=queue_name, Attributes=attributes)

    def _queue_url(self, qname: str) -> str:
        """``GetQueueUrl`` (consistent at once, unlike ``ListQueues``); kombu's error if absent."""
        try:
            answer = self._io_client(qname, self.request_timeout).get_queue_url(QueueName=qname)
        except ClientError as exc:
            if (exc.response.get("Error") or {}).get("Code") in NO_QUEUE_CODES:
                raise DoesNotExistQueueException(
                    f"Queue with name '{qname}' doesn't exist in SQS"
                ) from None
            raise
        return str(answer["QueueUrl"])

    # --- replies routed by queue name ----------------------------------------------

    def _lookup(self, exchange: str, routing_key: str, default: str | None = None) -> Any:
        found = super()._lookup(exchange, routing_key, default)  # type: ignore[misc]
        if not found and exchange and routing_key and is_reply_exchange(exchange):
            # The binding lives in the caller's process; its queue's name says it all.
            return [reply_queue_name(exchange, routing_key)]
        return found

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        if not is_reply_queue(queue):
            super()._put(queue, message, **kwargs)  # type: ignore[misc]
            return
        qname = self.canonical_queue_name(queue)
        # As kombu's _put writes a body (the reply is plain JSON, as the mailbox sends it).
        body = json_dumps(message)
        if self.sqs_base64_encoding:
            body = base64.b64encode(body.encode()).decode()
        io = self._requests
        if io is None or io.closed or not io.on_hub():
            self._send_reply(qname, body)
            return
        io.submit(
            "SendMessage",
            qname,
            lambda: self._send_reply(qname, body),
            self.request_timeout * 2,
            lambda _, error: self._reply_failed(qname, error),
        )

    def _send_reply(self, qname: str, body: str) -> None:
        """Send a reply to the caller's queue; nothing if that queue is gone (nobody waits)."""
        client = self._io_client(qname, self.request_timeout)
        url = self._queue_cache.get(qname)
        try:
            if url is None:
                url = self._queue_cache[qname] = self._queue_url(qname)
            client.send_message(QueueUrl=url, MessageBody=body)
        except DoesNotExistQueueException:
            logger.info("Reply queue %s no longer exists: its caller stopped waiting.", qname)
        except ClientError as exc:
            if (exc.response.get("Error") or {}).get("Code") not in NO_QUEUE_CODES:
                raise
            self._queue_cache.pop(qname, None)
            logger.info("Reply queue %s no longer exists: its caller stopped waiting.", qname)

    def _reply_failed(self, qname: str, error: BaseException | None) -> None:
        if error is not None:
            logger.warning("Remote-control reply to %s not sent: %s", qname, describe(error))

    # --- no-ack deletes, in and out of a worker ---------------------------------

    def _delete_message(self, queue_name: str, message: dict[str, Any]) -> None:
        qname = self.canonical_queue_name(queue_name)
        url = self._new_queue(queue_name)
        io = self._requests
        if self.acks is not None and io is not None and not io.closed and io.on_hub():
            self.acks.add(qname, url, message["ReceiptHandle"], str(message.get("MessageId", "?")))
            return
        try:
            self._io_client(qname, self.request_timeout).delete_message(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
            )
        except Exception as exc:
            logger.warning(
                "SQS DeleteMessage on queue %s: %s; SQS delivers the message again after its "
                "visibility timeout.",
                qname,
                describe(exc),
            )

    # --- deleting a reply queue ----------------------------------------------------

    def _delete(self, queue: str, exchange: str | None = None, *args: Any, **kwargs: Any) -> None:
        """kombu's delete, forgetting the queue's URL by its SQS name (kombu's key).

        kombu forgets it by the kombu name, so a reply queue declared again under
        the same name was looked up at its deleted URL (``NonExistentQueue``).
        A remote-control queue is deleted under predefined queues too.
        """
        qname = self.canonical_queue_name(queue)
        if self._control_queue(queue):
            url = self._resolve_queue_url(queue)
            self._io_client(qname, self.request_timeout).delete_queue(QueueUrl=url)
        else:
            super()._delete(queue, exchange, *args, **kwargs)  # type: ignore[misc]
        self._queue_cache.pop(qname, None)

    # --- a caller's blocking receive, with a deadline ------------------------------

    def drain_events(
        self, timeout: float | None = None, callback: Any = None, **kwargs: Any
    ) -> Any:
        """kombu's blocking receive (a caller collecting replies), bounded by ``timeout``."""
        self._drain_until = None if timeout is None else time.monotonic() + timeout
        try:
            return super().drain_events(timeout=timeout, callback=callback, **kwargs)  # type: ignore[misc]
        finally:
            self._drain_until = None

    def _receive_message(
        self, queue: str, max_number_of_messages: int = 1, wait_time_seconds: int | None = None
    ) -> Any:
        """One ``ReceiveMessage``: its long poll ends by the caller's deadline, read with one."""
        wait = self.wait_time_seconds if wait_time_seconds is None else wait_time_seconds
        if self._drain_until is not None:
            left = self._drain_until - time.monotonic()
            wait = max(0, min(wait, math.ceil(left)))
        qname = self.canonical_queue_name(queue)
        url = self._new_queue(queue)
        if is_reply_queue(queue):
            # kombu's mailbox counts one reply per drain towards its limit: a batch of
            # replies in one drain would leave it waiting the timeout for replies that
            # already came.
            max_number_of_messages = 1
        params: dict[str, Any] = {
            "QueueUrl": url,
            "MaxNumberOfMessages": max_number_of_messages,
            "WaitTimeSeconds": wait,
        }
        for key, names in self.get_message_attributes.items():
            if names:
                params[key] = list(names)
        client = self._io_client(qname, wait + self.receive_margin)
        return client.receive_message(**params)
