"""Findings on the live queues: I006, E021, W016, I007, I008, E022, W012, W017, W018.

Each queue check judges one :class:`~sqs_broker.sqs.QueueState` of a
:class:`LivePass`; :func:`leftovers` looks at the account's listing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from sqs_broker import limits, sqs
from sqs_broker.findings.base import Finding, make, register, seconds
from sqs_broker.findings.failures import call_failed, failure
from sqs_broker.findings.visibility import timeout_too_short
from sqs_broker.topology import Topology, entity_name


@dataclass(frozen=True)
class LivePass:
    """One online pass: the configuration, the queues SQS answered about, what exists."""

    topo: Topology
    states: list[sqs.QueueState]
    #: (account, name) of queues known to exist: a dead-letter queue among them is not asked.
    existing: Collection[tuple[str, str]] = ()
    #: How old a reused queue listing may be (``None``: ``SQS_BROKER_CACHE_TTL``).
    max_age: float | None = None


@register("queue")
def queue_findings(live: LivePass, state: sqs.QueueState) -> list[Finding]:
    """I006, E021, W016, E006, W004, I007, I008, E022, W012 and call failures, per queue.

    The pass's ``existing`` holds the (account, name) of queues known to
    exist, whose existence as a dead-letter queue need not be asked again.
    """
    ref = state.ref
    topo = live.topo
    options = topo.options
    if state.error is not None:
        kind = sqs.failure_kind(state.error_code, state.error)
        if kind == "missing":
            if ref.source == "predefined":
                return [
                    make(
                        "sqs_broker.E021",
                        _("Predefined queue %(name)r does not exist: kombu never creates it.")
                        % {"name": ref.name},
                        _(
                            "Create it in AWS (with its VisibilityTimeout and RedrivePolicy), "
                            "or fix its URL in SQS_PREDEFINED_QUEUES."
                        ),
                        queue=ref.name,
                    )
                ]
            return [
                make(
                    "sqs_broker.I006",
                    _(
                        "Queue %(name)r does not exist yet: kombu creates it on first use "
                        "with VisibilityTimeout %(timeout)s and ReceiveMessageWaitTimeSeconds "
                        "%(wait)s."
                    )
                    % {
                        "name": ref.name,
                        "timeout": options.get(
                            "visibility_timeout", limits.KOMBU_VISIBILITY_TIMEOUT
                        ),
                        "wait": (options.get("sqs-creation-attributes") or {}).get(
                            "ReceiveMessageWaitTimeSeconds", 0
                        ),
                    },
                    _(
                        "Nothing to do, unless the credentials may not sqs:CreateQueue: then "
                        "create it beforehand."
                    ),
                    queue=ref.name,
                )
            ]
        operation = state.error_operation or "GetQueueAttributes"
        service = "sts" if operation in ("AssumeRole", "GetCallerIdentity") else "sqs"
        action = f"{service}:{operation}"
        return [failure(kind, sqs.readable_error(state.error)[0], action, ref.name)]

    found: list[Finding] = []
    redrive = sqs.redrive_policy(state)
    if ref.source == "prefix":
        # Found by listing, not used by a declared queue: only its dead-letter queue matters.
        return _dead_letter(live, state, redrive) if redrive else []
    actual = state.int("VisibilityTimeout")
    configured = topo.visibility_timeout
    if actual is not None:
        if ref.source != "predefined" and configured is not None and actual != configured:
            found.append(
                make(
                    "sqs_broker.W016",
                    _(
                        "VisibilityTimeout is %(actual)s s but visibility_timeout is "
                        "%(configured)s s: kombu sets it only when it creates a queue, so "
                        "%(actual)s s rules."
                    )
                    % {"actual": actual, "configured": seconds(configured)},
                    _(
                        "aws sqs set-queue-attributes --queue-url %(url)s --attributes "
                        "VisibilityTimeout=%(configured)s"
                    )
                    % {"url": state.url, "configured": seconds(configured)},
                    queue=ref.name,
                )
            )
        if ref.source == "predefined" or actual != configured:
            found += timeout_too_short(
                topo.app, actual, queue=ref.name, lease=topo.visibility_lease
            )
    wait = options.get("wait_time_seconds", limits.KOMBU_WAIT_TIME_SECONDS)
    if isinstance(wait, int) and wait > 0 and state.int("ReceiveMessageWaitTimeSeconds") == 0:
        found.append(
            make(
                "sqs_broker.I007",
                _(
                    "ReceiveMessageWaitTimeSeconds is 0 (SQS's default for new queues): kombu "
                    "asks for %(wait)s s on every receive so the workers long-poll anyway, "
                    "but any other consumer of this queue short-polls."
                )
                % {"wait": wait},
                _(
                    "aws sqs set-queue-attributes --queue-url %(url)s --attributes "
                    "ReceiveMessageWaitTimeSeconds=%(wait)s"
                )
                % {"url": state.url, "wait": wait},
                queue=ref.name,
            )
        )
    if state.attributes.get("ContentBasedDeduplication") == "true":
        found.append(
            make(
                "sqs_broker.I008",
                _(
                    "ContentBasedDeduplication is on, but kombu sends every Celery message "
                    "with a random MessageDeduplicationId, so identical tasks are not "
                    "deduplicated."
                ),
                _("Pass MessageDeduplicationId to apply_async where duplicates must collapse."),
                queue=ref.name,
            )
        )
    if redrive:
        found += _dead_letter(live, state, redrive)
    return found


def _dead_letter(
    live: LivePass, state: sqs.QueueState, redrive: Mapping[str, Any]
) -> list[Finding]:
    ref = state.ref
    found: list[Finding] = []
    dlq, owner = redrive["name"], redrive["account"]
    if owner is not None and (owner, dlq) not in live.existing:
        try:
            exists = sqs.queue_exists(
                dlq, live.topo, owner, ref.name if ref.source == "predefined" else None
            )
        except Exception as exc:
            found.append(call_failed(exc, "sqs:GetQueueUrl", ref.name))
        else:
            if not exists:
                found.append(
                    make(
                        "sqs_broker.E022",
                        _(
                            "The RedrivePolicy sends messages to dead-letter queue %(dlq)r, "
                            "which does not exist: kombu leaves rejected messages in the queue "
                            "for a move that has nowhere to go, so they come back until they "
                            "expire."
                        )
                        % {"dlq": dlq},
                        _("Create %(dlq)r, or point the RedrivePolicy at an existing queue.")
                        % {"dlq": dlq},
                        queue=ref.name,
                    )
                )
    spec = live.topo.predefined.get(ref.name) or {}
    policy = spec.get("backoff_policy") if isinstance(spec, Mapping) else None
    max_receive = redrive["max_receive_count"]
    if policy:
        last = max(int(k) for k in policy)
        if last >= max_receive:
            found.append(
                make(
                    "sqs_broker.W012",
                    _(
                        "The backoff policy plans attempts up to %(attempts)s, but the "
                        "dead-letter queue takes the message after %(max)s receives: policy "
                        "keys from %(max)s on never apply."
                    )
                    % {"attempts": last + 1, "max": max_receive},
                    _("Set maxReceiveCount to at least %(needed)s, or shorten the policy.")
                    % {"needed": last + 1},
                    queue=ref.name,
                )
            )
    return found


@register("account")
def leftovers(live: LivePass) -> list[Finding]:
    """W017: remote-control and event queues left under the prefix.

    The listing is the one :func:`sqs.inventory` discovers queues with, when
    younger than the pass's ``max_age``, so the dashboard lists the queues once.
    ``celeryev`` queues are always leftovers (SQS serves no topic exchange, so
    events stay off). With remote control on, a live worker's mailbox is
    expected: only those :mod:`sqs_broker.mailboxes` judges left over count.
    """
    topo = live.topo
    if topo.predefined:
        return []
    prefix = entity_name(topo.prefix)
    try:
        names_found = sqs.list_queue_names(prefix, topo, live.max_age)
    except Exception as exc:
        return [call_failed(exc, "sqs:ListQueues")]
    cut = len(prefix)
    events = [n for n in names_found if n[cut:].startswith("celeryev")]
    if topo.remote_control:
        # Imported here: a worker loads the findings (checks.py), not the heartbeats' reader.
        from sqs_broker import mailboxes

        try:
            found = mailboxes.survey(topo, max_age=live.max_age, subscriptions=False)
        except Exception as exc:
            return [call_failed(exc, "sqs:ListQueues")]
        mail = [m.name for m in found.leftovers]
    else:
        mail = [n for n in names_found if topo.kind(n) != "task"]
    left = sorted(events + mail)
    if not left:
        return []
    shown = ", ".join(left[:5]) + (" ..." if len(left) > 5 else "")
    if topo.remote_control:
        message = _(
            "%(count)s leftover remote-control or event queues (%(names)s): mailboxes of "
            "workers lost or stopped for long, idle reply queues, or event queues nobody reads."
        )
        hint = _(
            "manage.py sqs_remote sweep deletes the mailboxes and reply queues (and their SNS "
            "subscriptions); events stay off on SQS (see W006), delete celeryev queues with: "
            "aws sqs delete-queue --queue-url URL."
        )
    else:
        message = _(
            "%(count)s leftover remote-control or event queues (%(names)s): remote control is "
            "off (SQS_BROKER_REMOTE_CONTROL) and SQS does not serve events, so nobody reads them."
        )
        hint = _(
            "Delete them: aws sqs delete-queue --queue-url URL (or turn remote control on, "
            "see docs/remote-control.md, and run manage.py sqs_remote sweep)."
        )
    return [make("sqs_broker.W017", message % {"count": len(left), "names": shown}, hint)]
