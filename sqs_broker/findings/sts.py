"""Findings about STS and identity: E014, W013, W014, W019 offline; I005, I009, E020 online.

The online checks run first in a pass: when the endpoint cannot be reached
or the credentials are rejected, :func:`identity` says so and nothing else
is asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from sqs_broker import limits, sqs
from sqs_broker.findings.base import Finding, make, register, seconds
from sqs_broker.findings.failures import call_failed, failure
from sqs_broker.redact import url_has_credentials

if TYPE_CHECKING:
    from sqs_broker.topology import Topology


@register("offline")
def sts(topo: Topology) -> list[Finding]:
    """E014, W013, W014, W019: the STS role options."""
    options = topo.options
    role = options.get("sts_role_arn")
    if not role:
        return []
    found = []
    ignored = []
    if url_has_credentials(topo.broker_url):
        ignored.append(_("the keys in the broker URL"))
    if topo.endpoint:
        ignored.append(_("the endpoint %(endpoint)s") % {"endpoint": topo.endpoint})
    if ignored:
        found.append(
            make(
                "sqs_broker.W019",
                _(
                    "kombu assumes %(role)s with boto3's default session (environment, "
                    "profile, instance role) at AWS's own STS endpoint: it ignores %(ignored)s."
                )
                % {"role": role, "ignored": _(" and ").join(ignored)},
                _(
                    "Give the workers credentials boto3 finds by itself (AWS_ACCESS_KEY_ID in "
                    "the environment, or an IAM role) that may call sts:AssumeRole on AWS."
                ),
            )
        )
    timeout = options.get("sts_token_timeout", limits.KOMBU_STS_TOKEN_TIMEOUT)
    buffer = options.get("sts_token_buffer_time", 0) or 0
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int)
        or not limits.MIN_STS_TOKEN_TIMEOUT <= timeout <= limits.MAX_STS_TOKEN_TIMEOUT
    ):
        found.append(
            make(
                "sqs_broker.E014",
                _(
                    "sts_token_timeout is %(value)r: AssumeRole accepts 900 to 43200 seconds "
                    "(and no more than the role's maximum session duration)."
                )
                % {"value": timeout},
                _("Set SQS_STS_TOKEN_TIMEOUT to an integer from 900 to 43200."),
            )
        )
    elif isinstance(buffer, int | float) and buffer >= timeout:
        found.append(
            make(
                "sqs_broker.W013",
                _(
                    "sts_token_buffer_time (%(buffer)s s) is not less than sts_token_timeout "
                    "(%(timeout)s s): kombu ignores the buffer and renews only at expiry."
                )
                % {"buffer": seconds(buffer), "timeout": timeout},
                _("Make SQS_STS_TOKEN_BUFFER_TIME smaller than SQS_STS_TOKEN_TIMEOUT."),
            )
        )
    if not options.get("predefined_queues"):
        found.append(
            make(
                "sqs_broker.W014",
                _(
                    "sts_role_arn is set but no queue is predefined: kombu assumes the role "
                    "only for predefined queues, so every call uses the main credentials."
                ),
                _(
                    "Predefine the queues (SQS_PREDEFINED_QUEUES) or drop SQS_STS_ROLE_ARN "
                    "and give the main credentials the access."
                ),
            )
        )
    return found


def _own_keys_everywhere(options: Mapping[str, object]) -> bool:
    """Every predefined queue carries its own keys (and no STS role needs the main ones)."""
    queues = options.get("predefined_queues") or {}
    return bool(
        isinstance(queues, Mapping)
        and queues
        and not options.get("sts_role_arn")
        and all(isinstance(q, Mapping) and q.get("access_key_id") for q in queues.values())
    )


def missing_credentials(topo: Topology) -> Finding | None:
    """E018 before any call: AWS's own endpoint and no credentials where botocore looks.

    The worker's start guard asks this, so that a worker started without keys
    stops at once with the finding ``sqs_check`` gives, instead of kombu
    retrying "Unable to locate credentials" a hundred times. An endpoint URL
    (a local SQS), keys in the broker URL or in every predefined queue, or
    any credentials of botocore's chain (environment, files, container, instance
    role) mean nothing is said here.
    """
    if not topo.is_sqs or topo.endpoint or topo.credentials[0]:
        return None
    if _own_keys_everywhere(topo.options):
        return None
    import botocore.session

    action = "celery worker"
    try:
        found = botocore.session.get_session().get_credentials()
    except Exception as exc:  # partial or unreadable credentials: kombu would fail on them too
        return call_failed(exc, action) if sqs.failure_kind(exc) == "credentials" else None
    if found is not None:
        return None
    return failure("credentials", "Unable to locate credentials", action, None)


@register("access", gate=True)
def identity(topo: Topology) -> list[Finding]:
    """I005, I009, E017, E018, E019: whom the main credentials resolve to."""
    try:
        who = sqs.caller_identity(topo)
    except Exception as exc:  # every failure becomes a finding, never a traceback
        kind = sqs.failure_kind(exc)
        if kind == "credentials" and _own_keys_everywhere(topo.options):
            # Every queue carries its own keys: the main credentials are not needed.
            return []
        if kind == "other" and topo.endpoint:
            text, _code = sqs.error_text(exc)
            return [
                make(
                    "sqs_broker.I009",
                    _("The endpoint does not answer sts:GetCallerIdentity (%(error)s).")
                    % {"error": text},
                    _("Local SQS servers often lack STS; the queue checks still ran."),
                )
            ]
        return [call_failed(exc, "sts:GetCallerIdentity")]
    return [
        make(
            "sqs_broker.I005",
            _("The credentials resolve to %(arn)s (account %(account)s).") % who,
            _("Make sure this is the identity the workers should use."),
        )
    ]


@register("access")
def assume(topo: Topology) -> list[Finding]:
    """E019, E020: the STS role, when configured, can be assumed."""
    role = topo.options.get("sts_role_arn")
    if not role:
        return []
    try:
        sqs.assume_role(topo)
    except Exception as exc:
        kind = sqs.failure_kind(exc)
        if kind in ("unreachable", "credentials", "denied"):
            return [call_failed(exc, f"sts:AssumeRole on {role}")]
        text, _code = sqs.error_text(exc)
        return [
            make(
                "sqs_broker.E020",
                _("AssumeRole of %(role)s fails: %(error)s") % {"role": role, "error": text},
                _(
                    "Check the role ARN, its trust policy, and that sts_token_timeout does "
                    "not exceed the role's maximum session duration (1 hour by default)."
                ),
            )
        ]
    return []
