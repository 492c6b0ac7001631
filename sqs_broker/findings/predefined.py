"""Findings about predefined queues and backoff policies: E008-E013, E023, W008-W011."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

from sqs_broker import limits
from sqs_broker.findings.base import Finding, make, register
from sqs_broker.findings.visibility import registered_tasks

if TYPE_CHECKING:
    from sqs_broker.topology import Topology

_AWS_HOST = re.compile(
    r"^(?:sqs\.(?P<r1>[a-z0-9-]+)|(?P<r2>[a-z0-9-]+)\.queue|queue)\.amazonaws\.com(?:\.cn)?$"
)


def _aws_url_parts(url: str) -> tuple[str | None, str] | None:
    """``(region, account)`` of an amazonaws.com queue URL; ``None`` for other hosts."""
    parts = urlsplit(url)
    match = _AWS_HOST.match(parts.hostname or "")
    if not match:
        return None
    region = match["r1"] or match["r2"] or "us-east-1"
    segments = [s for s in parts.path.split("/") if s]
    return region, segments[0] if segments else ""


@register("offline")
def predefined(topo: Topology) -> list[Finding]:
    """E008, W008, E009, E010, E011, E012: predefined queues against the app's queues."""
    queues = topo.predefined
    if not queues:
        return []
    found: list[Finding] = []
    declared = topo.declared
    for celery_name, name in declared.items():
        if name not in queues:
            found.append(
                make(
                    "sqs_broker.E008",
                    _(
                        "Celery queue %(celery)r is SQS queue %(name)r (queue_name_prefix + "
                        "sanitised name), which predefined_queues lacks: the worker stops "
                        "with UndefinedQueueException."
                    )
                    % {"celery": celery_name, "name": name},
                    _("Add %(name)r to SQS_PREDEFINED_QUEUES, or stop routing tasks to %(celery)r.")
                    % {"name": name, "celery": celery_name},
                    queue=name,
                )
            )
    canonical = set(declared.values())
    region = topo.region
    for name, spec in queues.items():
        if not isinstance(spec, Mapping):
            continue
        if name not in canonical:
            found.append(
                make(
                    "sqs_broker.W008",
                    _(
                        "Predefined queue %(name)r is not the SQS name of any Celery queue "
                        "the app declares (%(declared)s): kombu looks queues up by "
                        "queue_name_prefix + sanitised Celery name, never by this key."
                    )
                    % {"name": name, "declared": ", ".join(sorted(canonical)) or "-"},
                    _(
                        "Key the queue by the SQS name of its Celery queue, or declare a "
                        "Celery queue (task_queues or task_routes) that maps to it."
                    ),
                    queue=name,
                )
            )
        if spec.get("backoff_policy") and topo.canonical_name(name) != name:
            found.append(
                make(
                    "sqs_broker.E009",
                    _(
                        "The backoff policy of %(name)r never applies: kombu finds the queue "
                        "under its SQS name (prefix + sanitised name) but looks the policy "
                        "up under the raw routing key, and a Celery queue called %(name)r "
                        "would be SQS queue %(real)r. Failing tasks are not retried on the "
                        "policy's schedule."
                    )
                    % {"name": name, "real": topo.canonical_name(name)},
                    _(
                        "Drop queue_name_prefix and use a queue name made of letters, digits, "
                        "'-' and '_' only, so the routing key and the SQS name are the same."
                    ),
                    queue=name,
                )
            )
        url = spec.get("url")
        if not isinstance(url, str):
            continue
        if url.rstrip("/").endswith(".fifo") != name.endswith(".fifo"):
            found.append(
                make(
                    "sqs_broker.E010",
                    _(
                        "Predefined queue %(name)r and its URL disagree on FIFO: kombu "
                        "refuses to start (InvalidQueueException)."
                    )
                    % {"name": name},
                    _(
                        "A FIFO queue's key and URL both end with .fifo, a standard "
                        "queue's neither."
                    ),
                    queue=name,
                )
            )
        aws = _aws_url_parts(url)
        if aws is None:
            continue
        url_region, account = aws
        signing = spec.get("region") or region
        if url_region != signing:
            found.append(
                make(
                    "sqs_broker.E011",
                    _(
                        "Predefined queue %(name)r is in %(url_region)s (its URL), but its "
                        "client is made for %(region)s: calls go to the wrong region."
                    )
                    % {"name": name, "url_region": url_region, "region": signing},
                    _("Set the queue's 'region' (or SQS_REGION) to %(url_region)s.")
                    % {"url_region": url_region},
                    queue=name,
                )
            )
        if not re.fullmatch(r"\d{12}", account):
            found.append(
                make(
                    "sqs_broker.E012",
                    _(
                        "Predefined queue %(name)r has account id %(account)r in its URL: AWS "
                        "account ids have 12 digits, so the queue cannot be found."
                    )
                    % {"name": name, "account": account},
                    _(
                        "Copy the queue URL from the SQS console or `aws sqs get-queue-url` "
                        "(https://sqs.REGION.amazonaws.com/123456789012/NAME)."
                    ),
                    queue=name,
                )
            )
    return found


def _rejects_on_failure(task: Any) -> tuple[bool, str]:
    """Whether a failure of ``task`` rejects its message (so kombu applies backoff)."""
    if not getattr(task, "acks_late", False):
        return False, _("acks_late is off")
    acks_on_failure = getattr(task, "acks_on_failure", None)
    if acks_on_failure is None:
        acks_on_failure = getattr(task, "acks_on_failure_or_timeout", True)
    if acks_on_failure:
        return False, _("acks_on_failure_or_timeout is on")
    return True, ""


@register("offline")
def backoff(topo: Topology) -> list[Finding]:
    """W009, E013, W010, W011: each predefined queue's backoff policy and tasks."""
    found: list[Finding] = []
    tasks: dict[str, Any] | None = None
    for name, spec in topo.predefined.items():
        if not isinstance(spec, Mapping) or not spec.get("backoff_policy"):
            continue
        policy = spec["backoff_policy"]
        not_int = [k for k in policy if isinstance(k, bool) or not isinstance(k, int)]
        if not_int:
            found.append(
                make(
                    "sqs_broker.E023",
                    _(
                        "The backoff policy of %(name)r has keys that are not integers "
                        "(%(keys)s): kombu looks the policy up by the integer receive count, so "
                        "it never applies."
                    )
                    % {"name": name, "keys": ", ".join(repr(k) for k in not_int)},
                    _(
                        "Write the keys as integers ({1: 10, 2: 20}); SQS_PREDEFINED_QUEUES "
                        "converts its JSON keys for you."
                    ),
                    queue=name,
                )
            )
        keys = sorted(int(k) for k in policy if str(k).strip().lstrip("-").isdigit())
        if keys != list(range(1, len(policy) + 1)):
            found.append(
                make(
                    "sqs_broker.W009",
                    _(
                        "The backoff policy of %(name)r has keys %(keys)s, not 1..%(n)s: "
                        "receive counts without a key get the queue's own visibility timeout."
                    )
                    % {"name": name, "keys": sorted(map(str, policy)), "n": len(policy)},
                    _("Number the attempts 1, 2, 3... with no gap."),
                    queue=name,
                )
            )
        wrong = [
            k
            for k, v in policy.items()
            if isinstance(v, bool)
            or not isinstance(v, int)
            or not 0 <= v <= limits.MAX_VISIBILITY_TIMEOUT
        ]
        if wrong:
            found.append(
                make(
                    "sqs_broker.E013",
                    _(
                        "The backoff policy of %(name)r has delays outside 0-43200 s at "
                        "%(keys)s: ChangeMessageVisibility rejects them and the retry is not "
                        "delayed."
                    )
                    % {"name": name, "keys": sorted(map(str, wrong))},
                    _("Use whole seconds from 0 to 43200 (12 hours)."),
                    queue=name,
                )
            )
        if tasks is None:
            tasks = registered_tasks(topo.app)
        for task_name in spec.get("backoff_tasks") or ():
            task = tasks.get(task_name)
            if task is None:
                found.append(
                    make(
                        "sqs_broker.W010",
                        _(
                            "backoff_tasks of %(name)r lists %(task)r, which is not a task "
                            "registered in the Celery app: the policy never applies to it."
                        )
                        % {"name": name, "task": task_name},
                        _("Use the task's full registered name, e.g. 'billing.tasks.invoice'."),
                        queue=name,
                    )
                )
                continue
            rejects, reason = _rejects_on_failure(task)
            if not rejects:
                found.append(
                    make(
                        "sqs_broker.W011",
                        _(
                            "The backoff policy of %(name)r can never apply to %(task)r: "
                            "%(reason)s, so a failure acknowledges the message, and kombu "
                            "applies the policy only to rejected messages."
                        )
                        % {"name": name, "task": task_name, "reason": reason},
                        _(
                            "Declare the task with acks_late=True and "
                            "acks_on_failure_or_timeout=False."
                        ),
                        queue=name,
                    )
                )
    return found
