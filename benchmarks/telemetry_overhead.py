"""What worker telemetry costs: throughput of no-op tasks with SQS_BROKER_TELEMETRY on and off.

On a local SQS (moto's server on 127.0.0.1), each run publishes N no-op tasks
(``project.demo.tasks.add``, results ignored) to a fresh queue, starts one
``celery -A project worker``, and times from the first receive (the queue's
visible count drops) to the queue being empty (nothing visible or in flight).
Runs alternate off/on so drift in machine load hits both sides alike; the
figure is the ratio of the median throughputs. Prints a table, then one JSON
line. A script, not a test::

    .venv/bin/python benchmarks/telemetry_overhead.py            # 2,000 tasks, 3 runs each
    .venv/bin/python benchmarks/telemetry_overhead.py --tasks 500 --runs 1   # a quick look
    .venv/bin/python benchmarks/telemetry_overhead.py --write-docs   # and into docs/benchmarks.md

The database is a fresh SQLite file in a temporary directory (WAL, as the
example project configures it). After every telemetry-on run the script
checks that the workers' counters add up to N, so the "on" runs did record.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per run (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (default 3)")
    parser.add_argument("--pool", default="prefork", help="worker pool (default prefork)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker concurrency (default 2)")
    parser.add_argument(
        "--interval",
        type=float,
        default=10.0,
        help="SQS_BROKER_TELEMETRY_INTERVAL of the workers, seconds (default 10)",
    )
    from benchmarks import report

    report.add_flag(parser)
    return parser.parse_args()


def setup(tmp: Path, endpoint: str) -> dict[str, str]:
    """The environment shared by this process and the workers; migrates the database."""
    from sqs_broker.localsqs import LOCAL_ENV

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQS_", "CELERY_"))}
    env.update(LOCAL_ENV)
    env.update(
        {
            "SQS_ENDPOINT_URL": endpoint,
            "SQS_WAIT_TIME_SECONDS": "1",
            "SQS_POLLING_INTERVAL": "0.1",
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_SECRET_KEY": "benchmark-" + "x" * 40,
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
            "SQS_BROKER_TELEMETRY": "false",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return env


def celery_app(env: dict[str, str]) -> Any:
    from celery import Celery

    from sqs_broker.settings import celery_settings

    app = Celery("bench", set_as_current=False)
    app.config_from_object(
        {k.removeprefix("CELERY_").lower(): v for k, v in celery_settings(env).items()}
    )
    return app


def depth(client: Any, url: str) -> tuple[int, int]:
    attributes = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def one_run(base: dict[str, str], telemetry: bool, args: argparse.Namespace, tmp: Path) -> float:
    """Seconds to drain ``args.tasks`` no-op tasks through one worker."""
    from sqs_broker import sqs
    from sqs_broker.publishing import publish_many
    from sqs_broker.topology import Topology

    prefix = f"b{uuid.uuid4().hex[:8]}-"
    env = {
        **base,
        "SQS_QUEUE_NAME_PREFIX": prefix,
        "SQS_BROKER_TELEMETRY": "true" if telemetry else "false",
        "SQS_BROKER_TELEMETRY_INTERVAL": str(args.interval),
    }
    app = celery_app(env)
    signature = app.signature("project.demo.tasks.add", args=(0, 0))
    publish_many([signature.clone() for _ in range(args.tasks)], app=app, ignore_result=True)
    client = sqs.client(None, Topology.of(app))
    url = client.get_queue_url(QueueName=f"{prefix}celery")["QueueUrl"]
    assert depth(client, url) == (args.tasks, 0), depth(client, url)

    log = (tmp / f"worker-{prefix}log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "project", "worker",
            f"--pool={args.pool}", f"--concurrency={args.concurrency}", "-Q", "celery",
            "--loglevel=WARNING", "-n", f"bench-{prefix}@%h",
            "--without-heartbeat", "--without-mingle", "--without-gossip",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while depth(client, url)[0] >= args.tasks:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start; see {log.name}")
            time.sleep(0.02)
        started = time.monotonic()
        while depth(client, url) != (0, 0):
            if worker.poll() is not None or time.monotonic() > deadline + 1200:
                raise RuntimeError(f"worker stopped before the queue drained; see {log.name}")
            # Not faster: moto counts a queue's messages one by one, and this
            # polling must not slow the server the worker is measured against.
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
    if telemetry:
        from django.db.models import Sum

        from sqs_broker.models import TaskCounter

        counted = TaskCounter.objects.filter(queue=f"{prefix}celery").aggregate(s=Sum("succeeded"))[
            "s"
        ]
        if counted != args.tasks:
            raise RuntimeError(f"telemetry counted {counted} of {args.tasks} tasks")
    return elapsed


def recorder_cost(n: int = 100_000) -> float:
    """Microseconds one task costs the recorder in memory (received, started, finished)."""
    from sqs_broker.telemetry.recorder import Recorder

    recorder = Recorder("bench@local", 3600.0)
    started = time.perf_counter()
    for i in range(n):
        task_id = str(i)
        recorder.received("project.demo.tasks.add", "celery", 1)
        recorder.started(task_id)
        recorder.finished(task_id, "project.demo.tasks.add", "celery", "SUCCESS")
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    args = parse()
    from sqs_broker.localsqs import LocalSQS

    load_before = os.getloadavg()
    results: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp_name, LocalSQS() as local:
        tmp = Path(tmp_name)
        base = setup(tmp, local.endpoint_url)
        print(f"{'run':>3}  {'telemetry':<9}  {'seconds':>8}  {'tasks/s':>8}")
        for run in range(args.runs):
            for telemetry in (False, True):
                elapsed = one_run(base, telemetry, args, tmp)
                results[telemetry].append(args.tasks / elapsed)
                label = "on" if telemetry else "off"
                print(f"{run + 1:>3}  {label:<9}  {elapsed:>8.2f}  {args.tasks / elapsed:>8.1f}")
        cost = recorder_cost()
    off = statistics.median(results[False])
    on = statistics.median(results[True])
    ratio = on / off
    load_after = os.getloadavg()
    print(f"median tasks/s: off {off:.1f}, on {on:.1f}; on/off {ratio:.3f}")
    print(f"overhead {100 * (1 - ratio):+.1f} % (goal <= 3 %)")
    print(f"recorder cost per task, in memory: {cost:.1f} µs")
    print(f"load average (1 min): {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if args.write_docs:
        from benchmarks import report

        runs = [
            [run + 1, f"{off_run:.1f}", f"{on_run:.1f}"]
            for run, (off_run, on_run) in enumerate(zip(results[False], results[True], strict=True))
        ]
        summary = [
            ["median tasks/s, telemetry off / on", f"{off:.1f} / {on:.1f}"],
            ["overhead (goal: at most 3 %)", f"{100 * (1 - ratio):+.1f} %"],
            ["recorder cost per task, in memory", f"{cost:.1f} µs"],
        ]
        title = (
            f"{args.tasks:,} no-op tasks per run, {args.pool} pool, concurrency "
            f"{args.concurrency}, telemetry interval {args.interval:g} s."
        )
        report.write(
            "telemetry_overhead",
            [
                report.Table(["run", "tasks/s, telemetry off", "tasks/s, on"], runs, title=title),
                report.Table(["telemetry overhead", "measured"], summary),
            ],
            report.Machine(load_before=load_before[0], load_after=load_after[0]),
        )
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "runs": args.runs,
                "pool": args.pool,
                "concurrency": args.concurrency,
                "interval": args.interval,
                "throughput_off": [round(x, 1) for x in results[False]],
                "throughput_on": [round(x, 1) for x in results[True]],
                "median_off": round(off, 1),
                "median_on": round(on, 1),
                "ratio": round(ratio, 4),
                "overhead_pct": round(100 * (1 - ratio), 2),
                "recorder_us_per_task": round(cost, 2),
                "load_1min": [round(load_before[0], 2), round(load_after[0], 2)],
            }
        )
    )


if __name__ == "__main__":
    main()
