"""The worker's side of the transport: Celery's task consumer and rejections, told to the channel.

The channel imports no Celery app and no telemetry; a ``celery worker`` hands
it what it needs here, through :func:`install` (called by
:mod:`sqs_broker.apps` on ``celeryd_init``, so only in workers):

* :class:`PoisonStep`, a consumer bootstep, marks the worker's task consumer
  on its channel before it consumes (that consumer's messages get the task
  checks, with its own ``accept``) and gives the channel the poison counter;
* Celery's ``task_unknown`` and ``task_rejected`` signals, sent right after
  Celery rejected a message, give the channel the reason it moves the message
  aside with (:meth:`sqs_broker.transport.Channel.rejected_because`).

With ``SQS_TRANSPORT=kombu`` the channel is kombu's: the step and the
handlers find nothing to tell and do nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import signals

from sqs_broker.celery_types import StartStopStep

#: The poison counter :func:`install` was given (called with a queue's SQS name and the
#: task the message names, ``None`` when none can be read).
_on_poison: Callable[[str, str | None], None] | None = None
_connected = False


class PoisonStep(StartStopStep):
    """Consumer bootstep: the task consumer and the poison counter, told to the channel."""

    label = "sqs_broker poison"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        consumer = getattr(parent, "task_consumer", None)
        serve = getattr(getattr(consumer, "channel", None), "serve_tasks", None)
        if serve is not None:
            serve(consumer, _on_poison)


def _tell(message: Any, reason: str) -> None:
    tell = getattr(getattr(message, "channel", None), "rejected_because", None)
    if tell is not None:
        tell(message.delivery_tag, reason)


def on_task_unknown(
    sender: Any = None, message: Any = None, name: Any = None, **kwargs: Any
) -> None:
    """``task_unknown``: Celery rejected a message naming a task it does not know."""
    if message is not None:
        _tell(message, f"no task named {name!r} is registered in the worker")


def on_task_rejected(
    sender: Any = None, message: Any = None, exc: Any = None, **kwargs: Any
) -> None:
    """``task_rejected``: Celery rejected a message as an invalid task or an unknown format."""
    if message is None:
        return
    if exc is None:
        _tell(message, "Celery found no task in it (unknown message format)")
    else:
        _tell(message, f"Celery rejected it as an invalid task ({type(exc).__name__}: {exc})")


def install(app: Any, on_poison: Callable[[str, str | None], None] | None = None) -> None:
    """Add :class:`PoisonStep` to ``app``'s workers and connect the signals; safe twice."""
    global _connected, _on_poison
    _on_poison = on_poison
    app.steps["consumer"].add(PoisonStep)
    if _connected:
        return
    signals.task_unknown.connect(on_task_unknown, weak=False)
    signals.task_rejected.connect(on_task_rejected, weak=False)
    _connected = True
