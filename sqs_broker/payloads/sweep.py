"""The sweep: stored message bodies deleted once no message can point to them any more.

``manage.py sqs_payloads sweep`` and the beat task ``sqs_broker.sweep_payloads``
call :func:`sweep`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqs_broker import limits, sqs
from sqs_broker.payloads import Pointer, delete, s3_client, settings
from sqs_broker.payloads.bucket import forget_stored
from sqs_broker.topology import Topology, quarantine_name

if TYPE_CHECKING:
    from celery import Celery

#: SQS's longest ``MessageRetentionPeriod`` (14 days).
MAX_RETENTION = 1_209_600
#: Added to every bound: clocks, and a message received just before it expired.
SWEEP_MARGIN = 3600


@dataclass
class SweepResult:
    """What one sweep found and did."""

    scanned: int = 0
    #: Keys deleted (or, in a dry run, that would be), by queue name.
    deleted: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    #: Seconds an object of each queue is kept, as worked out from the queues.
    bounds: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def deleted_total(self) -> int:
        """Objects deleted (or to delete) in all."""
        return sum(self.deleted.values())


def _queue_of(key: str, prefix: str) -> str:
    return key[len(prefix) :].split("/", 1)[0] if "/" in key[len(prefix) :] else ""


def keep_for(queues: Iterable[str], topo: Topology) -> dict[str, float]:
    """Seconds an object stored for each queue may still be needed.

    A message lives at most its queue's retention; moved to a dead-letter
    queue (standard queues keep its first enqueue time, FIFO ones restart it)
    or to quarantine (a new message), it may live that queue's retention again.
    So: the queue's retention plus the longest of its dead-letter and
    quarantine queues', plus an hour. A queue SQS does not answer for (or that
    no longer exists) gets the longest bound SQS allows, twice.
    """
    names = sorted(set(queues))
    refs = [sqs.QueueRef(name, "declared") for name in names]
    states = {s.ref.name: s for s in sqs.fetch(refs, topo, max_age=0)}
    followers: dict[str, list[str]] = {}
    for name, state in states.items():
        policy = sqs.redrive_policy(state)
        followers[name] = [quarantine_name(name)] + ([policy["name"]] if policy else [])
    wanted = sorted({f for names in followers.values() for f in names} - set(states))
    states.update({s.ref.name: s for s in sqs.fetch(
        [sqs.QueueRef(n, "declared") for n in wanted], topo, max_age=0
    )})  # fmt: skip

    def retention(name: str) -> float | None:
        state = states.get(name)
        if state is None or (state.error and state.exists):
            return None  # unknown: assume the longest
        if not state.exists:
            return 0.0
        return float(state.int("MessageRetentionPeriod") or limits.DEFAULT_RETENTION_PERIOD)

    bounds: dict[str, float] = {}
    for name in names:
        own = retention(name)
        after = [retention(f) for f in followers.get(name, [])]
        if own is None or not states[name].exists or any(r is None for r in after):
            bounds[name] = 2.0 * MAX_RETENTION + SWEEP_MARGIN
        else:
            bounds[name] = own + max([r for r in after if r is not None] or [0.0]) + SWEEP_MARGIN
    return bounds


def sweep(
    app: Celery | Topology | None = None,
    dry_run: bool = False,
    older_than: float | None = None,
    now: float | None = None,
) -> SweepResult:
    """Delete stored bodies older than any message that could still point to them.

    ``older_than`` (seconds) replaces the bounds worked out from the queues
    (:func:`keep_for`). Raises :class:`RuntimeError` without a bucket, and what
    S3 raised when the listing fails; failed deletes are in the result.
    """
    where = settings()
    if where is None:
        raise RuntimeError("SQS_BROKER_LARGE_PAYLOAD_BUCKET is not set: there is nothing to sweep")
    client = s3_client(app, where)
    now = time.time() if now is None else now
    result = SweepResult()
    listed: list[tuple[str, str, float]] = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=where.bucket, Prefix=where.prefix
    ):
        for item in page.get("Contents") or []:
            key = str(item["Key"])
            age = now - item["LastModified"].timestamp()
            listed.append((key, _queue_of(key, where.prefix), age))
    result.scanned = len(listed)
    if older_than is None:
        result.bounds = keep_for({queue for _, queue, _ in listed if queue}, Topology.of(app))
    doomed: list[Pointer] = []
    for key, queue, age in listed:
        bound = older_than if older_than is not None else result.bounds.get(queue)
        if bound is None:  # not a key this app wrote (no queue part): the longest bound
            bound = 2.0 * MAX_RETENTION + SWEEP_MARGIN
        if age > bound:
            doomed.append(Pointer(where.bucket, key))
            result.deleted[queue] = result.deleted.get(queue, 0) + 1
        else:
            result.kept += 1
    if doomed and not dry_run:
        result.errors = delete(doomed, app)
        forget_stored()  # the faces' cached listing counts what was just deleted
    return result
