"""Run every benchmark on one fresh local SQS; print a table and one JSON line.

    .venv/bin/python -m benchmarks.run            # about 10 minutes
    .venv/bin/python -m benchmarks.run --quick    # fewer tasks, shorter windows
    .venv/bin/python -m benchmarks.run --write-docs   # and the figures into docs/benchmarks.md

Not part of the test suite. Figures from moto on loopback show the shape
(requests per task, idle requests, latency from the poll cycle, concurrency),
not AWS's absolute speed; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

from benchmarks import backlog, dashboard, end_to_end, latency, publish, report
from benchmarks.common import STOCK, django_setup, local_sqs
from benchmarks.fastsqs import fast_sqs
from sqs_broker import settings as broker_settings

#: This project's defaults, read from sqs_broker.settings; the prefetch
#: multiplier is Celery's (the project does not change it).
PROJECT = {
    "polling_interval": broker_settings.DEFAULT_POLLING_INTERVAL,
    "wait_time_seconds": broker_settings.DEFAULT_WAIT_TIME_SECONDS,
    "prefetch_multiplier": 4,
}


def _row(name: str, *values: Any) -> str:
    return f"{name:<46}" + "".join(f"{v:>14}" for v in values)


def _f(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks and shorter windows")
    report.add_flag(parser)
    args = parser.parse_args(argv)
    quick = args.quick
    django_setup()
    load_before = os.getloadavg()
    started = time.monotonic()
    out: dict[str, Any] = {"stock": STOCK, "project": PROJECT}
    with local_sqs() as server:
        endpoint = server.endpoint_url
        print("publish ...", file=sys.stderr)
        out["publish"] = publish.run(endpoint, 60, 200, rounds=1 if quick else 3)
        out["publish_50ms"] = publish.run(endpoint, 20, 100, rounds=1, latency=0.05)
        print("end to end ...", file=sys.stderr)
        tasks = 100 if quick else 300
        e2e = out["end_to_end"] = {}
        e2e["stock_delay"] = end_to_end.worker_run(endpoint, **_opts(STOCK), publisher="delay",
                                                   tasks=tasks, transport="kombu")  # fmt: skip
        e2e["project_delay"] = end_to_end.worker_run(endpoint, **_opts(PROJECT),
                                                     publisher="delay", tasks=tasks)  # fmt: skip
        e2e["kombu_batch"] = end_to_end.worker_run(endpoint, **_opts(PROJECT), publisher="batch",
                                                   tasks=tasks, transport="kombu")  # fmt: skip
        e2e["project_batch"] = end_to_end.worker_run(endpoint, **_opts(PROJECT),
                                                     publisher="batch", tasks=tasks)  # fmt: skip
        e2e["project_batch_prefetch10"] = end_to_end.worker_run(
            endpoint, **{**_opts(PROJECT), "prefetch_multiplier": 10}, publisher="batch",
            tasks=tasks,
        )  # fmt: skip
        e2e["boto3_ceiling"] = end_to_end.boto3_ceiling(endpoint, tasks)
        print("latency and idle cost ...", file=sys.stderr)
        out["latency_idle"] = latency.run(
            endpoint,
            {"stock": {**STOCK, "transport": "kombu"}, "project": PROJECT},
            window=60 if quick else 240,
        )
        print("dashboard ...", file=sys.stderr)
        out["dashboard"] = dashboard.run(endpoint, repeats=1 if quick else 3)
    print("backlog (local-aws-sqs) ...", file=sys.stderr)
    with fast_sqs() as fast:
        out["backlog"] = backlog.run(fast, tasks=600 if quick else 2000, rounds=1 if quick else 2)
    out["seconds"] = time.monotonic() - started
    out["machine"] = {
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    print_table(out)
    print(json.dumps(out, sort_keys=True, default=str))
    if args.write_docs:
        report.write("run", doc_tables(out), report.Machine.since(load_before[0]))
    return 0


def _opts(config: dict[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in ("polling_interval", "wait_time_seconds", "prefetch_multiplier")}


E2E_LABELS = {
    "stock_delay": "kombu stock options, .delay()",
    "project_delay": "project defaults, .delay()",
    "kombu_batch": "kombu's transport, project defaults, publish_many",
    "project_batch": "project defaults, publish_many",
    "project_batch_prefetch10": "project defaults + prefetch 10, publish_many",
    "boto3_ceiling": "raw boto3: batch send/receive 10/batch delete",
}
BACKLOG_LABELS = {
    "kombu_defaults": "kombu's transport, project defaults",
    "kombu_polling_0": "kombu's transport, polling_interval 0",
    "project_transport": "project's transport, project defaults",
}


def doc_tables(out: dict[str, Any]) -> list[report.Table]:
    """The run's figures as docs/benchmarks.md shows them."""
    pub, slow = out["publish"], out["publish_50ms"]
    publish_rows = [
        [label, _f(pub[key]["tasks_per_s"], 0), _f(slow[key]["tasks_per_s"], 0),
         _f(pub[key]["requests_per_task"], 3)]
        for key, label in (("delay", "`.delay()` one by one"),
                           ("batch", "`publish_many` (batches of 10)"))
    ]  # fmt: skip
    e2e = out["end_to_end"]
    lat = out["latency_idle"]
    both = ("stock", "project")
    idle_rows = [
        ["pickup latency, mean",
         *(f"{lat[c]['latency']['mean_s'] * 1000:,.0f} ms" for c in both)],
        ["pickups above 100 ms",
         *(f"{lat[c]['latency']['share_over_100ms'] * 100:.1f} %" for c in both)],
        ["latency samples", *(lat[c]["latency"]["samples"] for c in both)],
        ["idle `ReceiveMessage` per queue per hour",
         *(_f(lat[c]["idle_receives_per_queue_hour"], 0) for c in both)],
        ["idle USD per queue per month ($0.40/M)",
         *(f"${lat[c]['idle_usd_per_queue_month']:.3f}" for c in both)],
    ]  # fmt: skip
    tasks = out["backlog"]["project_transport"]["tasks"]
    return [
        report.Table(["publish", "tasks/s", "+50 ms: tasks/s", "requests/task"], publish_rows),
        report.Table(
            ["end to end (one solo worker, trivial task)", "tasks/s", "requests/task"],
            [
                [label, _f(e2e[key]["tasks_per_s"], 0), _f(e2e[key]["requests_per_task"], 3)]
                for key, label in E2E_LABELS.items()
            ],
        ),  # fmt: skip
        report.Table(["idle worker", "stock", "project"], idle_rows),
        report.Table(
            [f"backlog ({tasks:,} tasks, prefork -c 2, local-aws-sqs)", "tasks/s", "requests/task"],
            [
                [
                    label,
                    _f(out["backlog"][key]["tasks_per_s"], 0),
                    _f(out["backlog"][key]["requests_per_task"], 3),
                ]
                for key, label in BACKLOG_LABELS.items()
            ],
        ),  # fmt: skip
        report.Table(
            ["dashboard (one pass over SQS)", "wall", "requests"],
            [
                [
                    f"{row['queues']} queue(s), +{row['added_latency_ms']:.0f} ms per request",
                    f"{row['wall_s'] * 1000:,.0f} ms",
                    row["requests"],
                ]
                for row in out["dashboard"].values()
            ],
        ),  # fmt: skip
    ]


def print_table(out: dict[str, Any]) -> None:
    lines = []
    pub = out["publish"]
    slow = out["publish_50ms"]
    lines.append(_row("PUBLISH", "tasks/s", "+50 ms: t/s", "requests/task"))
    for key, label in (("delay", ".delay() one by one"), ("batch", "publish_many (batches of 10)")):
        lines.append(_row(label, _f(pub[key]["tasks_per_s"], 0), _f(slow[key]["tasks_per_s"], 0),
                          _f(pub[key]["requests_per_task"], 3)))  # fmt: skip
    lines.append("")
    lines.append(_row("END TO END (one solo worker, trivial task)", "tasks/s", "requests/task"))
    for key, label in E2E_LABELS.items():
        row = out["end_to_end"][key]
        lines.append(_row(label, _f(row["tasks_per_s"], 0), _f(row["requests_per_task"], 3)))
    lines.append("")
    lines.append(_row("IDLE WORKER", "stock", "project"))
    lat = out["latency_idle"]
    both = ("stock", "project")
    lines.append(_row("pickup latency, mean", *(
        f"{lat[c]['latency']['mean_s'] * 1000:,.0f} ms" for c in both)))  # fmt: skip
    lines.append(_row("pickups above 100 ms", *(
        f"{lat[c]['latency']['share_over_100ms'] * 100:.1f} %" for c in both)))  # fmt: skip
    lines.append(_row("  samples", *(lat[c]["latency"]["samples"] for c in both)))
    lines.append(_row("idle ReceiveMessage per queue per hour", *(
        _f(lat[c]["idle_receives_per_queue_hour"], 0) for c in ("stock", "project"))))  # fmt: skip
    lines.append(_row("idle USD per queue per month ($0.40/M)", *(
        f"${lat[c]['idle_usd_per_queue_month']:.3f}" for c in ("stock", "project"))))  # fmt: skip
    lines.append("")
    lines.append(_row("BACKLOG (2,000 tasks, prefork -c 2, local-aws-sqs)", "tasks/s",
                      "requests/task"))  # fmt: skip
    for key, label in BACKLOG_LABELS.items():
        row = out["backlog"][key]
        lines.append(_row(label, _f(row["tasks_per_s"], 0), _f(row["requests_per_task"], 3)))
    lines.append("")
    lines.append(_row("DASHBOARD (one pass over SQS)", "wall", "requests"))
    for row in out["dashboard"].values():
        label = f"{row['queues']} queue(s), +{row['added_latency_ms']:.0f} ms per request"
        lines.append(_row(label, f"{row['wall_s'] * 1000:,.0f} ms", row["requests"]))
    lines.append("")
    machine = out["machine"]
    lines.append(
        f"stock = polling_interval {STOCK['polling_interval']}, wait_time_seconds "
        f"{STOCK['wait_time_seconds']}, prefetch {STOCK['prefetch_multiplier']}; project = "
        f"polling_interval {PROJECT['polling_interval']}, wait_time_seconds "
        f"{PROJECT['wait_time_seconds']}, prefetch {PROJECT['prefetch_multiplier']}"
    )
    lines.append(
        f"{out['seconds']:.0f} s on {machine['cpus']} CPUs, load average before "
        f"{machine['load_before'][0]} after {machine['load_after'][0]}"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
