"""What the dashboard's panels draw from one ``gather()`` result: workers, tasks, findings.

The data comes whole from :func:`sqs_broker.stats.gather`; this module only
arranges it for the templates (counts by worker state, task sparklines,
rates as percentages, the findings with the problems first).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqs_broker.conf import app_settings
from sqs_broker.dashboard import charts
from sqs_broker.schema import FindingRow, Stats
from sqs_broker.telemetry.base import POISON_TASK

#: Counts of a task row that say a delivery became a task (the table shows those rows).
RUN_OUTCOMES = ("received", "succeeded", "failed", "retried", "revoked")


def panels(data: Stats) -> dict[str, Any]:
    """What the dashboard's worker and task panels draw from one ``gather()`` result."""
    workers = list(data.get("workers") or [])
    counts = dict.fromkeys(("alive", "lost", "stopped"), 0)
    for worker in workers:
        counts[worker["state"]] = counts.get(worker["state"], 0) + 1
    width, height = 120, 24
    tasks = []
    poison = []
    for task in data.get("tasks") or []:
        named = task["name"] != POISON_TASK
        if task.get("poisoned"):
            name = task["name"] if named else None
            poison.append({"queue": task["queue"], "task": name, "count": task["poisoned"]})
        if not named or not any(task.get(o) for o in RUN_OUTCOMES):
            continue  # only poison: no run to show in the table
        series = task.get("series") or []
        tasks.append(
            {
                **task,
                "failure_pct": _pct(task.get("failure_rate")),
                "redelivery_pct": _pct(task.get("redelivery_rate")),
                "spark": {
                    "width": width,
                    "height": height,
                    "points": charts.points(series, width, height),
                    "peak": max(series) if series else None,
                    "count": len(series),
                },
            }
        )
    return {
        "enabled": app_settings.TELEMETRY,
        "workers": workers,
        "counts": counts,
        "tasks": tasks,
        "poison": poison,
        "unconsumed": list(data.get("unconsumed_queues") or []),
        "window": data.get("telemetry_window"),
    }


def _pct(rate: float | None) -> str | None:
    return None if rate is None else f"{rate * 100:.1f} %"


#: Levels a finding is a problem at: shown first, errors before warnings.
PROBLEMS = ("error", "warning")


def findings_by_level(found: Iterable[FindingRow]) -> tuple[list[FindingRow], list[FindingRow]]:
    """The problems (errors, then warnings) and the rest, folded below them on the page."""
    found = list(found)
    problems = sorted(
        [f for f in found if f["level"] in PROBLEMS], key=lambda f: f["level"] != "error"
    )
    return problems, [f for f in found if f["level"] not in PROBLEMS]
