"""Run every benchmark on one fresh local SQS; print a table and one JSON line.

    .venv/bin/python -m benchmarks.run            # about 4 minutes
    .venv/bin/python -m benchmarks.run --quick    # fewer tasks, shorter windows

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

from benchmarks import dashboard, end_to_end, latency, publish
from benchmarks.common import STOCK, django_setup, local_sqs
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
                                                   tasks=tasks)  # fmt: skip
        e2e["project_delay"] = end_to_end.worker_run(endpoint, **_opts(PROJECT),
                                                     publisher="delay", tasks=tasks)  # fmt: skip
        e2e["project_batch"] = end_to_end.worker_run(endpoint, **_opts(PROJECT),
                                                     publisher="batch", tasks=tasks)  # fmt: skip
        e2e["project_batch_prefetch10"] = end_to_end.worker_run(
            endpoint, **{**_opts(PROJECT), "prefetch_multiplier": 10}, publisher="batch",
            tasks=tasks,
        )  # fmt: skip
        e2e["boto3_ceiling"] = end_to_end.boto3_ceiling(endpoint, tasks)
        print("latency and idle cost ...", file=sys.stderr)
        out["latency_idle"] = latency.run(
            endpoint, {"stock": STOCK, "project": PROJECT}, window=40 if quick else 90
        )
        print("dashboard ...", file=sys.stderr)
        out["dashboard"] = dashboard.run(endpoint, repeats=1 if quick else 3)
    out["seconds"] = time.monotonic() - started
    out["machine"] = {
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    print_table(out)
    print(json.dumps(out, sort_keys=True, default=str))
    return 0


def _opts(config: dict[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in ("polling_interval", "wait_time_seconds", "prefetch_multiplier")}


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
    labels = {
        "stock_delay": "kombu stock options, .delay()",
        "project_delay": "project defaults, .delay()",
        "project_batch": "project defaults, publish_many",
        "project_batch_prefetch10": "project defaults + prefetch 10, publish_many",
        "boto3_ceiling": "raw boto3: batch send/receive 10/batch delete",
    }
    for key, label in labels.items():
        row = out["end_to_end"][key]
        lines.append(_row(label, _f(row["tasks_per_s"], 0), _f(row["requests_per_task"], 3)))
    lines.append("")
    lines.append(_row("IDLE WORKER", "stock", "project"))
    lat = out["latency_idle"]
    for kind in ("1q", "3q"):
        for stat in ("p50_s", "p95_s"):
            values = [
                f"{lat[c][f'latency_{kind}'][stat] * 1000:,.0f} ms" for c in ("stock", "project")
            ]
            lines.append(_row(f"pickup latency {kind[0]} queue(s), {stat[:3]}", *values))
    lines.append(_row("  samples (1 queue / 3 queues)", *(
        f"{lat[c]['latency_1q']['samples']} / {lat[c]['latency_3q']['samples']}"
        for c in ("stock", "project"))))  # fmt: skip
    lines.append(_row("idle ReceiveMessage per queue per hour", *(
        _f(lat[c]["idle_receives_per_queue_hour"], 0) for c in ("stock", "project"))))  # fmt: skip
    lines.append(_row("idle USD per queue per month ($0.40/M)", *(
        f"${lat[c]['idle_usd_per_queue_month']:.3f}" for c in ("stock", "project"))))  # fmt: skip
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
