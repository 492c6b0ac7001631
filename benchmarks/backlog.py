"""Backlog throughput and worker-side requests per task: a prefork worker (``-c 2``) draining.

    .venv/bin/python -m benchmarks.backlog [TASKS] [ROUNDS]    # default 2000 tasks, 1 round

What it measures, per configuration: tasks/s from the worker's first receipt to
its last success but :data:`TAIL` (both read from the worker's log, the same way
for every broker), and the worker's SQS requests per task, counted at a proxy (a process
of its own) after the backlog was published. The floor is 0.2: 10 messages per
ReceiveMessage and 10 per DeleteMessageBatch.

``BACKLOG_CASES=project,redis`` runs only the configurations named.

The configurations: kombu's own transport (``SQS_TRANSPORT=kombu``) at kombu's
polling defaults; the
project's transport with telemetry off and results in memory (as Redis runs
here), at the example project's defaults (telemetry on, results in the
database), at prefetch 10, and with 20 ms added to every request; Celery on the
local Redis (127.0.0.1:6379) with the same pool and settings. They take turns,
round after round, on one server, so a change of machine load hits them alike.
The server is ``local-aws-sqs`` (:mod:`benchmarks.fastsqs`): moto drains about
40 messages/s and would measure itself.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from datetime import datetime
from typing import Any

import sqs_broker.cache
from benchmarks.common import (
    ADD,
    STOCK,
    ProxyProcess,
    env_for,
    make_app,
    publish,
    sqs_client,
    start_worker,
    unique,
)

#: Each configuration: variables on top of the benchmark's, the prefetch multiplier,
#: the delay added per request, and the share of the tasks it runs (kombu's is slow).
CASES: dict[str, dict[str, Any]] = {
    # kombu's own transport at kombu's own polling defaults (benchmarks.common.STOCK).
    "kombu": {
        "vars": {
            "SQS_TRANSPORT": "kombu",
            "SQS_POLLING_INTERVAL": STOCK["polling_interval"],
            "SQS_WAIT_TIME_SECONDS": STOCK["wait_time_seconds"],
        },
        "share": 0.1,
    },
    "project": {"vars": {}},
    "project_defaults": {"vars": {}, "defaults": True},
    "project_defaults_prefetch10": {"vars": {}, "defaults": True, "prefetch": 5},
    "project_defaults_delay20ms": {"vars": {}, "defaults": True, "delay": 0.02},
    "redis": {"vars": {}, "redis": True},
}
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")

_SUCCEEDED = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/[\w-]+\] Task \S+\[[0-9a-f-]{36}\] succeeded",
    re.MULTILINE,
)


#: The last tasks are left out of the rate: local-aws-sqs answers a long poll only when it
#: can fill MaxNumberOfMessages (or the wait ends), where SQS answers as soon as any
#: message is there, so the last partial batch waits out a long poll on this server alone.
TAIL = 10


def _successes(output: str) -> list[float]:
    stamps = _SUCCEEDED.findall(output)
    return sorted(datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp() for s in stamps)


def _round(endpoint: str, case: dict[str, Any], tasks: int) -> dict[str, Any]:
    tasks = max(50, int(tasks * case.get("share", 1.0)))
    with ProxyProcess(endpoint, delay=case.get("delay", 0.0)) as proxy:
        prefix = unique("bl") + "-"
        env = env_for(proxy.endpoint_url, prefix, **case["vars"])
        if case.get("defaults"):
            # The example project's defaults: telemetry on, results in its database.
            del env["SQS_BROKER_TELEMETRY"], env["CELERY_RESULT_BACKEND"]
        if case.get("redis"):
            env["CELERY_BROKER_URL"] = REDIS_URL
        app = make_app(env)
        sqs_broker.cache.reset()
        if case.get("redis"):
            with app.connection_for_write() as connection:
                connection.default_channel.client.delete("celery")
                with app.producer_or_acquire() as producer:
                    for n in range(tasks):
                        app.send_task(ADD, args=(n, n), producer=producer)
        else:
            publish([app.signature(ADD, args=(n, n)) for n in range(tasks)], "batch", app)
        proxy.reset_counts()
        worker = start_worker(
            env, pool="prefork", concurrency=2, prefetch_multiplier=case.get("prefetch", 4)
        )
        try:
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                done = _successes(worker.output())
                if len(done) >= tasks:
                    break
                if worker.process.poll() is not None:
                    raise RuntimeError(f"worker exited:\n{worker.output()[-3000:]}")
                time.sleep(0.2)
            else:
                raise RuntimeError(f"backlog not drained:\n{worker.output()[-3000:]}")
            received = worker.received()
        finally:
            worker.stop()
        counts = proxy.reset_counts()
    if not case.get("redis"):
        url = sqs_client(endpoint).get_queue_url(QueueName=f"{prefix}celery")["QueueUrl"]
        sqs_client(endpoint).delete_queue(QueueUrl=url)
    elapsed = done[tasks - TAIL - 1] - min(received.values())
    worker_requests = sum(n for action, n in counts.items() if action != "SendMessageBatch")
    return {
        "tasks": tasks,
        "tasks_per_s": (tasks - TAIL) / elapsed,
        "requests_per_task": None if case.get("redis") else worker_requests / tasks,
        "requests": dict(counts),
    }


def migrate(endpoint: str) -> None:
    """Create the tables of the database the workers use (results, telemetry)."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from benchmarks.common import ROOT

    database = Path(tempfile.gettempdir()) / "sqs-broker-bench.sqlite3"
    env = {
        **env_for(endpoint, "migrate-"),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
        "DATABASE_URL": f"sqlite:///{database}",
    }
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
    )


def run(endpoint: str, tasks: int = 2000, rounds: int = 1) -> dict[str, Any]:
    """Median tasks/s and worker-side requests per task of each case, the cases alternating."""
    import sys

    migrate(endpoint)
    chosen = os.environ.get("BACKLOG_CASES")
    names = chosen.split(",") if chosen else list(CASES)
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            row = _round(endpoint, CASES[name], tasks)
            print(name, row, file=sys.stderr, flush=True)
            found[name].append(row)
    results = {}
    for name, rows in found.items():
        per_task = [r["requests_per_task"] for r in rows if r["requests_per_task"] is not None]
        results[name] = {
            "tasks": rows[0]["tasks"],
            "rounds": rounds,
            "tasks_per_s": statistics.median(r["tasks_per_s"] for r in rows),
            "requests_per_task": statistics.median(per_task) if per_task else None,
            "each_round": rows,
        }
    return results


def table(results: dict[str, Any]) -> str:
    """The figures as a table, with the ratios the goals name."""
    redis = results["redis"]["tasks_per_s"] if "redis" in results else float("nan")
    kombu = results["kombu"]["tasks_per_s"] if "kombu" in results else float("nan")
    lines = [
        f"{'configuration':32} {'tasks':>6} {'tasks/s':>8} {'req/task':>9} "
        f"{'x kombu':>8} {'x redis':>8}"
    ]
    for name, row in results.items():
        per_task = row["requests_per_task"]
        lines.append(
            f"{name:32} {row['tasks']:>6} {row['tasks_per_s']:>8.1f} "
            f"{'-' if per_task is None else f'{per_task:.3f}':>9} "
            f"{row['tasks_per_s'] / kombu:>8.1f} {row['tasks_per_s'] / redis:>8.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    from benchmarks.common import django_setup
    from benchmarks.fastsqs import fast_sqs

    django_setup()
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with fast_sqs() as server:
        out = run(server, tasks=count, rounds=rounds)
    print(json.dumps(out, indent=1, default=str))
    print(f"\n.venv/bin/python -m benchmarks.backlog {count} {rounds}   (load: {os.getloadavg()})")
    print(table(out))
