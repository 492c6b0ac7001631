"""Findings on message sizes and large messages offloaded to S3: W021, W022, E025, W023, W024, W025.

W021 judges each queue's ``MaximumMessageSize``; W022 is offline (a bucket
with a transport that cannot read pointers); the rest judge the bucket as
:func:`sqs_broker.payloads.bucket.bucket_state` found it, once per online pass.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from sqs_broker import limits, sqs
from sqs_broker.conf import app_settings
from sqs_broker.findings.base import Finding, make, register
from sqs_broker.findings.failures import failure
from sqs_broker.findings.live import LivePass
from sqs_broker.payloads.bucket import bucket_state
from sqs_broker.topology import Topology

#: The transport that resolves pointers (sqs_broker.settings.TRANSPORTS["sqs_broker"]).
OUR_TRANSPORT = "sqs_broker.transport:Transport"


@register("queue")
def message_size_below_maximum(live: LivePass, state: sqs.QueueState) -> Finding | None:
    """W021: a queue accepts less than SQS's 1 MiB per message."""
    size = state.int("MaximumMessageSize") if state.error is None else None
    if size is None or size >= limits.MAX_MESSAGE_SIZE or state.ref.source == "prefix":
        return None
    bucket = app_settings.LARGE_PAYLOAD_BUCKET
    then = (
        _("they are stored in S3 bucket %(bucket)s above it") % {"bucket": bucket}
        if bucket
        else _("they are refused at publish (MessageTooLarge)")
    )
    return make(
        "sqs_broker.W021",
        _(
            "Queue %(name)r accepts messages of at most %(size)s bytes (MaximumMessageSize), "
            "less than SQS's %(max)s: tasks with larger arguments do not fit, and %(then)s."
        )
        % {
            "name": state.ref.name,
            "size": f"{size:,}",
            "max": f"{limits.MAX_MESSAGE_SIZE:,}",
            "then": then,
        },  # fmt: skip
        _(
            "aws sqs set-queue-attributes --queue-url %(url)s --attributes "
            "MaximumMessageSize=%(max)s"
        )
        % {"url": state.url, "max": limits.MAX_MESSAGE_SIZE},
        queue=state.ref.name,
    )


@register("offline")
def bucket_without_our_transport(topo: Topology) -> Finding | None:
    """W022: a bucket is set but the workers' transport cannot read pointers."""
    if app_settings.LARGE_PAYLOAD_BUCKET is None:
        return None
    transport = topo.transport
    if transport == OUR_TRANSPORT:
        return None
    return make(
        "sqs_broker.W022",
        _(
            "SQS_BROKER_LARGE_PAYLOAD_BUCKET is set but the broker's transport is %(transport)s: "
            "only sqs_broker's transport reads a message stored in S3, so a worker fails to "
            "decode every offloaded task."
        )
        % {"transport": transport or "kombu's"},
        _("Unset SQS_TRANSPORT (or set it to sqs_broker) for the workers."),
    )


@register("account")
def bucket_findings(live: LivePass) -> list[Finding]:
    """E025 (or E017/E018/E019), W023, W024, W025: the large-payload bucket, probed once."""
    try:
        state = bucket_state(live.topo)
    except Exception as exc:  # the settings themselves: reported, not raised
        return [make("sqs_broker.E025", str(exc), _("Fix the setting named above."))]
    if state is None:
        return []
    if state.error is not None:
        code = state.error_code or ""
        if code in ("404", "NoSuchBucket"):
            return [
                make(
                    "sqs_broker.E025",
                    _("The large-payload bucket %(bucket)s does not exist.")
                    % {"bucket": state.bucket},
                    _(
                        "Create it (in the queues' region, with a lifecycle rule for "
                        "%(prefix)s), or fix SQS_LARGE_PAYLOAD_BUCKET."
                    )
                    % {"prefix": state.prefix or "the bucket"},
                )
            ]
        kind = sqs.failure_kind("AccessDenied" if code in ("403", "AccessDenied") else code)
        if code == "Unreachable":
            kind = "unreachable"
        action = state.failed_action or "s3:ListBucket"
        text = _("%(error)s (bucket %(bucket)s)") % {"error": state.error, "bucket": state.bucket}
        failed = failure(kind, text, action, None)
        if failed.id == "sqs_broker.W018":
            return [
                make(
                    "sqs_broker.E025",
                    _("%(action)s on the large-payload bucket failed: %(error)s")
                    % {"action": action, "error": text},
                    _("Offloaded task messages cannot be stored or read until it works."),
                )
            ]
        return [failed]
    found: list[Finding] = []
    region = live.topo.region
    if state.region and state.region != region:
        found.append(
            make(
                "sqs_broker.W023",
                _(
                    "The large-payload bucket %(bucket)s is in %(bucket_region)s, the queues in "
                    "%(region)s: every offloaded task pays cross-region latency and transfer."
                )
                % {"bucket": state.bucket, "bucket_region": state.region, "region": region},
                _("Use a bucket in %(region)s.") % {"region": region},
            )
        )
    if state.lifecycle_error is None and state.expiration_days is None:
        found.append(
            make(
                "sqs_broker.W024",
                _(
                    "The large-payload bucket %(bucket)s has no lifecycle rule expiring "
                    "%(prefix)s: objects whose messages were dead-lettered, purged or whose "
                    "worker was killed stay until swept."
                )
                % {"bucket": state.bucket, "prefix": state.prefix or "its objects"},
                _(
                    "Add a rule expiring the prefix after 15 days (docs/publishing.md), or run "
                    "manage.py sqs_payloads sweep (or its beat task) regularly."
                ),
            )
        )
    if state.leftovers:
        found.append(
            make(
                "sqs_broker.W025",
                _(
                    "%(count)s stored message bodies under %(prefix)s are older than 28 days, "
                    "longer than any message can point to them: left behind."
                )
                % {"count": state.leftovers, "prefix": state.prefix or state.bucket},
                _("Run manage.py sqs_payloads sweep, and add the lifecycle rule (W024)."),
            )
        )
    return found
