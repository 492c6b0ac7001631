"""Typed names for the parts of kombu the transport builds on.

kombu's SQS channel, its QoS and its codecs carry no annotations, so mypy
sees calls into them as untyped and a subclass of them as a subclass of
``Any``. This module names what the transport uses, with the signatures it
relies on: at run time the names are kombu's own objects, for the type
checker they are the declarations below. ``relied_upon()`` in
:mod:`sqs_broker.transport` checks at run time that each still exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    class SQSQoS:
        """``kombu.transport.SQS.QoS``: prefetch accounting, with SQS's backoff on reject."""

        channel: Any
        _delivered: Any
        _dirty: Any

        def ack(self, delivery_tag: str) -> None: ...

        def reject(self, delivery_tag: str, requeue: bool = False) -> None: ...

    class VirtualQoS:
        """``kombu.transport.virtual.QoS``: the prefetch accounting SQS's QoS extends."""

        def reject(self, delivery_tag: str, requeue: bool = False) -> None: ...

    class VirtualChannel:
        """``kombu.transport.virtual.Channel``: what SQS's channel extends."""

        def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None: ...

    class SQSChannel(VirtualChannel):
        """``kombu.transport.SQS.Channel``: the methods the transport calls or replaces."""

        connection: Any
        qos: Any
        hub: Any
        codecs: Any
        closed: bool
        _active_queues: list[str]
        _tag_to_queue: dict[str, str]
        _noack_queues: set[str]
        _queue_cache: dict[str, str]
        predefined_queues: dict[str, Any]
        transport_options: dict[str, Any]
        wait_time_seconds: int

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

        @property
        def get_message_attributes(self) -> dict[str, Any]: ...

        def basic_consume(
            self,
            queue: str,
            no_ack: bool,
            callback: Any,
            consumer_tag: str,
            *args: Any,
            **kwargs: Any,
        ) -> Any: ...

        def basic_cancel(self, consumer_tag: str) -> Any: ...

        def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None: ...

        def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None: ...

        def canonical_queue_name(self, queue_name: str) -> str: ...

        def sqs(self, queue: str | None = None) -> Any: ...

        def _new_queue(self, queue: str, **kwargs: Any) -> str: ...

        def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None: ...

        def _release_messages(self, queue: str, qname: str, messages: list[Any]) -> None: ...

        def _new_release_client(self, client: Any) -> Any: ...

        def _delete_message(self, queue_name: str, message: dict[str, Any]) -> None: ...

        def _decode_python_message_body(self, raw_body: Any) -> bytes: ...

        def _prepare_json_payload(self, text: str) -> dict[str, Any]: ...

        def _envelope_payload(
            self, payload: Any, raw_text: str, message: dict[str, Any], q_url: str
        ) -> dict[str, Any]: ...

        def close(self) -> None: ...

    class SQSTransport:
        """``kombu.transport.SQS.Transport``: the transport the project's extends."""

        implements: Any

        def __init__(self, client: Any, **kwargs: Any) -> None: ...

    def bytes_to_str(s: bytes | str) -> str:
        """``kombu.utils.encoding.bytes_to_str``."""
        ...

    def json_dumps(s: Any) -> str:
        """``kombu.utils.json.dumps``: kombu's JSON (dates, UUIDs, decimals too)."""
        ...

    def str_to_bytes(s: bytes | str) -> bytes:
        """``kombu.utils.encoding.str_to_bytes``."""
        ...

    def decompress(body: bytes, content_type: str) -> bytes:
        """``kombu.compression.decompress``."""
        ...

    def loads(
        data: Any,
        content_type: str | None,
        content_encoding: str,
        accept: Any = None,
    ) -> Any:
        """``kombu.serialization.loads``."""
        ...

else:
    from kombu.compression import decompress
    from kombu.serialization import loads
    from kombu.transport.SQS import Channel as SQSChannel
    from kombu.transport.SQS import QoS as SQSQoS
    from kombu.transport.SQS import Transport as SQSTransport
    from kombu.transport.virtual import Channel as VirtualChannel
    from kombu.transport.virtual import QoS as VirtualQoS
    from kombu.utils.encoding import bytes_to_str, str_to_bytes
    from kombu.utils.json import dumps as json_dumps

__all__ = [
    "SQSChannel",
    "SQSQoS",
    "SQSTransport",
    "VirtualChannel",
    "VirtualQoS",
    "bytes_to_str",
    "decompress",
    "json_dumps",
    "loads",
    "str_to_bytes",
]
