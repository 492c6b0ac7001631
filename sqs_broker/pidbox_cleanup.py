"""Remote control's queues removed when their process ends: a worker's mailbox, a caller's replies.

With remote control on, kombu creates ``<hostname>.celery.pidbox`` for each
worker and subscribes it to the app's pidbox topic; nothing deletes it, so
every restart under a new hostname (a container's) would leave a queue and a
subscription behind. Celery sends ``worker_shutdown`` at a warm shutdown, after
the consumer has stopped reading: the handler here deletes the mailbox then and
unsubscribes it. A killed worker cannot: ``manage.py sqs_remote sweep``
(:mod:`sqs_broker.mailboxes`) deletes those later.

A caller (a web process, a command) keeps one reply queue per thread and never
deletes it (:mod:`sqs_broker.control`): SQS refuses a deleted name for 60 s.
:func:`delete_replies_at_exit` notes the reply queues the app's mailbox names in
this process and deletes them when the interpreter exits. A process killed
(SIGKILL) leaves its reply queues: ``sqs_remote sweep --reply-age`` deletes those.

Installed by :mod:`sqs_broker.apps` when remote control is on: the shutdown
handler on ``celeryd_init`` (workers only), the exit hook in every process (one
that never calls remote control has nothing to delete).
"""

from __future__ import annotations

import atexit
import logging
import os
from typing import Any

from celery import signals

from sqs_broker.sqs import error_text, pidbox
from sqs_broker.topology import Topology, entity_name, remote_control_sqs_name

logger = logging.getLogger(__name__)


def install(app: Any) -> None:
    """Remove this worker's mailbox at its warm shutdown (remote control on only)."""
    topo = Topology.of(app)
    if not topo.remote_control:
        return
    signals.worker_shutdown.connect(_on_shutdown, weak=False, dispatch_uid=__name__)


def _on_shutdown(sender: Any = None, **kwargs: Any) -> None:
    hostname = getattr(sender, "hostname", None)
    app = getattr(sender, "app", None)
    if not hostname or app is None:
        return
    topo = Topology.of(app)
    name = topo.pidbox_queue(hostname)
    try:
        existed, removed = pidbox.remove_mailbox(name, topo)
    except Exception as exc:  # never in the way of the shutdown; the sweep catches up
        logger.warning(
            "Could not remove the remote-control mailbox %s: %s "
            "(manage.py sqs_remote sweep removes it later)",
            name,
            error_text(exc)[0],
        )
        return
    logger.info(
        "Removed the remote-control mailbox %s%s and %d SNS subscription(s).",
        name,
        "" if existed else " (already gone)",
        removed,
    )


#: Reply queues (kombu names) the app's mailbox named, by the process that named them.
_replies: dict[int, set[str]] = {}


def delete_replies_at_exit(app: Any) -> None:
    """Note the reply queues ``app``'s remote control uses; delete them at interpreter exit."""
    topo = Topology.of(app)
    if not topo.remote_control:
        return
    mailbox: Any = app.control.mailbox
    if not getattr(mailbox, "_notes_replies", False):
        # Its own class, the one method added: Celery built the mailbox with the app's
        # exchange, serializer and queue options, and sqs_broker.control names its queue.
        base = type(mailbox)
        mailbox.__class__ = type(base.__name__, (base,), {
            "_notes_replies": True, "get_reply_queue": _noting(base.get_reply_queue)
        })  # fmt: skip
    atexit.register(_delete_replies, topo)


def _noting(get_reply_queue: Any) -> Any:
    def noted(self: Any) -> Any:
        queue = get_reply_queue(self)
        _replies.setdefault(os.getpid(), set()).add(queue.name)
        return queue

    return noted


def _delete_replies(topo: Topology) -> None:
    for name in sorted(_replies.pop(os.getpid(), set())):
        sqs_name = remote_control_sqs_name(entity_name(topo.prefix + name))
        try:
            pidbox.delete_queue(sqs_name, topo)
        except Exception as exc:  # the process is ending: say it, never raise
            logger.info("Reply queue %s not deleted at exit: %s", sqs_name, error_text(exc)[0])
