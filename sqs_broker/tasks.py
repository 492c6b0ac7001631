"""Celery tasks of the app, run by beat: queue sampling, the large-payload and mailbox sweeps.

Schedule them in the project's settings::

    CELERY_BEAT_SCHEDULE = {
        "sqs-broker-sample": {"task": "sqs_broker.sample_queues", "schedule": 60.0},
        "sqs-broker-sweep-payloads": {"task": "sqs_broker.sweep_payloads", "schedule": 3600.0},
        "sqs-broker-sweep-mailboxes": {"task": "sqs_broker.sweep_mailboxes", "schedule": 3600.0},
    }
"""

from __future__ import annotations

import logging
from typing import Any

from sqs_broker.celery_types import shared_task
from sqs_broker.topology import Topology

#: The audit logger the action commands write to (``sqs_broker.audit``).
audit_logger = logging.getLogger("sqs_broker.audit")


@shared_task(name="sqs_broker.sample_queues", ignore_result=True)
def sample_queues() -> dict[str, Any]:
    """One sample of every queue's depth, then retention pruning (see ``sqs_sample``)."""
    # Imported here: a worker that never runs this task needs none of the data code.
    from sqs_broker import stats

    result = stats.sample()
    return {
        "written": result.written,
        "pruned": result.pruned,
        "failed": sorted(result.failed),
        "missing": result.missing,
    }


@shared_task(name="sqs_broker.sweep_payloads", ignore_result=True)
def sweep_payloads() -> dict[str, Any]:
    """Delete stored message bodies whose messages are gone (see ``sqs_payloads sweep``)."""
    from sqs_broker import payloads
    from sqs_broker.payloads.sweep import sweep

    if payloads.settings() is None:
        return {"skipped": "SQS_BROKER_LARGE_PAYLOAD_BUCKET is not set"}
    result = sweep()
    return {
        "scanned": result.scanned,
        "deleted": result.deleted_total,
        "kept": result.kept,
        "errors": result.errors,
    }


@shared_task(name="sqs_broker.sweep_mailboxes", ignore_result=True)
def sweep_mailboxes() -> dict[str, Any]:
    """Delete remote control's leftover queues and subscriptions (see ``sqs_remote sweep``)."""
    from sqs_broker import mailboxes

    topo = Topology.of()
    if not topo.is_sqs:
        return {"skipped": "the broker is not SQS"}
    result = mailboxes.sweep(topo)
    for name in result.deleted:
        audit_logger.info("sqs_broker.sweep_mailboxes: deleted queue %s", name)
    for arn in result.unsubscribed:
        audit_logger.info("sqs_broker.sweep_mailboxes: removed subscription %s", arn)
    return {
        "deleted": result.deleted,
        "unsubscribed": result.unsubscribed,
        "kept": [m.name for m in result.survey.mailboxes if not m.leftover],
        "errors": result.errors,
    }
