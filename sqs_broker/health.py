"""The health summary: what needs a person now, worked out from one ``gather()`` pass.

:func:`summary` reads the rows :func:`sqs_broker.stats.gather` already built
(queues, findings, workers, unconsumed queues) and asks nothing of SQS or the
database, so the dashboard's strip and ``stats.json``'s ``health`` always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqs_broker.schema import FindingRow, HealthRow, QueueRow, UnheldRow

#: Levels from worst to best; the summary's level is the worst of its parts.
LEVELS = ("error", "warning", "ok")


def _worst(levels: Iterable[str]) -> str:
    found = set(levels)
    return next((level for level in LEVELS if level in found), "ok")


def unheld_in_flight(
    queues: Sequence[QueueRow], workers: Sequence[Mapping[str, Any]]
) -> list[UnheldRow]:
    """Queues with messages in flight while every live worker consuming them runs nothing.

    A message is in flight from its receive until it is deleted or its
    visibility timeout ends. With telemetry showing the queue's live workers
    idle, no worker holds these messages: they are most likely failed tasks
    that a backoff policy or the visibility timeout hides until their next
    attempt (or a worker that died holding them). Without telemetry (no live
    worker heartbeats for the queue) nothing can be said, so nothing is.
    """
    rows: list[UnheldRow] = []
    for queue in queues:
        in_flight = queue["in_flight"] or 0
        if in_flight <= 0:
            continue
        consumers = [
            w for w in workers if w.get("alive") and queue["name"] in (w.get("queues") or ())
        ]
        if consumers and all(int(w.get("active") or 0) == 0 for w in consumers):
            rows.append({"queue": queue["name"], "in_flight": in_flight})
    return rows


def summary(
    queues: Sequence[QueueRow],
    findings: Sequence[FindingRow],
    workers: Sequence[Mapping[str, Any]],
    unconsumed: Sequence[str],
) -> HealthRow:
    """Dead letters, lost and stalled workers, unconsumed queues, findings by level, unheld
    in-flight messages.

    Dead letters are the messages of dead-letter queues and of quarantine
    queues (where the transport moves poison messages). They and error
    findings are errors; lost and stalled workers, unconsumed queues, warning
    findings and unheld in-flight messages are warnings.
    """
    dead = {}
    for queue in queues:
        dlq = queue["dlq"]
        if dlq and (dlq["visible"] or 0) > 0:
            dead[dlq["name"]] = dlq["visible"] or 0
        # Poison messages the transport moved aside are dead letters by another road.
        if queue.get("quarantine") and (queue["visible"] or 0) > 0:
            dead[queue["name"]] = queue["visible"] or 0
    lost = sum(1 for w in workers if w.get("state") == "lost")
    stalled = sum(1 for w in workers if w.get("state") == "stalled")
    errors = sum(1 for f in findings if f["level"] == "error")
    warnings = sum(1 for f in findings if f["level"] == "warning")
    unheld = unheld_in_flight(queues, workers)
    levels = [
        "error" if dead or errors else "ok",
        "warning" if lost or stalled or unconsumed or warnings or unheld else "ok",
    ]
    return {
        "level": _worst(levels),
        "dead_letters": sum(dead.values()),
        "dead_letter_queues": sorted(dead),
        "lost_workers": lost,
        "stalled_workers": stalled,
        "unconsumed_queues": list(unconsumed),
        "error_findings": errors,
        "warning_findings": warnings,
        "unheld_in_flight": unheld,
    }
