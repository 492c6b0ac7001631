"""Typed names for the parts of Celery and kombu that sqs_broker builds on.

Celery ships no type information and kombu only some, so mypy sees their
classes as ``Any`` (which a strict check will not subclass) and some of their
functions as untyped. Rather than silence each use, this module names what
sqs_broker uses, with the signatures it relies on: at run time the names are
Celery's and kombu's own objects, for the type checker they are the
declarations below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:

    class Step:
        """``celery.bootsteps.Step``: a worker boot step."""

        label: str

        def __init__(self, parent: Any, **kwargs: Any) -> None: ...

    class StartStopStep(Step):
        """``celery.bootsteps.StartStopStep``: a step whose ``create()`` object starts and stops."""

        obj: Any

        def create(self, parent: Any) -> Any: ...

        def stop(self, parent: Any) -> None: ...

        def terminate(self, parent: Any) -> None: ...

    class AMQP:
        """``celery.app.amqp.AMQP``: the app's helper that builds and sends task messages."""

        app: Any

        def __init__(self, app: Any) -> None: ...

        def _create_task_sender(self) -> Any: ...

    def shared_task(*, name: str, ignore_result: bool = ...) -> Callable[[F], F]:
        """``celery.shared_task``: a task of every app, the function itself still callable."""
        ...

    class Mailbox:
        """``kombu.pidbox.Mailbox``: remote control's mailbox (Celery's ``app.control.mailbox``)."""

        connection: Any
        clock: Any
        accept: Any
        reply_queue: Any

        @property
        def oid(self) -> str: ...

    class Consumer:
        """``kombu.Consumer``: a consumer of queues on a channel (a context manager)."""

        def __init__(self, channel: Any, queues: Any, **kwargs: Any) -> None: ...

        def register_callback(self, callback: Callable[[Any, Any], None]) -> None: ...

        def __enter__(self) -> Consumer: ...

        def __exit__(self, *exc_info: object) -> None: ...

    def generate_oid(node_id: int, process_id: int, thread_id: int, instance: object) -> str:
        """``kombu.common.generate_oid``: a uuid3 of the node, process, thread and object."""
        ...

    def get_node_id() -> int:
        """``kombu.common.get_node_id``: this machine's node id."""
        ...

else:
    from celery import shared_task
    from celery.app.amqp import AMQP
    from celery.bootsteps import StartStopStep, Step
    from kombu import Consumer
    from kombu.common import generate_oid, get_node_id
    from kombu.pidbox import Mailbox


def channel_client(channel: Any, queue: str | None = None) -> Any:
    """kombu's ``SQS.Channel.sqs``: the boto3 client a channel uses for ``queue``."""
    from kombu.transport.SQS import Channel

    # kombu leaves Channel.sqs unannotated; one typed name for it.
    method: Callable[..., Any] = Channel.sqs
    return method(channel, queue=queue)


__all__ = [
    "AMQP",
    "Consumer",
    "Mailbox",
    "StartStopStep",
    "Step",
    "channel_client",
    "generate_oid",
    "get_node_id",
    "shared_task",
]
