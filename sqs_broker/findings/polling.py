"""Findings about long and short polling: E004, I001, W002, W003, I002.

The monthly request counts and prices assume one consuming worker per queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from sqs_broker import limits
from sqs_broker.findings.base import SECONDS_PER_MONTH, Finding, dollars, make, register, seconds

if TYPE_CHECKING:
    from sqs_broker.topology import Topology

#: A receive's round trip, counted in short polling's rate (polling_interval 0 is not free).
ROUND_TRIP = 0.05


@register("offline")
def polling(topo: Topology) -> list[Finding]:
    """E004, I001, W002, W003, I002: long polling, short polling and the interval."""
    options = topo.options
    wait = options.get("wait_time_seconds", limits.KOMBU_WAIT_TIME_SECONDS)
    interval = options.get("polling_interval", limits.KOMBU_POLLING_INTERVAL)
    if (
        isinstance(wait, bool)
        or not isinstance(wait, int)
        or not 0 <= wait <= limits.MAX_WAIT_TIME_SECONDS
    ):
        return [
            make(
                "sqs_broker.E004",
                _(
                    "wait_time_seconds is %(value)r: SQS accepts an integer from 0 to 20, "
                    "so every ReceiveMessage would be rejected."
                )
                % {"value": wait},
                _("Set SQS_WAIT_TIME_SECONDS to an integer from 0 to 20 (10 is a good default)."),
            )
        ]
    try:
        interval = float(interval or 0)
    except (TypeError, ValueError):
        interval = 0.0
    queues = _("per queue and consuming worker")
    if wait > 0 and interval > 0:
        cycle = wait + interval
        if interval > wait:
            return [
                make(
                    "sqs_broker.W002",
                    _(
                        "polling_interval (%(interval)s s) is longer than wait_time_seconds "
                        "(%(wait)s s): after each empty poll the worker sleeps %(interval)s s "
                        "listening to nothing, so a new message can wait that long."
                    )
                    % {"interval": seconds(interval), "wait": wait},
                    _(
                        "Let long polling do the waiting: SQS_POLLING_INTERVAL=0 (or a small "
                        "value) with SQS_WAIT_TIME_SECONDS up to 20."
                    ),
                )
            ]
        requests = SECONDS_PER_MONTH / cycle
        return [
            make(
                "sqs_broker.I001",
                _(
                    "An empty poll cycle lasts wait_time_seconds + polling_interval = "
                    "%(wait)s + %(interval)s = %(cycle)s s: about %(requests)s requests a "
                    "month (%(cost)s USD) %(queues)s when idle."
                )
                % {
                    "wait": wait,
                    "interval": seconds(interval),
                    "cycle": seconds(cycle),
                    "requests": f"{requests:,.0f}",
                    "cost": dollars(requests),
                    "queues": queues,
                },
                _(
                    "Nothing to fix. SQS_POLLING_INTERVAL=0 removes the extra %(interval)s s; "
                    "a longer SQS_WAIT_TIME_SECONDS makes idle polls cheaper."
                )
                % {"interval": seconds(interval)},
            )
        ]
    if wait == 0:
        cycle = interval + ROUND_TRIP
        requests = SECONDS_PER_MONTH / cycle
        numbers = {
            "interval": seconds(interval),
            "requests": f"{requests:,.0f}",
            "cost": dollars(requests),
            "queues": queues,
        }
        if interval < 1:
            return [
                make(
                    "sqs_broker.W003",
                    _(
                        "Short polling (wait_time_seconds 0) with polling_interval "
                        "%(interval)s s is a busy loop: about %(requests)s requests a month "
                        "(%(cost)s USD) %(queues)s, and CPU spent on empty answers."
                    )
                    % numbers,
                    _(
                        "Use long polling: SQS_WAIT_TIME_SECONDS=10 to 20 with "
                        "SQS_POLLING_INTERVAL=0. For sub-second latency use Redis or RabbitMQ."
                    ),
                )
            ]
        return [
            make(
                "sqs_broker.I002",
                _(
                    "Short polling (wait_time_seconds 0) every %(interval)s s: about "
                    "%(requests)s requests a month (%(cost)s USD) %(queues)s; short polls "
                    "sample only some SQS servers and can miss messages."
                )
                % numbers,
                _("Long polling is cheaper and sees every server: SQS_WAIT_TIME_SECONDS=10 to 20."),
            )
        ]
    return []
