"""Findings on remote control's SNS topic: E040 (SNS calls denied), W040 (who may publish).

Only with remote control on (:attr:`~sqs_broker.topology.Topology.remote_control`):
workers then create and publish to the app's pidbox topic and subscribe their
mailboxes to it. The check reads (``sns:ListTopics``, ``sns:GetTopicAttributes``)
and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from django.utils.translation import gettext as _

from sqs_broker import sqs
from sqs_broker.findings.base import Finding, make, register
from sqs_broker.findings.failures import call_failed
from sqs_broker.findings.live import LivePass
from sqs_broker.sqs import pidbox
from sqs_broker.topology import Topology

#: What remote control on SQS needs of SNS and SQS (docs/remote-control.md lists them).
SNS_ACTIONS = (
    "sns:CreateTopic",
    "sns:Publish",
    "sns:Subscribe",
    "sns:Unsubscribe",
    "sns:ListSubscriptionsByTopic",
    "sns:GetTopicAttributes",
    "sns:ListTopics",
)
#: The SNS actions that put a message on the topic: every worker's mailbox receives it.
PUBLISHING = frozenset({"sns:publish", "sns:*", "*"})


@register("account")
def pidbox_topic(live: LivePass) -> list[Finding]:
    """E040 when SNS refuses the pidbox topic's calls; W040 when its policy lets others publish."""
    topo = live.topo
    if not topo.remote_control or topo.predefined:
        return []
    action = "sns:ListTopics"
    try:
        arn = pidbox.find_topic(topo.pidbox_topic, topo)
        if arn is None:
            return []  # the first worker creates it; nothing to judge yet
        action = "sns:GetTopicAttributes"
        attributes = pidbox.topic_attributes(arn, topo)
    except Exception as exc:
        if sqs.failure_kind(exc) == "denied":
            return [_denied(topo, action, sqs.readable_error(sqs.error_text(exc)[0])[0])]
        return [call_failed(exc, action)]
    account = attributes.get("Owner") or arn.split(":")[4]
    outsiders = sorted(set(open_publishers(attributes.get("Policy", ""), account)))
    if not outsiders:
        return []
    return [
        make(
            "sqs_broker.W040",
            _(
                "The policy of SNS topic %(topic)s lets %(who)s publish to it: every message "
                "published there reaches every worker's mailbox as a remote-control command "
                "(shutdown, revoke, pool changes)."
            )
            % {"topic": topo.pidbox_topic, "who": ", ".join(outsiders)},
            _(
                "Remove those statements, or restrict them with a Condition (aws:SourceOwner "
                "or aws:SourceAccount %(account)s): aws sns set-topic-attributes --topic-arn "
                "%(arn)s --attribute-name Policy --attribute-value file://policy.json"
            )
            % {"account": account, "arn": arn},
        )
    ]


def _denied(topo: Topology, action: str, error: str) -> Finding:
    return make(
        "sqs_broker.E040",
        _(
            "Remote control is on, but SNS refused %(action)s on the pidbox topic %(topic)s "
            "(%(error)s): workers cannot create, publish to or subscribe to it, so "
            "celery inspect and control get no answer."
        )
        % {"action": action, "topic": topo.pidbox_topic, "error": error},
        _("Allow %(actions)s on arn:aws:sns:%(region)s:ACCOUNT:%(topic)s.")
        % {"actions": ", ".join(SNS_ACTIONS), "region": topo.region, "topic": topo.pidbox_topic},
    )


def open_publishers(policy: str, account: str) -> Iterator[str]:
    """Who, besides ``account``, a topic policy lets publish: ``*`` without a condition, or
    another account (its id, or its principal's ARN)."""
    try:
        document = json.loads(policy) if policy else {}
    except ValueError:
        return
    statements = document.get("Statement", []) if isinstance(document, Mapping) else []
    if isinstance(statements, Mapping):
        statements = [statements]
    for statement in statements:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        if not {a.lower() for a in _strings(statement.get("Action"))} & PUBLISHING:
            continue
        for principal in _principals(statement.get("Principal")):
            if principal == "*":
                if not statement.get("Condition"):
                    yield "*"
            elif _account_of(principal) not in (account, None):
                yield principal


def _account_of(principal: str) -> str | None:
    """The account of an AWS principal: an account id, or the one in its ARN."""
    if principal.isdigit():
        return principal
    if principal.startswith("arn:"):
        parts = principal.split(":")
        return parts[4] if len(parts) > 4 else None
    return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _principals(value: Any) -> list[str]:
    """The AWS principals of a statement (``"*"`` for everyone); services are left out."""
    if value == "*":
        return ["*"]
    if isinstance(value, Mapping):
        return _strings(value.get("AWS"))
    return []
