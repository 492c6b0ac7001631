"""Celery tasks of the app: queue sampling for the dashboard's history, run by beat.

Schedule it in the project's settings::

    CELERY_BEAT_SCHEDULE = {
        "sqs-broker-sample": {"task": "sqs_broker.sample_queues", "schedule": 60.0},
    }
"""

from __future__ import annotations

from typing import Any

from sqs_broker.celery_types import shared_task


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
