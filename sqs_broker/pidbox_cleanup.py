"""Remote control's queues removed when their process ends: a worker's mailbox, a caller's replies.

With remote control on, kombu creates ``<hostname>.celery.pidbox`` for each
worker and subscribes it to the app's pidbox topic; nothing deletes it, so
every restart under a new hostname (a container's) would leave a queue and a
subscription behind. Celery sends ``worker_shutdown`` at a warm shutdown, after
the consumer has stopped reading: the handler here deletes the mailbox then and
unsubscribes it. A killed worker cannot: ``manage.py sqs_remote sweep``
(:mod:`sqs_broker.mailboxes`) deletes those later.

A caller (a web process, a command) keeps one reply queue per thread, which the
transport deletes when its channel closes (:mod:`sqs_broker.transport.remote`);
Celery's connection pool keeps channels open until the process ends, and an
ending process closes nothing. :func:`close_at_exit` closes the app's pooled
connections at interpreter exit, so their reply queues go too. A process killed
(SIGKILL) leaves its reply queue: ``sqs_remote sweep --reply-age`` deletes those.

Installed by :mod:`sqs_broker.apps` when remote control is on: the shutdown
handler on ``celeryd_init`` (workers only), the exit hook in every process (a
worker's own pool is closed by its shutdown).
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from celery import signals

from sqs_broker.sqs import error_text, pidbox
from sqs_broker.topology import Topology

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


def close_at_exit(app: Any) -> None:
    """At interpreter exit, close ``app``'s pooled connections (remote control on only)."""
    if Topology.of(app).remote_control:
        atexit.register(_close_pool, app)


def _close_pool(app: Any) -> None:
    pool = getattr(app, "_pool", None)  # never made: nothing was called, nothing to close
    if pool is None:
        return
    try:
        pool.force_close_all()
    except Exception as exc:  # the process is ending: say it, never raise
        logger.info("Connections not closed at exit (reply queues may stay): %s", exc)
