"""Running the registered checks: :func:`offline`, :func:`online`, :func:`online_within`,
:func:`measured`.

Findings read the Celery app's live configuration (resolved once per pass
into a :class:`~sqs_broker.topology.Topology`) and Django settings, never
the environment: what is checked is what the worker uses. :func:`offline`
makes no network call; :func:`online` asks SQS and STS with the bounded
clients of :mod:`sqs_broker.sqs`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.utils import translation
from django.utils.translation import gettext as _

from sqs_broker import sqs
from sqs_broker.findings.base import Finding, could_not_check, make, registered
from sqs_broker.findings.base import seconds as as_seconds
from sqs_broker.findings.causes import Measured, lease_of
from sqs_broker.findings.failures import call_failed
from sqs_broker.findings.live import LivePass
from sqs_broker.redact import scrub
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    from celery import Celery


def offline(app: Celery | Topology | None = None) -> list[Finding]:
    """Every pitfall that can be found without calling AWS."""
    topo = Topology.of(app)
    found: list[Finding] = []
    for check in registered("offline", topo.is_sqs):
        found += check(topo)
    return found


def online(
    app: Celery | Topology | None = None,
    states: list[sqs.QueueState] | None = None,
    known: Iterable[sqs.QueueState] = (),
) -> list[Finding]:
    """Pitfalls found on the live queues; bounded by the clients' timeouts.

    ``states`` (from ``sqs.fetch(sqs.inventory(app))``) are reused when given.
    ``known`` are other queues already read (the dashboard's dead-letter
    queues): a dead-letter queue among them is not asked about again.
    When the endpoint cannot be reached or the credentials are rejected, that
    one finding is returned (see :func:`could_not_check`).
    """
    topo = Topology.of(app)
    if not topo.is_sqs:
        return []
    found: list[Finding] = []
    for check in registered("access"):
        found += check(topo)
        if check.gate and could_not_check(found):
            return found
    # Given states are as old as the listing they came with; our own are fresh.
    max_age: float | None = None
    if states is None:
        max_age = 0
        try:
            refs = sqs.inventory(topo, discover=False)
        except Exception as exc:
            return [*found, call_failed(exc, "sqs:ListQueues")]
        states = sqs.fetch(refs, topo, max_age=max_age)
    # A queue URL ends in /ACCOUNT/NAME, as a dead-letter queue's ARN does.
    existing = {
        (parts[0], parts[1])
        for state in (*states, *known)
        if state.url and state.error is None
        for parts in [state.url.rstrip("/").rsplit("/", 2)[-2:]]
    }
    live = LivePass(topo, states, existing, max_age)
    for state in states:
        for check in registered("queue"):
            found += check(live, state)
    unconfirmed = "sqs_broker.I009" in {f.id for f in found}
    if unconfirmed and states and all(_unanswered(state) for state in states):
        # Neither STS nor any queue answered as AWS does: nothing was checked.
        found.append(
            make(
                "sqs_broker.E017",
                _(
                    "The endpoint %(endpoint)s answers, but not as SQS: no queue could be "
                    "read, so nothing was checked."
                )
                % {"endpoint": topo.endpoint},
                _("Point SQS_ENDPOINT_URL at an SQS-compatible endpoint (or unset it for AWS)."),
            )
        )
        return [_scrubbed(f) for f in found]
    for check in registered("account"):
        found += check(live)
    return [_scrubbed(f) for f in found]


def measured(
    app: Celery | Topology | None,
    queues: Sequence[Mapping[str, Any]],
    tasks: Sequence[Mapping[str, Any]],
    dead_letters: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Causes named from measured figures (see :mod:`sqs_broker.findings.causes`); no call.

    ``queues`` and ``tasks`` are ``gather()``'s rows; ``dead_letters`` the last
    breakdown of each dead-letter queue that was sampled.
    """
    topo = Topology.of(app)
    facts = Measured(queues, tasks, lease_of(topo.options), dead_letters or {})
    found: list[Finding] = []
    for check in registered("measured", topo.is_sqs):
        found += check(facts)
    return [_scrubbed(f) for f in found]


def online_within(seconds: float, app: Celery | Topology | None = None) -> list[Finding]:
    """:func:`online`, or E017 when it has not finished within ``seconds``.

    Each call is bounded by the clients' timeouts, but a slow endpoint
    answering every call just in time adds them up: this bounds the whole.
    The checks run on a daemon thread, so an endless answer cannot hold the
    process at exit.
    """
    topo = Topology.of(app)
    language = translation.get_language()
    result: list[list[Finding]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with translation.override(language):
                result.append(online(topo))
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=run, name="sqs-online-checks", daemon=True)
    worker.start()
    worker.join(seconds)
    if failure:
        raise failure[0]
    if result:
        return result[0]
    return [
        make(
            "sqs_broker.E017",
            _(
                "The online checks did not finish within %(seconds)s s: the endpoint "
                "%(endpoint)s answers too slowly to be checked."
            )
            % {"seconds": as_seconds(seconds), "endpoint": topo.endpoint or "AWS"},
            _(
                "Check the network path to SQS, or allow more time with --timeout "
                "(SQS_BROKER_CONNECT_TIMEOUT and SQS_BROKER_READ_TIMEOUT bound each call)."
            ),
        )
    ]


def _unanswered(state: sqs.QueueState) -> bool:
    if state.error is None:
        return False
    return sqs.failure_kind(state.error_code, state.error) in ("other", "unreachable")


def _scrubbed(finding: Finding) -> Finding:
    """Error texts from SQS pass through :mod:`sqs_broker.redact` before anyone sees them."""
    return Finding(
        finding.id, finding.level, scrub(finding.message), scrub(finding.hint), finding.queue
    )
