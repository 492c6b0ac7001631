"""The health summary: what needs a person now, worked out from one ``gather()`` pass.

:func:`summary` reads the rows :func:`sqs_broker.stats.gather` already built
(queues, findings, workers, tasks, unconsumed queues) and asks nothing of SQS
or the database, so the dashboard's strip and ``stats.json``'s ``health``
always agree. Its parts come in the order of what pages people: consumers
stalled or lost, messages waiting too long (the oldest message against
``sqs_alerts``' threshold), task failure and redelivery rates, dead letters,
findings; ``all_clear`` says when none of them needs anyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqs_broker.alerts import Thresholds
from sqs_broker.findings.causes import MIN_RECEIVED, REDELIVERED
from sqs_broker.schema import FindingRow, HealthRow, QueueRow, UnheldRow
from sqs_broker.topology import held_queues

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


def waiting(queues: Sequence[QueueRow], threshold: float) -> list[dict[str, Any]]:
    """Work queues whose oldest message is older than ``threshold`` seconds, oldest first."""
    dead = held_queues(queues)
    rows = [
        {
            "queue": q["name"],
            "oldest_age": q.get("oldest_age"),
            "source": q.get("oldest_age_source"),
            "visible": q["visible"],
        }
        for q in queues
        if q["name"] not in dead and (q.get("oldest_age") or 0) > threshold
    ]
    return sorted(rows, key=lambda r: -(r["oldest_age"] or 0))


def failing(tasks: Sequence[Mapping[str, Any]], t: Thresholds) -> list[dict[str, Any]]:
    """Tasks failing more than ``sqs_alerts``' share among at least its minimum of runs."""
    rows = []
    for task in tasks:
        finished = task["succeeded"] + task["failed"] + task["retried"]
        if finished >= t.min_finished and task["failed"] / finished > t.failure_rate:
            rows.append(
                {
                    "task": task["name"],
                    "queue": task["queue"],
                    "rate": round(task["failed"] / finished, 4),
                    "count": finished,
                }
            )
    return sorted(rows, key=lambda r: -r["rate"])


def redelivered(tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tasks whose messages come back often (W031's threshold), whatever they fail."""
    rows = []
    for task in tasks:
        received = task.get("received") or 0
        if received >= MIN_RECEIVED and (task.get("redelivered") or 0) / received >= REDELIVERED:
            rows.append(
                {
                    "task": task["name"],
                    "queue": task["queue"],
                    "rate": round(task["redelivered"] / received, 4),
                    "count": received,
                }
            )
    return sorted(rows, key=lambda r: -r["rate"])


def unhealthy_workers(workers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stalled and lost workers, stalled first, with what they held when last seen.

    A heartbeat carries how many tasks a worker ran (``active``), not which:
    ``held`` is that count, and ``held_ids`` the ids where a heartbeat has them.
    """
    rows = [
        {
            "hostname": w.get("hostname"),
            "state": w.get("state"),
            "last_seen": w.get("last_seen"),
            "queues": list(w.get("queues") or ()),
            "held": int(w.get("active") or 0),
            "held_ids": list(w.get("active_ids") or ()),
        }
        for w in workers
        if w.get("state") in ("stalled", "lost")
    ]
    return sorted(rows, key=lambda r: (r["state"] != "stalled", str(r["hostname"])))


def summary(
    queues: Sequence[QueueRow],
    findings: Sequence[FindingRow],
    workers: Sequence[Mapping[str, Any]],
    unconsumed: Sequence[str],
    tasks: Sequence[Mapping[str, Any]] = (),
    thresholds: Thresholds | None = None,
) -> HealthRow:
    """What needs a person, in the order it pages people, and whether all is clear.

    Stalled and lost workers, queues no worker consumes, messages waiting
    longer than ``sqs_alerts``' oldest-age threshold, tasks failing above its
    failure-rate threshold or redelivered often, dead letters (of dead-letter
    and quarantine queues, where the transport moves poison messages),
    findings by level, in-flight messages no worker holds. Dead letters and
    error findings are errors; the rest are warnings. ``thresholds`` are
    ``sqs_alerts``' (its defaults unless given).
    """
    t = thresholds or Thresholds()
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
    old = waiting(queues, t.oldest_age)
    failures = failing(tasks, t)
    redeliveries = redelivered(tasks)
    levels = [
        "error" if dead or errors else "ok",
        "warning"
        if lost or stalled or unconsumed or warnings or unheld or old or failures or redeliveries
        else "ok",
    ]
    level = _worst(levels)
    return {
        "level": level,
        "all_clear": level == "ok",
        "stalled_workers": stalled,
        "unhealthy_workers": unhealthy_workers(workers),
        "waiting_queues": old,
        "oldest_age_threshold": t.oldest_age,
        "failing_tasks": failures,
        "failure_rate_threshold": t.failure_rate,
        "redelivered_tasks": redeliveries,
        "redelivery_rate_threshold": REDELIVERED,
        "dead_letters": sum(dead.values()),
        "dead_letter_queues": sorted(dead),
        "lost_workers": lost,
        "unconsumed_queues": list(unconsumed),
        "error_findings": errors,
        "warning_findings": warnings,
        "unheld_in_flight": unheld,
    }
