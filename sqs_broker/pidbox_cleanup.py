"""A worker's remote-control mailbox removed at its warm shutdown, with its SNS subscription.

With remote control on, kombu creates ``<hostname>.celery.pidbox`` for each
worker and subscribes it to the app's pidbox topic; nothing deletes it, so
every restart under a new hostname (a container's) would leave a queue and a
subscription behind. Celery sends ``worker_shutdown`` at a warm shutdown, after
the consumer has stopped reading: the handler here deletes the mailbox then and
unsubscribes it. A killed worker cannot: ``manage.py sqs_remote sweep``
(:mod:`sqs_broker.mailboxes`) deletes those later.

Installed by :mod:`sqs_broker.apps` on ``celeryd_init`` (workers only) when
remote control is on.
"""

from __future__ import annotations

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
