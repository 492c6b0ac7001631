"""Alerts and autoscaling recipes for this deployment's queues.

One set of :class:`Thresholds` serves two faces: :func:`rules` writes
Prometheus alerting rules over the metrics of ``/sqs/metrics`` (for a
Prometheus that scrapes it), and :func:`evaluate` judges one
:func:`sqs_broker.stats.gather` result by the same thresholds, for
``manage.py sqs_alerts check`` in cron or CI (exit 0 ok, 1 firing, 2 could
not check). :func:`keda` and :func:`ecs` fill in the scaling recipes of
docs/alerts.md with the deployment's queues. :func:`to_yaml` writes the
rule and manifest files (PyYAML is not a dependency of the app).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from sqs_broker.schema import QueueRow, Stats
from sqs_broker.topology import held_queues

#: Severity label of every rule (Alertmanager routes on it).
SEVERITY = "warning"


#: The longest --for and --window: a month (Prometheus refuses durations far longer).
MAX_SECONDS = 30 * 86400
#: The largest --target: a backlog per worker beyond it never scales anything up.
MAX_TARGET = 1_000_000
#: The largest replica count Kubernetes accepts (an int32).
MAX_REPLICAS = 2**31 - 1


@dataclass(frozen=True)
class Thresholds:
    """When each alert fires; the defaults are those of docs/alerts.md."""

    #: A dead-letter queue holding more visible messages than this.
    dead_letter_messages: int = 0
    #: A (non dead-letter) queue whose oldest message is older than this, in seconds.
    oldest_age: float = 600.0
    #: A task failing more than this share of its finished runs...
    failure_rate: float = 0.1
    #: ...among at least this many finished runs in the window (fewer say little).
    min_finished: int = 20
    #: Seconds a condition must hold before a Prometheus rule fires (``for:``).
    hold: int = 300
    #: Seconds of telemetry the failure rate is taken over.
    window: int = 600

    def __post_init__(self) -> None:
        problems = []
        if self.dead_letter_messages < 0:
            problems.append("--dead-letter-messages must be 0 or more")
        if not (math.isfinite(self.oldest_age) and self.oldest_age > 0):
            problems.append("--oldest-age must be a number of seconds above 0")
        if not 0 <= self.failure_rate < 1:
            problems.append("--failure-rate must be a share from 0 up to (not including) 1")
        if self.min_finished < 1:
            problems.append("--min-finished must be 1 or more")
        if not 0 <= self.hold <= MAX_SECONDS:
            problems.append(f"--for must be from 0 to {MAX_SECONDS} seconds (30 days)")
        if not 60 <= self.window <= MAX_SECONDS:
            problems.append(f"--window must be from 60 to {MAX_SECONDS} seconds (30 days)")
        if problems:
            raise ValueError("; ".join(problems) + ".")


# --- Prometheus rules ----------------------------------------------------------


def _matcher(names: Sequence[str]) -> str:
    """A PromQL regex matcher for exactly these queue names (dots escaped)."""
    # SQS names hold letters, digits, "-", "_" and a ".fifo" suffix: only "." is special.
    pattern = "|".join(name.replace(".", "\\\\.") for name in sorted(set(names)))
    return f'queue=~"{pattern}"'


def _duration(seconds: float) -> str:
    return f"{int(seconds)}s"


def rules(data: Stats, thresholds: Thresholds | None = None) -> dict[str, Any]:
    """Prometheus alerting rules for the queues in ``data`` (a ``gather()`` result)."""
    t = thresholds or Thresholds()
    queues = list(data.get("queues", []))
    dead = held_queues(queues)
    names = [q["name"] for q in queues]
    work = [n for n in names if n not in dead] or names
    letters = sorted(dead) or names
    hold = _duration(t.hold)
    window = _duration(t.window)
    finished = 'outcome=~"succeeded|failed|retried"'

    def rule(name: str, expr: str, hold_for: str, summary: str, description: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": hold_for,
            "labels": {"severity": SEVERITY},
            "annotations": {"summary": summary, "description": description},
        }

    found = [
        rule(
            "SqsBrokerDeadLetterMessages",
            f'sqs_broker_queue_messages{{dead_letter="true",state="visible",{_matcher(letters)}}}'
            f" > {t.dead_letter_messages}",
            "1m",
            "Messages in dead-letter queue {{ $labels.queue }}",
            "{{ $value }} messages failed maxReceiveCount times and wait in "
            "{{ $labels.queue }}: read them on the queue's dashboard page, fix the cause, "
            "then move them back.",
        ),
        rule(
            "SqsBrokerOldestMessageAge",
            f'sqs_broker_queue_oldest_message_age_seconds{{dead_letter="false",{_matcher(work)}}}'
            f" > {t.oldest_age:g}",
            hold,
            "Queue {{ $labels.queue }} has a message waiting for {{ $value | humanizeDuration }}",
            f"The oldest message of {{{{ $labels.queue }}}} is older than {t.oldest_age:g} s: "
            "workers are too few, stuck, or not consuming the queue.",
        ),
        rule(
            "SqsBrokerQueueUnconsumed",
            f'sqs_broker_queue_unconsumed{{dead_letter="false",{_matcher(work)}}} == 1',
            hold,
            "Queue {{ $labels.queue }} has messages and no live consumer",
            "No live worker's heartbeat names {{ $labels.queue }} among its queues "
            "(celery worker -Q), yet it holds messages.",
        ),
        rule(
            "SqsBrokerWorkerLost",
            "sqs_broker_worker_lost == 1",
            "0s",
            "Worker {{ $labels.hostname }} stopped sending heartbeats",
            "The worker's heartbeat is older than three of its intervals and it did not "
            "say it stopped: killed, out of memory, or its host is gone.",
        ),
        rule(
            "SqsBrokerWorkerStalled",
            "sqs_broker_worker_stalled == 1",
            "0s",
            "Worker {{ $labels.hostname }} is not consuming",
            "The worker's heartbeats arrive but its consumer has made no progress on some queue "
            "for longer than a long poll and its margin (a request that never answers, a stuck "
            "event loop; for beat, no tick): restart it (manage.py sqs_probe is the liveness "
            "probe that does so).",
        ),
        rule(
            "SqsBrokerTaskFailureRate",
            f"(sum by (task, queue) (increase(sqs_broker_tasks_total"
            f'{{outcome="failed",{_matcher(names)}}}[{window}]))'
            f" / sum by (task, queue) (increase(sqs_broker_tasks_total"
            f"{{{finished},{_matcher(names)}}}[{window}])) > {t.failure_rate:g})"
            f" and sum by (task, queue) (increase(sqs_broker_tasks_total"
            f"{{{finished},{_matcher(names)}}}[{window}])) >= {t.min_finished}",
            hold,
            "Task {{ $labels.task }} fails {{ $value | humanizePercentage }} of its runs",
            f"More than {t.failure_rate:.0%} of {{{{ $labels.task }}}}'s runs on "
            f"{{{{ $labels.queue }}}} failed over {window}.",
        ),
        rule(
            "SqsBrokerScrapeErrors",
            "sqs_broker_scrape_errors > 0",
            hold,
            "/sqs/metrics could not read every queue",
            "SQS did not answer for some queue, or telemetry could not be read: see the "
            "errors in /sqs/stats.json.",
        ),
    ]
    return {"groups": [{"name": "sqs_broker", "rules": found}]}


# --- live check ------------------------------------------------------------------


@dataclass
class Alert:
    """One firing condition: which alert, about what, the value and its threshold."""

    alert: str
    subject: str
    value: float
    threshold: float
    message: str


@dataclass
class Verdict:
    """What :func:`evaluate` found; :attr:`exit_code` is the command's exit status."""

    firing: list[Alert] = field(default_factory=list)
    #: Why some of the checks could not be made (a queue SQS did not answer, say).
    unknown: list[str] = field(default_factory=list)
    #: Checks left out, and why (telemetry off, say).
    skipped: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all clear, 1 something fires (even when other checks failed), 2 could not check."""
        if self.firing:
            return 1
        return 2 if self.unknown else 0

    @property
    def status(self) -> str:
        """``ok``, ``firing`` or ``unknown``: the exit code in words."""
        return {0: "ok", 1: "firing", 2: "unknown"}[self.exit_code]

    def as_json(self, thresholds: Thresholds) -> dict[str, Any]:
        """JSON-ready: status, exit code, thresholds, firing alerts, unknowns, skipped checks."""
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "thresholds": asdict(thresholds),
            "firing": [asdict(a) for a in self.firing],
            "unknown": list(self.unknown),
            "skipped": list(self.skipped),
        }


def evaluate(data: Stats, thresholds: Thresholds | None = None, telemetry: bool = True) -> Verdict:
    """The alerts of :func:`rules` judged on one ``gather()`` result, now.

    ``telemetry=False`` (``SQS_BROKER_TELEMETRY`` off) skips the checks that
    need worker heartbeats: without them every busy queue would look unconsumed.
    """
    t = thresholds or Thresholds()
    verdict = Verdict()
    queues = list(data.get("queues", []))
    dead = held_queues(queues)
    verdict.unknown.extend(str(e) for e in data.get("errors", []))
    depth_of: dict[str, int | None] = {}
    for queue in queues:
        depth_of[queue["name"]] = queue.get("visible")
        if queue.get("error"):
            verdict.unknown.append(f"{queue['name']}: {queue['error']}")
        dlq = queue.get("dlq")
        if dlq and dlq["name"] not in depth_of:
            depth_of.setdefault(dlq["name"], dlq.get("visible"))
            if dlq.get("error"):
                verdict.unknown.append(f"{dlq['name']}: {dlq['error']}")
    for name in sorted(dead):
        depth = depth_of.get(name)
        if depth is not None and depth > t.dead_letter_messages:
            verdict.firing.append(
                Alert(
                    "SqsBrokerDeadLetterMessages",
                    name,
                    depth,
                    t.dead_letter_messages,
                    _("%(count)s messages wait in dead-letter queue %(queue)s.")
                    % {"count": depth, "queue": name},
                )
            )
    for queue in queues:
        age = queue.get("oldest_age")
        if queue["name"] in dead or age is None or age <= t.oldest_age:
            continue
        verdict.firing.append(
            Alert(
                "SqsBrokerOldestMessageAge",
                queue["name"],
                age,
                t.oldest_age,
                _("The oldest message of %(queue)s is %(age)s s old (source: %(source)s).")
                % {
                    "queue": queue["name"],
                    "age": f"{age:.0f}",
                    "source": queue.get("oldest_age_source"),
                },
            )
        )
    if not telemetry:
        verdict.skipped.append(
            _("Consumers, lost workers and failure rates: SQS_BROKER_TELEMETRY is off.")
        )
        return verdict
    for name in data.get("unconsumed_queues", []):
        if name in dead:
            continue
        verdict.firing.append(
            Alert(
                "SqsBrokerQueueUnconsumed",
                name,
                depth_of.get(name) or 0,
                0,
                _("%(queue)s holds messages and no live worker consumes it.") % {"queue": name},
            )
        )
    for worker in data.get("workers", []):
        if worker.get("state") == "lost":
            verdict.firing.append(
                Alert(
                    "SqsBrokerWorkerLost",
                    worker["hostname"],
                    worker.get("seconds_since_seen") or 0,
                    0,
                    _("Worker %(host)s has sent no heartbeat for %(seconds)s s.")
                    % {"host": worker["hostname"], "seconds": worker.get("seconds_since_seen")},
                )
            )
    for worker in data.get("workers", []):
        if worker.get("state") == "stalled":
            verdict.firing.append(
                Alert(
                    "SqsBrokerWorkerStalled",
                    worker["hostname"],
                    worker.get("seconds_since_progress") or 0,
                    worker.get("stall_after") or 0,
                    _(
                        "Worker %(host)s sends heartbeats but made no progress on %(queues)s "
                        "for %(seconds)s s."
                    )
                    % {
                        "host": worker["hostname"],
                        "queues": ", ".join(worker.get("stalled_queues") or ()),
                        "seconds": worker.get("seconds_since_progress"),
                    },
                )
            )
    for task in data.get("tasks", []):
        done = task["succeeded"] + task["failed"] + task["retried"]
        rate = task["failed"] / done if done else 0.0
        if done >= t.min_finished and rate > t.failure_rate:
            verdict.firing.append(
                Alert(
                    "SqsBrokerTaskFailureRate",
                    f"{task['name']} [{task['queue']}]",
                    round(rate, 4),
                    t.failure_rate,
                    _("%(task)s failed %(failed)s of %(done)s runs on %(queue)s.")
                    % {
                        "task": task["name"],
                        "failed": task["failed"],
                        "done": done,
                        "queue": task["queue"],
                    },
                )
            )
    return verdict


# --- scaling recipes -------------------------------------------------------------


def check_target(target: float) -> None:
    """A ``ValueError`` naming ``--target`` unless the recipes can use it as a backlog."""
    if not (math.isfinite(target) and 0 < target <= MAX_TARGET):
        raise ValueError(
            f"--target must be a number above 0 and at most {MAX_TARGET}; got {target}."
        )


def check_replicas(min_replicas: int, max_replicas: int) -> None:
    """A ``ValueError`` naming the option unless ``0 <= min <= max`` and ``max >= 1``."""
    problems = []
    if not 0 <= min_replicas <= MAX_REPLICAS:
        problems.append(f"--min-replicas must be from 0 to {MAX_REPLICAS}; got {min_replicas}")
    if not 1 <= max_replicas <= MAX_REPLICAS:
        problems.append(f"--max-replicas must be from 1 to {MAX_REPLICAS}; got {max_replicas}")
    if not problems and min_replicas > max_replicas:
        problems.append(
            f"--min-replicas ({min_replicas}) must not be above --max-replicas ({max_replicas})"
        )
    if problems:
        raise ValueError("; ".join(problems) + ".")


def work_queues(data: Stats, only: Sequence[str] = ()) -> list[QueueRow]:
    """The queues workers consume (not dead-letter queues), or those named in ``only``.

    A name in ``only`` that is not among the deployment's queues is a ``ValueError``.
    """
    queues = list(data.get("queues", []))
    dead = held_queues(queues)
    rows = [q for q in queues if q["name"] not in dead]
    if only:
        known = {q["name"] for q in queues}
        unknown = sorted(set(only) - known)
        if unknown:
            raise ValueError(
                f"Not a queue of this deployment: {', '.join(unknown)} "
                f"(its queues: {', '.join(sorted(known)) or 'none'})."
            )
        rows = [q for q in queues if q["name"] in set(only)]
    return rows


def keda(
    data: Stats,
    deployment: str,
    region: str,
    target: float,
    only: Sequence[str] = (),
    min_replicas: int = 1,
    max_replicas: int = 10,
) -> dict[str, Any]:
    """A KEDA ScaledObject scaling ``deployment`` on the backlog of the deployment's queues.

    One ``aws-sqs-queue`` trigger per queue, each with ``queueLength`` = the
    target backlog per worker; KEDA scales to the largest of their answers.
    A target or replica bounds KEDA would refuse are a ``ValueError`` naming the option.
    """
    check_target(target)
    check_replicas(min_replicas, max_replicas)
    triggers = []
    for queue in work_queues(data, only):
        triggers.append(
            {
                "type": "aws-sqs-queue",
                "authenticationRef": {"name": "keda-trigger-auth-aws"},
                "metadata": {
                    "queueURL": queue.get("url") or queue["name"],
                    "queueLength": f"{max(1, math.ceil(target))}",
                    "awsRegion": region,
                    # In-flight messages are work being done: count them, like the metric.
                    "scaleOnInFlight": "true",
                },
            }
        )
    if not triggers:
        raise ValueError("The deployment has no queue to scale on.")
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"{deployment}-sqs"},
        "spec": {
            "scaleTargetRef": {"name": deployment},
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "pollingInterval": 30,
            "cooldownPeriod": 300,
            "triggers": triggers,
        },
    }


def ecs(
    data: Stats,
    cluster: str,
    service: str,
    target: float,
    only: Sequence[str] = (),
) -> dict[str, Any]:
    """An ECS target-tracking configuration on backlog per task (CloudWatch metric math).

    Visible messages of the queues, summed, divided by the service's running
    tasks (Container Insights' ``RunningTaskCount``); for
    ``aws application-autoscaling put-scaling-policy
    --target-tracking-scaling-policy-configuration file://...``.
    A target out of range is a ``ValueError`` naming ``--target``.
    """
    check_target(target)
    rows = work_queues(data, only)
    if not rows:
        raise ValueError("The deployment has no queue to scale on.")
    metrics: list[dict[str, Any]] = []
    for index, queue in enumerate(rows):
        metrics.append(
            {
                "Id": f"m{index}",
                "Label": f"visible messages of {queue['name']}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateNumberOfMessagesVisible",
                        "Dimensions": [{"Name": "QueueName", "Value": queue["name"]}],
                    },
                    "Stat": "Sum",
                },
                "ReturnData": False,
            }
        )
    metrics.append(
        {
            "Id": "tasks",
            "Label": "running tasks of the service",
            "MetricStat": {
                "Metric": {
                    "Namespace": "ECS/ContainerInsights",
                    "MetricName": "RunningTaskCount",
                    "Dimensions": [
                        {"Name": "ClusterName", "Value": cluster},
                        {"Name": "ServiceName", "Value": service},
                    ],
                },
                "Stat": "Average",
            },
            "ReturnData": False,
        }
    )
    backlog = " + ".join(f"m{i}" for i in range(len(rows)))
    metrics.append(
        {
            "Id": "backlog_per_task",
            "Label": "visible messages per running task",
            # Keep the service's minimum capacity at 1 or more: with no running
            # task the division has no value and target tracking does nothing.
            "Expression": f"({backlog}) / tasks",
            "ReturnData": True,
        }
    )
    return {
        "TargetValue": float(target),
        "CustomizedMetricSpecification": {"Metrics": metrics},
        "ScaleOutCooldown": 60,
        "ScaleInCooldown": 300,
    }


# --- YAML ------------------------------------------------------------------------


def to_yaml(value: Any, indent: int = 0) -> str:
    """``value`` (dicts, lists, strings, numbers, booleans) as block YAML.

    Every string is written double-quoted with JSON's escapes, which YAML
    reads the same way, so no name or PromQL expression is misread.
    """
    return "\n".join(_yaml_lines(value, indent)) + "\n"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{_scalar(key)}:")
                lines.extend(_yaml_lines(item, indent + 2))
            else:
                lines.append(f"{pad}{_scalar(key)}: {_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            nested = _yaml_lines(item, indent + 2)
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_inline(item)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return lines


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)
