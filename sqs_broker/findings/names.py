"""Findings about queue names and the runtime: W015, E015, I004, E016."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from sqs_broker import limits
from sqs_broker.findings.base import Finding, make, register

if TYPE_CHECKING:
    from sqs_broker.topology import Topology

_SQS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@register("offline")
def names(topo: Topology) -> list[Finding]:
    """W015, E015, I004: what each Celery queue is really called in SQS."""
    prefix = topo.prefix
    found: list[Finding] = []
    for celery_name, name in topo.declared.items():
        raw = prefix + celery_name
        stem = name.removesuffix(".fifo")
        if len(name) > limits.MAX_QUEUE_NAME or not _SQS_NAME.match(stem):
            found.append(
                make(
                    "sqs_broker.E015",
                    _(
                        "Celery queue %(celery)r becomes SQS queue %(name)r (%(length)s "
                        "characters), which SQS rejects: at most 80 characters, letters, "
                        "digits, '-' and '_' only (plus .fifo)."
                    )
                    % {"celery": celery_name, "name": name, "length": len(name)},
                    _("Shorten or rename the queue or SQS_QUEUE_NAME_PREFIX."),
                    queue=name,
                )
            )
        elif name != raw:
            found.append(
                make(
                    "sqs_broker.W015",
                    _(
                        "Celery queue %(raw)r (queue_name_prefix + name) is really called "
                        "%(name)r in SQS: kombu rewrites '.' to '-' and other punctuation to "
                        "'_'. IAM policies, alarms and predefined_queues must use %(name)r."
                    )
                    % {"raw": raw, "name": name},
                    _("Use only letters, digits, '-' and '_' in queue names and the prefix."),
                    queue=name,
                )
            )
        if name.endswith(".fifo"):
            found.append(
                make(
                    "sqs_broker.I004",
                    _(
                        "FIFO queue: tasks published without a MessageGroupId all share the "
                        "group 'default', so they run one at a time, in order, on one worker."
                    ),
                    _(
                        "Pass MessageGroupId (and MessageDeduplicationId) to apply_async for "
                        "tasks that may run in parallel."
                    ),
                    queue=name,
                )
            )
    return found


@register("offline")
def pycurl_missing(topo: Topology | None = None) -> Finding | None:
    """E016: kombu's asynchronous SQS client needs pycurl."""
    try:
        import pycurl  # noqa: F401
    except ImportError as exc:
        return make(
            "sqs_broker.E016",
            _(
                "pycurl cannot be imported (%(error)s): kombu's asynchronous SQS poller needs "
                "it, so celery worker fails at start."
            )
            % {"error": exc},
            _(
                "pip install pycurl (it compiles: apt-get install libcurl4-openssl-dev "
                "libssl-dev), or reinstall celery[sqs]."
            ),
        )
    return None
