"""Remote control's queues left behind: which are leftovers, and the sweep that deletes them.

With remote control on (:attr:`Topology.remote_control`), each worker has a
mailbox queue ``<hostname>.celery.pidbox`` subscribed to the app's pidbox SNS
topic, and each client process a reply queue ``<oid>.reply.celery.pidbox``. A
worker removes its mailbox at a warm shutdown (:mod:`sqs_broker.pidbox_cleanup`);
a killed one cannot. So a mailbox is a leftover when its worker's heartbeat
(telemetry) says lost or stopped for longer than ``SQS_BROKER_PIDBOX_SWEEP_AFTER``,
or, with telemetry on, when no heartbeat names it and the queue is older than
that. A caller deletes its reply queue when its connection closes; a killed
caller's stays, idle (an SQS queue nobody polls makes no request). Nothing tells a
live caller's kept queue from a dead one's, and a live caller whose queue is
deleted fails its next calls, so reply queues are swept only when asked: empty
and older than ``SQS_BROKER_REPLY_SWEEP_AFTER`` (``None`` by default: never) or
``sqs_remote sweep --reply-age``. Never another application's: only queues under
the app's ``queue_name_prefix`` named by Celery's pidbox rules, only the app's
own topic; without a prefix, only the mailboxes of workers this app's heartbeats
name, and no reply queue (nothing tells whose it is). With predefined queues the app
lists nothing: the mailboxes the heartbeats name are asked for by name.

``manage.py sqs_remote sweep``, the beat task ``sqs_broker.sweep_mailboxes`` and
W017 (:mod:`sqs_broker.findings.live`) read :func:`survey`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from django.db import DatabaseError
from django.utils import timezone

from sqs_broker import sqs
from sqs_broker.conf import app_settings
from sqs_broker.models import WorkerHeartbeat
from sqs_broker.sqs import pidbox
from sqs_broker.telemetry.read import worker_state
from sqs_broker.topology import Topology, entity_name

#: What the survey says of a mailbox's worker: a heartbeat's state, or no heartbeat.
Owner = Literal["alive", "stalled", "lost", "stopped", "absent", "unknown"]


@dataclass(frozen=True)
class Mailbox:
    """One remote-control queue of the app, and whether it is left over."""

    name: str
    kind: Literal["pidbox", "reply"]
    #: The worker whose mailbox it is (``None``: no heartbeat names it, or a reply queue).
    hostname: str | None
    owner: Owner
    #: Seconds the worker has been lost or stopped, or the queue's age; ``None``: not known.
    age: float | None
    leftover: bool
    reason: str


@dataclass
class Survey:
    """The app's remote-control queues and the topic's subscriptions whose queue is gone."""

    mailboxes: list[Mailbox] = field(default_factory=list)
    #: Subscriptions of the app's pidbox topic delivering to a mailbox that no longer exists.
    orphans: list[pidbox.Subscription] = field(default_factory=list)
    #: The pidbox topic's ARN (``None``: no topic, or not asked).
    topic: str | None = None
    #: What limits the survey (no heartbeat table, predefined queues).
    notes: list[str] = field(default_factory=list)
    #: Calls that failed (the topic's): that part was not judged.
    errors: list[str] = field(default_factory=list)

    @property
    def leftovers(self) -> list[Mailbox]:
        """The mailboxes and reply queues to delete."""
        return [m for m in self.mailboxes if m.leftover]


def _heartbeats(topo: Topology, now: float) -> dict[str, tuple[str, Owner, float]] | None:
    """Mailbox name -> (hostname, state, seconds lost or stopped); ``None`` without a table."""
    moment = timezone.now()
    found: dict[str, tuple[str, Owner, float]] = {}
    try:
        beats = list(WorkerHeartbeat.objects.all())
    except DatabaseError:
        return None
    for beat in beats:
        state = worker_state(beat.last_seen, beat.stopped_at, beat.interval, moment, beat.progress)
        since = beat.stopped_at if state == "stopped" and beat.stopped_at else beat.last_seen
        found[topo.pidbox_queue(beat.hostname)] = (
            beat.hostname,
            cast("Owner", state),
            max(0.0, now - since.timestamp()),
        )
    return found


def survey(
    topo: Topology,
    *,
    pidbox_after: float | None = None,
    reply_after: float | None = None,
    max_age: float | None = 0,
    subscriptions: bool = True,
    now: float | None = None,
) -> Survey:
    """The app's mailboxes and reply queues, each judged; see the module's docstring.

    ``pidbox_after``/``reply_after`` default to the settings; ``max_age`` is how
    old a reused queue listing may be (0: list now). Raises what SQS raised
    when the listing fails; a failed topic call is a note, not an error.
    """
    result = Survey()
    now = time.time() if now is None else now
    pidbox_after = app_settings.PIDBOX_SWEEP_AFTER if pidbox_after is None else pidbox_after
    if reply_after is None:
        reply_after = app_settings.REPLY_SWEEP_AFTER
    beats = _heartbeats(topo, now)
    if beats is None:
        result.notes.append("no heartbeat table (migrate): workers' states are unknown")
    if topo.predefined:
        # The app lists no queue: the heartbeats' mailboxes are asked for by name.
        result.notes.append(
            "predefined queues: only the mailboxes of workers the heartbeats name are judged"
        )
        names = [n for n in sorted(beats or {}) if pidbox.mailbox_state(n, topo).exists]
    else:
        names = sqs.list_queue_names(entity_name(topo.prefix), topo, max_age)
    for name in sorted(names):
        kind = topo.kind(name)
        if kind == "pidbox":
            mailbox = _judge_pidbox(name, topo, beats, pidbox_after, now)
        elif kind == "reply" and topo.prefix and not topo.predefined:
            mailbox = _judge_reply(name, topo, reply_after, now)
        else:
            continue
        if mailbox is not None:
            result.mailboxes.append(mailbox)
    if subscriptions:
        _find_orphans(topo, result, set(names), beats or {})
    return result


def _judge_pidbox(
    name: str,
    topo: Topology,
    beats: Mapping[str, tuple[str, Owner, float]] | None,
    after: float,
    now: float,
) -> Mailbox | None:
    known = (beats or {}).get(name)
    if known is not None:
        hostname, owner, since = known
        if owner in ("lost", "stopped"):
            old = since > after
            reason = f"worker {owner} for {since:.0f} s" + (
                "" if old else f" (swept after {after:.0f} s)"
            )
            return Mailbox(name, "pidbox", hostname, owner, since, old, reason)
        return Mailbox(name, "pidbox", hostname, owner, since, False, f"worker {owner}")
    if not topo.prefix or topo.predefined:
        return None  # with no prefix, a mailbox no heartbeat names may be another app's
    if beats is None or not app_settings.TELEMETRY:
        reason = "no heartbeat to judge by (telemetry off)"
        return Mailbox(name, "pidbox", None, "unknown", None, False, reason)
    state = pidbox.mailbox_state(name, topo)
    if not state.exists:
        return None
    age = now - state.created if state.created is not None else None
    old = age is not None and age > after
    reason = "no worker's heartbeat names it" + (
        f"; created {age:.0f} s ago" if age is not None else "; its age is unknown"
    )
    return Mailbox(name, "pidbox", None, "absent", age, old, reason)


def _judge_reply(name: str, topo: Topology, after: float | None, now: float) -> Mailbox | None:
    if after is None:
        reason = "reply queues are swept only when asked (--reply-age)"
        return Mailbox(name, "reply", None, "unknown", None, False, reason)
    state = pidbox.mailbox_state(name, topo)
    if not state.exists:
        return None
    age = now - state.created if state.created is not None else None
    idle = age is not None and age > after and state.messages == 0
    if idle:
        reason = f"empty, created {age:.0f} s ago"
    elif state.messages:
        reason = f"holds {state.messages} replies"
    else:
        reason = "recent" if age is not None else "its age is unknown"
    return Mailbox(name, "reply", None, "unknown", age, idle, reason)


def _find_orphans(
    topo: Topology,
    result: Survey,
    listed: set[str],
    beats: Mapping[str, tuple[str, Owner, float]],
) -> None:
    """Subscriptions of the app's topic to a mailbox that is gone (checked by name, not listing)."""
    try:
        result.topic = pidbox.find_topic(topo.pidbox_topic, topo)
        if result.topic is None:
            return
        for sub in pidbox.subscriptions(result.topic, topo):
            ours = topo.kind(sub.queue) == "pidbox" and (topo.prefix or sub.queue in beats)
            if not ours or sub.queue in listed:
                continue
            # A listing may miss a queue just created: ask for it by name before judging.
            if not pidbox.mailbox_state(sub.queue, topo).exists:
                result.orphans.append(sub)
    except Exception as exc:
        result.errors.append(
            f"the pidbox topic {topo.pidbox_topic} could not be read: {sqs.error_text(exc)[0]}"
        )


@dataclass
class SweepResult:
    """What one sweep deleted (or, in a dry run, would delete) and what failed."""

    survey: Survey
    dry_run: bool
    deleted: list[str] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def sweep(
    topo: Topology,
    *,
    found: Survey | None = None,
    dry_run: bool = False,
    pidbox_after: float | None = None,
    reply_after: float | None = None,
    now: float | None = None,
) -> SweepResult:
    """Delete the leftovers of ``found`` (else a new :func:`survey`) with their subscriptions,
    and the orphan subscriptions."""
    if found is None:
        found = survey(topo, pidbox_after=pidbox_after, reply_after=reply_after, now=now)
    result = SweepResult(found, dry_run, errors=list(found.errors))
    by_queue: dict[str, list[str]] = {}
    if found.topic is not None:
        try:
            for sub in pidbox.subscriptions(found.topic, topo):
                by_queue.setdefault(sub.queue, []).append(sub.arn)
        except Exception as exc:
            result.errors.append(f"listing {topo.pidbox_topic}: {sqs.error_text(exc)[0]}")
    doomed: list[tuple[str | None, list[str]]] = [
        (m.name, by_queue.get(m.name, [])) for m in found.leftovers
    ]
    doomed += [(None, [sub.arn]) for sub in found.orphans]
    for queue, arns in doomed:
        if dry_run:
            result.deleted += [queue] if queue else []
            result.unsubscribed += arns
            continue
        try:
            if queue is not None:
                pidbox.delete_queue(queue, topo)
                result.deleted.append(queue)
            for arn in arns:
                pidbox.unsubscribe(arn, topo)
                result.unsubscribed.append(arn)
        except Exception as exc:
            result.errors.append(f"{queue or arns[0]}: {sqs.error_text(exc)[0]}")
    return result
