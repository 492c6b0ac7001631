"""Task revocations kept in the database: revoking ids, reading the active ones, pruning.

Celery keeps a revocation in each worker's memory (``celery.worker.state.revoked``),
so a worker started afterwards (a new pod after a scale-out, a restart) runs
a revoked task anyway; on SQS without remote control no worker hears of it at
all. A :class:`~sqs_broker.models.Revocation` row outlives workers: every
worker loads the unexpired ids at start and every
``SQS_BROKER_REVOCATION_REFRESH`` seconds (:mod:`sqs_broker.revocation_sync`),
and Celery's own path then discards the message unrun.

``manage.py sqs_revoke`` and the dashboard's revoke call :func:`revoke`; the
faces read :func:`active`. This module asks SQS only for :func:`default_expiry`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from sqs_broker import sqs
from sqs_broker.models import Revocation, delete_bounded
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    pass

#: SQS's default message retention (4 days): the expiry when no queue's own is known.
DEFAULT_RETENTION = 4 * 86400
#: SQS's longest message retention (14 days): the longest expiry worth keeping.
MAX_EXPIRES = 14 * 86400
#: The longest task id Celery workers are asked to refuse (the column's length).
MAX_TASK_ID = 255
#: The longest reason kept.
MAX_REASON = 500

audit_logger = logging.getLogger("sqs_broker.audit")


@dataclass(frozen=True)
class Revoked:
    """One revocation as the faces show it."""

    task_id: str
    revoked_at: datetime
    expires_at: datetime
    revoked_by: str
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What :func:`revoke` did: the ids newly revoked, and those already revoked (renewed)."""

    added: list[str]
    renewed: list[str]
    expires_at: datetime


def _clean_ids(task_ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(task_ids))  # once each, in the order given
    if not ids:
        raise ValueError("Give at least one task id.")
    for task_id in ids:
        if not isinstance(task_id, str) or not task_id.strip() or task_id != task_id.strip():
            raise ValueError(
                f"A task id must be a non-empty string without surrounding spaces; got {task_id!r}."
            )
        if len(task_id) > MAX_TASK_ID:
            raise ValueError(
                f"A task id is at most {MAX_TASK_ID} characters; got one of {len(task_id)}."
            )
    return ids


def default_expiry(topo: Topology) -> tuple[int, str]:
    """Seconds a revocation lasts when none is given, and where the figure comes from.

    The longest ``MessageRetentionPeriod`` of the app's queues: SQS deletes
    a message older than its queue's retention, so no message of a revoked
    task outlives that. :data:`DEFAULT_RETENTION` (SQS's default, 4 days)
    when SQS does not say (no queue found, access denied, unreachable).
    """
    try:
        # Fresh: a revocation is rare, and a cached error would shorten it.
        states = sqs.fetch(sqs.inventory(topo, discover=False), topo, max_age=0)
    except Exception as exc:
        why = sqs.error_text(exc)[0]
        return DEFAULT_RETENTION, f"SQS's default retention; the queues could not be read: {why}"
    retentions = [
        seconds
        for state in states
        if not state.error and (seconds := state.int("MessageRetentionPeriod")) is not None
    ]
    if not retentions:
        errors = [f"{state.ref.name}: {state.error}" for state in states if state.error]
        if errors:
            return DEFAULT_RETENTION, (
                f"SQS's default retention; the app's queues could not be read ({errors[0]})"
            )
        return DEFAULT_RETENTION, "SQS's default retention; no queue's own retention is known"
    return max(retentions), "the longest message retention of the app's queues"


def revoke(
    task_ids: Iterable[str],
    user: str,
    reason: str = "",
    expires: float | None = None,
    topo: Topology | None = None,
    via: str = "sqs_broker.revocations.revoke",
) -> Outcome:
    """Revoke ``task_ids`` for ``expires`` seconds (default: :func:`default_expiry`).

    An id already revoked gets the new expiry, user and reason. Writes one
    audit line on the ``sqs_broker.audit`` logger. Raises ``ValueError``
    naming what to fix for an empty or over-long id, a bad expiry or reason.
    ``via`` names the face in the audit line (``manage.py sqs_revoke``, the dashboard).
    """
    ids = _clean_ids(task_ids)
    if expires is None:
        expires = default_expiry(topo or Topology.of())[0]
    if (
        isinstance(expires, bool)
        or not isinstance(expires, int | float)
        or not (1 <= expires <= MAX_EXPIRES)
    ):
        raise ValueError(
            f"expires must be a number of seconds from 1 to {MAX_EXPIRES} (14 days, SQS's "
            f"longest retention); got {expires!r}."
        )
    if len(reason) > MAX_REASON:
        raise ValueError(f"A reason is at most {MAX_REASON} characters; got {len(reason)}.")
    if not user:
        raise ValueError("Say who revokes: user must be a non-empty string.")
    now = timezone.now()
    expires_at = now + timedelta(seconds=expires)
    fields = {
        "revoked_at": now,
        "expires_at": expires_at,
        "revoked_by": user[:150],
        "reason": reason,
    }
    with transaction.atomic():
        prune_expired(now)
        known = set(Revocation.objects.filter(task_id__in=ids).values_list("task_id", flat=True))
        Revocation.objects.filter(task_id__in=known).update(**fields)
        Revocation.objects.bulk_create(
            [Revocation(task_id=task_id, **fields) for task_id in ids if task_id not in known]
        )
    added = [task_id for task_id in ids if task_id not in known]
    renewed = [task_id for task_id in ids if task_id in known]
    audit_logger.info(
        "%s by %s: revoked %s until %s%s",
        via,
        user,
        ", ".join(ids),
        expires_at.isoformat(timespec="seconds"),
        f" ({reason})" if reason else "",
    )
    return Outcome(added=added, renewed=renewed, expires_at=expires_at)


def forget(
    task_ids: Iterable[str], user: str, via: str = "sqs_broker.revocations.forget"
) -> list[str]:
    """Withdraw the revocations of ``task_ids``; the ids that were revoked (others are skipped).

    Running workers let the task run again from their next refresh on.
    """
    ids = _clean_ids(task_ids)
    rows = Revocation.objects.filter(task_id__in=ids)
    found = sorted(rows.values_list("task_id", flat=True))
    rows.delete()
    if found:
        audit_logger.info("%s by %s: revocation withdrawn of %s", via, user, ", ".join(found))
    return found


def active(now: datetime | None = None) -> list[Revoked]:
    """The unexpired revocations, newest first."""
    rows = Revocation.objects.filter(expires_at__gt=now or timezone.now())
    return [
        Revoked(r.task_id, r.revoked_at, r.expires_at, r.revoked_by, r.reason)
        for r in rows.order_by("-revoked_at", "task_id")
    ]


def active_ids(now: datetime | None = None) -> dict[str, tuple[str, str]]:
    """``{task id: (revoked by, reason)}`` of the unexpired revocations: one query.

    What a worker reads every refresh; only the columns it logs.
    """
    rows = Revocation.objects.filter(expires_at__gt=now or timezone.now()).values_list(
        "task_id", "revoked_by", "reason"
    )
    return {task_id: (who, reason) for task_id, who, reason in rows}


def prune_expired(now: datetime | None = None) -> int:
    """Delete the revocations past their expiry; how many rows went."""
    old = Revocation.objects.filter(expires_at__lte=now or timezone.now())
    return delete_bounded(old, "expires_at")
