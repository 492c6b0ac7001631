"""Causes named from measured figures: W030, W031, W032.

These checks judge what was measured, not what is configured: the task
counters of telemetry (the window's maximum run time, redeliveries, failures
per task and queue, see :func:`sqs_broker.telemetry.read.snapshot`), the
queues' live visibility timeouts, and the last sample of each dead-letter
queue (see :mod:`sqs_broker.triage`). The faces hand them in as a
:class:`Measured`; nothing here asks SQS or the database, so a worker that
imports the findings loads nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from sqs_broker.findings.base import Finding, make, register, seconds

#: A run time at or above this share of the visibility timeout has reached it.
REACHED = 0.9
#: A task redelivered on at least this share of its receives...
REDELIVERED = 0.2
#: ...while failing at most this share of its finished runs...
RARELY_FAILING = 0.05
#: ...over at least this many receives (fewer say little).
MIN_RECEIVED = 10
#: A dead-letter sample with at least this share of stored SUCCESS results...
SUCCEEDED_SHARE = 0.5
#: ...and at least this many of them.
MIN_SUCCEEDED = 2


@dataclass(frozen=True)
class Measured:
    """What was measured: queue rows, task rows, the lease, the dead-letter samples."""

    #: ``gather()``'s queue rows (``name``, ``url``, ``visibility_timeout``, ``dlq``).
    queues: Sequence[Mapping[str, Any]]
    #: ``gather()``'s task rows (``name``, ``queue``, ``received``, ``redelivered``, ...).
    tasks: Sequence[Mapping[str, Any]]
    #: The visibility lease in seconds (transport option ``visibility_lease``), if set.
    lease: float | None = None
    #: Dead-letter queue name -> its last breakdown (:class:`sqs_broker.triage.Breakdown`).
    dead_letters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def lease_of(options: Mapping[str, Any]) -> float | None:
    """The ``visibility_lease`` transport option in seconds, when set to a positive number."""
    value = options.get("visibility_lease")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _percent(part: float) -> str:
    return f"{part * 100:.0f} %"


@register("measured", applies="any")
def run_time_reaches_timeout(measured: Measured) -> list[Finding]:
    """W030: a task's longest run reaches its queue's visibility timeout.

    Under a visibility lease the workers extend a message while its task runs, so a
    long run is no longer handed to another worker: nothing to say then.
    """
    by_name = {q["name"]: q for q in measured.queues}
    found: list[Finding] = []
    if measured.lease:
        return found
    for task in measured.tasks:
        queue = by_name.get(task["queue"])
        longest = task.get("runtime_max")
        if queue is None or longest is None:
            continue
        timeout = queue.get("visibility_timeout")
        if not timeout or longest < REACHED * timeout:
            continue
        needed = max(math.ceil(longest * 2), timeout + 1)
        what = _("the queue's visibility timeout (%(limit)s s)") % {"limit": seconds(timeout)}
        found.append(
            make(
                "sqs_broker.W030",
                _(
                    "Task %(task)s ran up to %(longest)s s on %(queue)s, which reaches "
                    "%(what)s: SQS hands its message to another worker while it runs, so it "
                    "runs twice and, after maxReceiveCount receives, is dead-lettered even "
                    "though it succeeded."
                )
                % {
                    "task": task["name"],
                    "longest": f"{longest:.2f}",
                    "queue": task["queue"],
                    "what": what,
                },
                _(
                    "aws sqs set-queue-attributes --queue-url %(url)s --attributes "
                    "VisibilityTimeout=%(needed)s (and SQS_VISIBILITY_TIMEOUT=%(needed)s for "
                    "queues kombu creates), or make the task shorter."
                )
                % {"url": queue.get("url") or task["queue"], "needed": needed},
                queue=task["queue"],
            )
        )
    return found


@register("measured", applies="any")
def redelivered_while_succeeding(measured: Measured) -> list[Finding]:
    """W031: a task redelivered often while rarely failing (its work is done twice)."""
    found = []
    for task in measured.tasks:
        received = task.get("received") or 0
        redelivered = task.get("redelivered") or 0
        finished = (task.get("succeeded") or 0) + (task.get("failed") or 0)
        finished += task.get("retried") or 0
        if received < MIN_RECEIVED or not finished:
            continue
        redelivery = redelivered / received
        failure = (task.get("failed") or 0) / finished
        if redelivery < REDELIVERED or failure > RARELY_FAILING:
            continue
        found.append(
            make(
                "sqs_broker.W031",
                _(
                    "Task %(task)s on %(queue)s was redelivered on %(redelivered)s of its "
                    "receives (%(count)s of %(received)s) while failing %(failed)s of its "
                    "runs: its messages come back although the work succeeds, so it runs "
                    "more than once."
                )
                % {
                    "task": task["name"],
                    "queue": task["queue"],
                    "redelivered": _percent(redelivery),
                    "count": redelivered,
                    "received": received,
                    "failed": _percent(failure),
                },
                _(
                    "Raise the queue's VisibilityTimeout above the task's longest run (see "
                    "W030), and look for workers killed while holding messages (lost "
                    "workers on the dashboard)."
                ),
                queue=task["queue"],
            )
        )
    return found


@register("measured", applies="any")
def dead_letters_succeeded(measured: Measured) -> list[Finding]:
    """W032: a dead-letter queue filling with tasks whose stored result is SUCCESS."""
    sources = {q["dlq"]["name"]: q["name"] for q in measured.queues if q.get("dlq")}
    found = []
    for name, sample in sorted(measured.dead_letters.items()):
        sampled = sample.get("sampled") or 0
        succeeded = sample.get("succeeded") or 0
        if succeeded < MIN_SUCCEEDED or succeeded < SUCCEEDED_SHARE * sampled:
            continue
        source = sources.get(name, "QUEUE")
        found.append(
            make(
                "sqs_broker.W032",
                _(
                    "%(succeeded)s of %(sampled)s dead letters sampled in %(name)s have a "
                    "stored SUCCESS result: the tasks ran and were dead-lettered anyway "
                    "(redelivered while running, see W030). Moving them back would run them "
                    "again."
                )
                % {"succeeded": succeeded, "sampled": sampled, "name": name},
                _(
                    "manage.py sqs_move %(source)s (it leaves the succeeded ones), then "
                    "manage.py sqs_move %(source)s --delete-succeeded; and raise the "
                    "visibility timeout of %(source)s above its longest task."
                )
                % {"source": source},
                queue=name,
            )
        )
    return found
