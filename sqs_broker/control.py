"""Celery's remote control as a caller (a web process, a command): one reply queue per thread.

kombu names a caller's reply queue after the mailbox object that makes the call,
and Celery makes a new one for every call, so each ``inspect`` or ``control``
call would declare a new SQS queue (SQS has no queue that deletes itself when
its reader leaves). :class:`KeptReplyMailbox` names it after the process and
thread instead, so every call of a thread reuses one queue, which the transport
keeps (:mod:`sqs_broker.transport.remote`). Threads calling at once still get
queues of their own: a reply is never read by another caller.

:func:`install` puts it on an app; ``SqsBrokerConfig.ready()`` does so when
``SQS_BROKER_REMOTE_CONTROL`` is on.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from sqs_broker.celery_types import Mailbox, generate_oid, get_node_id

if TYPE_CHECKING:
    from celery import Celery

#: One object per process the oid is made from (a new one after a fork).
_OWNER: dict[int, object] = {}


class KeptReplyMailbox(Mailbox):
    """kombu's mailbox whose reply queue is named after the process and thread only."""

    @property
    def oid(self) -> str:
        pid = os.getpid()
        owner = _OWNER.setdefault(pid, object())
        return generate_oid(get_node_id(), pid, threading.get_ident(), owner)


def install(app: Celery) -> None:
    """Give ``app``'s remote control a reply queue per process and thread."""
    mailbox: Any = app.control.mailbox
    if not isinstance(mailbox, KeptReplyMailbox):
        # The same object with the one property changed: Celery built it with the
        # app's exchange, serializer and queue options, which stay as they are.
        mailbox.__class__ = KeptReplyMailbox
