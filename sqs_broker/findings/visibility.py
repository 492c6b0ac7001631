"""Findings about the visibility timeout, results and shutdown: E005-E007, W004-W007, I003.

:func:`timeout_too_short` also judges each live queue's own timeout
(:mod:`sqs_broker.findings.live`).

Under the project transport's visibility lease (``SQS_VISIBILITY_LEASE`` > 0,
:mod:`sqs_broker.transport.lease`) a worker extends every message it holds
until it is acknowledged, for at least the visibility timeout and for twice
the task's hard time limit: a late-acknowledged task longer than the timeout
runs once, so W004 does not apply; a killed worker's messages return within
one lease, so W005 weighs the lease, not the timeout. E006 is unchanged: a
message held for its ETA or countdown is extended no longer than the
visibility timeout would have kept it, which must still cover the wait.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _

from sqs_broker import limits
from sqs_broker.conf import app_settings
from sqs_broker.findings.base import Finding, make, register, seconds
from sqs_broker.publishing import held_by_worker

if TYPE_CHECKING:
    from celery import Celery

    from sqs_broker.topology import Topology

#: A visibility timeout above this makes a cold shutdown's stranded messages wait long.
LONG_VISIBILITY_TIMEOUT = 300

_discovered: weakref.WeakSet[Celery] = weakref.WeakSet()


def registered_tasks(app: Celery) -> dict[str, Any]:
    """The app's tasks, after the task modules of its Django apps are imported.

    ``autodiscover_tasks(force=True)`` imports them directly; the worker's way
    (``import_default_modules``) would run the system checks again from here.
    Once per app: the dashboard asks on every page load.
    """
    if app not in _discovered:
        if any(hasattr(fixup, "autodiscover_tasks") for fixup in getattr(app, "_fixups", ())):
            app.autodiscover_tasks(force=True)
        _discovered.add(app)
    return dict(app.tasks)


def _longest_time_limit(app: Celery) -> tuple[float, str] | None:
    conf = app.conf
    limits: list[tuple[float, str]] = []
    for setting in ("task_time_limit", "task_soft_time_limit"):
        value = conf.get(setting)
        if value:
            limits.append((float(value), setting))
    configured = {value for value, _setting in limits}
    for name, task in registered_tasks(app).items():
        for attribute in ("time_limit", "soft_time_limit"):
            value = getattr(task, attribute, None)
            # A task's own limit; the settings' values, which tasks inherit, are named already.
            if value and float(value) not in configured:
                limits.append((float(value), f"{name}.{attribute}"))
    return max(limits, key=lambda limit: limit[0]) if limits else None


def timeout_too_short(
    app: Celery, timeout: float, queue: str | None = None, lease: int = 0
) -> list[Finding]:
    """E006, W004: a visibility timeout shorter than the longest ETA or time limit.

    ``lease``: the workers' visibility lease (:attr:`Topology.visibility_lease`).
    """
    found = []
    longest_eta = app_settings.MAX_ETA
    fifo = bool(queue and queue.endswith(".fifo"))
    # Only the part of a delay that SQS cannot hold itself keeps a message
    # invisible in a worker's hands.
    held = held_by_worker(longest_eta, fifo)
    if longest_eta and timeout < held:
        values = {
            "timeout": seconds(timeout),
            "eta": seconds(longest_eta),
            "held": seconds(held),
            "limit": seconds(timeout + (longest_eta - held)),
        }
        found.append(
            make(
                "sqs_broker.E006",
                _(
                    "The visibility timeout (%(timeout)s s) is shorter than the %(held)s s "
                    "a worker holds a task with the longest ETA/countdown the project uses "
                    "(SQS_BROKER_MAX_ETA = %(eta)s s, less what SQS's own delay covers): SQS "
                    "redelivers such a task while the worker holds it, and it runs again, "
                    "in a loop."
                )
                % values,
                _(
                    "Raise the visibility timeout to at least %(held)s s (at most 43200), or "
                    "keep ETAs and countdowns shorter than %(limit)s s."
                )
                % values,
                queue=queue,
            )
        )
    limit = _longest_time_limit(app)
    # Under a lease the worker extends a running task's message until it is acknowledged.
    if limit is not None and timeout < limit[0] and not lease:
        found.append(
            make(
                "sqs_broker.W004",
                _(
                    "The visibility timeout (%(timeout)s s) is shorter than %(setting)s "
                    "(%(limit)s s): a task running that long (with acks_late), or the "
                    "prefetched messages waiting behind it, is redelivered and runs twice."
                )
                % {"timeout": seconds(timeout), "setting": limit[1], "limit": seconds(limit[0])},
                _("Raise the visibility timeout above %(limit)s s, or lower the time limit.")
                % {"limit": seconds(limit[0])},
                queue=queue,
            )
        )
    return found


@register("offline")
def visibility(topo: Topology) -> list[Finding]:
    """E005, E006, W004, I003, W005: the configured visibility timeout."""
    options = topo.options
    timeout = topo.visibility_timeout
    if timeout is None or not 0 <= timeout <= limits.MAX_VISIBILITY_TIMEOUT:
        return [
            make(
                "sqs_broker.E005",
                _("visibility_timeout is %(value)r: SQS accepts 0 to 43200 seconds.")
                % {"value": options.get("visibility_timeout")},
                _("Set SQS_VISIBILITY_TIMEOUT to whole seconds from 0 to 43200."),
            )
        ]
    found: list[Finding] = []
    if topo.predefined:
        if "visibility_timeout" in options:
            found.append(
                make(
                    "sqs_broker.I003",
                    _(
                        "visibility_timeout (%(timeout)s s) has no effect: every queue is "
                        "predefined, kombu creates none, and each queue's own "
                        "VisibilityTimeout attribute rules (the online checks compare them)."
                    )
                    % {"timeout": seconds(timeout)},
                    _("Set VisibilityTimeout on the queues themselves, in AWS."),
                )
            )
    else:
        found += timeout_too_short(topo.app, timeout, lease=topo.visibility_lease)
    soft = float(topo.app.conf.get("worker_soft_shutdown_timeout") or 0)
    # A killed worker's messages return after the lease, when there is one.
    stranded = min(timeout, topo.visibility_lease or timeout)
    if soft <= 0 and stranded > LONG_VISIBILITY_TIMEOUT:
        found.append(
            make(
                "sqs_broker.W005",
                _(
                    "worker_soft_shutdown_timeout is 0 and the visibility timeout is "
                    "%(timeout)s s: after a cold shutdown (or a kill) the messages a worker "
                    "held stay invisible for up to %(timeout)s s before another worker can "
                    "take them."
                )
                % {"timeout": seconds(timeout)},
                _(
                    "Set CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT (e.g. 30) so running tasks get "
                    "time to finish and unacknowledged messages are requeued at shutdown."
                ),
            )
        )
    return found


@register("offline", applies="any")
def result_backend(topo: Topology) -> Finding | None:
    """E007: amqp:// or rpc:// results with SQS."""
    backend = topo.app.conf.result_backend
    if not isinstance(backend, str):
        return None
    scheme = backend.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("amqp", "rpc"):
        return None
    return make(
        "sqs_broker.E007",
        _(
            "The result backend is %(scheme)s://: on SQS it creates a queue per task that "
            "is never collected, and each one costs money."
        )
        % {"scheme": scheme},
        _("Use django-db (django-celery-results), dynamodb:// or s3:// for results."),
    )


@register("offline")
def events_and_control(topo: Topology) -> list[Finding]:
    """W006, W007: events, which SQS does not carry; remote control without SNS fanout."""
    conf = topo.app.conf
    found = []
    events = [s for s in ("worker_send_task_events", "task_send_sent_event") if conf.get(s)]
    if events:
        found.append(
            make(
                "sqs_broker.W006",
                _(
                    "%(settings)s on: SQS does not carry Celery events, so celery events and "
                    "Flower show nothing, and each listener leaves a celeryev queue behind."
                )
                % {"settings": ", ".join(events)},
                _(
                    "Turn them off (CELERY_WORKER_SEND_TASK_EVENTS=False, "
                    "CELERY_TASK_SEND_SENT_EVENT=False); the sqs_broker dashboard and its "
                    "worker telemetry replace them."
                ),
            )
        )
    if conf.get("worker_enable_remote_control"):
        # Supported through SNS fanout with the project's transport (SQS_BROKER_REMOTE_CONTROL);
        # without fanout no worker starts a mailbox.
        if topo.transport != "sqs_broker.transport:Transport":
            found.append(
                make(
                    "sqs_broker.W007",
                    _(
                        "worker_enable_remote_control is on with kombu's own SQS transport, "
                        "which declares no fanout: workers start no mailbox, so celery "
                        "inspect and celery control get no answer."
                    ),
                    _(
                        "Use sqs_broker's transport (unset SQS_TRANSPORT) with "
                        "SQS_BROKER_REMOTE_CONTROL = True (SQS_REMOTE_CONTROL=true), or set "
                        "CELERY_WORKER_ENABLE_REMOTE_CONTROL=False."
                    ),
                )
            )
        elif not topo.options.get("supports_fanout"):
            found.append(
                make(
                    "sqs_broker.W007",
                    _(
                        "worker_enable_remote_control is on without SNS fanout (the transport "
                        "option supports_fanout): workers start no mailbox, so celery inspect "
                        "and celery control get no answer."
                    ),
                    _(
                        "Set SQS_BROKER_REMOTE_CONTROL = True (SQS_REMOTE_CONTROL=true), which "
                        "turns SNS fanout on, or set CELERY_WORKER_ENABLE_REMOTE_CONTROL=False."
                    ),
                )
            )
    return found
