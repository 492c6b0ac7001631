"""What a failed SQS or STS call means, as a finding: E017, E018, E019 or W018.

Every online check turns an exception into a finding here, never a traceback.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from sqs_broker import sqs
from sqs_broker.findings.base import Finding, make

#: What a failed call means, by :func:`sqs.failure_kind`: id, message, hint.
#: Marked here, translated when a finding is made.
_FAILURES = {
    "unreachable": (
        "sqs_broker.E017",
        gettext_noop("%(action)s could not reach the endpoint: %(error)s"),
        gettext_noop(
            "Check SQS_ENDPOINT_URL / SQS_REGION, the network and any proxy; "
            "SQS_BROKER_CONNECT_TIMEOUT and SQS_BROKER_READ_TIMEOUT bound the wait."
        ),
    ),
    "credentials": (
        "sqs_broker.E018",
        gettext_noop("%(action)s: the credentials are missing or rejected: %(error)s"),
        gettext_noop(
            "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the queue's own keys, "
            "the profile or the IAM role) and that they are not expired."
        ),
    ),
    "denied": (
        "sqs_broker.E019",
        gettext_noop("Access denied: the credentials may not perform %(action)s (%(error)s)."),
        gettext_noop("Allow %(action)s in the IAM policy of these credentials."),
    ),
}
_OTHER_FAILURE = (
    "sqs_broker.W018",
    gettext_noop("%(action)s failed: %(error)s"),
    gettext_noop("See the error; the other findings for this queue could not be checked."),
)


def failure(kind: str, text: str, action: str, queue: str | None) -> Finding:
    """A finding for a failure of ``kind`` with error ``text`` during ``action``."""
    finding_id, message, hint = _FAILURES.get(kind, _OTHER_FAILURE)
    values = {"action": action, "error": text}
    # Only the hints that name the action have a placeholder to fill.
    return make(finding_id, _(message) % values, _(hint) % values, queue=queue)


def call_failed(exc: BaseException, action: str, queue: str | None = None) -> Finding:
    """A finding for a failed call, by what the failure means."""
    text, _code = sqs.error_text(exc)
    kind = sqs.failure_kind(exc)
    return failure(kind, sqs.readable_error(text)[0], action, queue)
