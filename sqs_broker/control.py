"""Celery's remote control as a caller (a web process, a command): one reply queue per thread.

kombu names a caller's reply queue after the mailbox object that makes the call,
and Celery makes a new one for every call, so each ``inspect`` or ``control``
call would create an SQS queue and delete it after the call (SQS then refuses
that name for 60 s). :class:`KeptReplyMailbox` names it after the process and
thread instead and never deletes it, so every call of a thread reuses one
queue. Threads calling at once still get queues of their own: a reply is
never read by another caller.

:func:`install` puts it on an app; ``SqsBrokerConfig.ready()`` does so when
``SQS_BROKER_REMOTE_CONTROL`` is on. ``celery -A project inspect`` loads no
Django apps and keeps kombu's mailbox: one queue per call, deleted after it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqs_broker.celery_types import Consumer, Mailbox, generate_oid, get_node_id

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

#: One object per process the oid is made from (a new one after a fork).
_OWNER: dict[int, object] = {}


class KeptReplyMailbox(Mailbox):
    """kombu's mailbox whose reply queue is named after the process and thread only.

    Its queue outlives a call, so a reply that came after its call's timeout is
    read by the next call: :meth:`_collect` counts only the replies to the call
    it makes, and drops the others (kombu counts every message towards
    ``limit`` and keeps unknown tickets for later, which would leave each call
    reading the previous call's late replies). ``timeout`` bounds the whole
    call, not each wait for one reply. Unlike kombu's, it does not ask the
    channel to delete the reply queue after the call.
    """

    @property
    def oid(self) -> str:
        pid = os.getpid()
        owner = _OWNER.setdefault(pid, object())
        return generate_oid(get_node_id(), pid, threading.get_ident(), owner)

    def _collect(
        self,
        ticket: str,
        limit: int | None = None,
        timeout: float = 1,
        callback: Callable[[Any], None] | None = None,
        channel: Any = None,
        accept: Any = None,
    ) -> list[Any]:
        channel = channel or self.connection.default_channel
        responses: list[Any] = []
        late = 0

        def on_message(body: Any, message: Any) -> None:
            nonlocal late
            headers = message.headers or {}
            self.clock.adjust(headers.get("clock") or 0)
            if headers.get("ticket", ticket) != ticket:
                late += 1
                return
            if callback is not None:
                callback(body)
            responses.append(body)

        consumer = Consumer(channel, [self.reply_queue], accept=accept or self.accept, no_ack=True)
        consumer.register_callback(on_message)
        deadline = time.monotonic() + timeout
        with consumer:
            while limit is None or len(responses) < limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    self.connection.drain_events(timeout=left)
                except TimeoutError:
                    break
        if late:
            logger.debug("Dropped %d late remote-control repl(ies) of earlier calls.", late)
        return responses


def install(app: Celery) -> None:
    """Give ``app``'s remote control a reply queue per process and thread."""
    mailbox: Any = app.control.mailbox
    if not isinstance(mailbox, KeptReplyMailbox):
        # The same object with the one property changed: Celery built it with the
        # app's exchange, serializer and queue options, which stay as they are.
        mailbox.__class__ = KeptReplyMailbox


def revoke(
    app: Celery, task_ids: list[str], timeout: float = 2.0, expected: int | None = None
) -> list[str]:
    """Broadcast a revocation to the running workers; the hostnames that confirmed it.

    ``expected`` (the live workers, from heartbeats) ends the wait once that many
    answered; without it the call waits ``timeout`` seconds for every answer.
    Errors (SNS or SQS refusing) are raised: the caller says what was not done.
    """
    replies = app.control.revoke(task_ids, reply=True, timeout=timeout, limit=expected or None)
    return sorted(name for reply in replies or [] for name in reply)
