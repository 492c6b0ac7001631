"""How long the dashboard's SQS pass takes, and how many SQS calls a reload storm costs.

Run:  .venv/bin/python -m benchmarks.dashboard_fetch [--rtt 0.05] [--queues 1 10 100] [--write-docs]

A local SQS (moto) behind a loopback proxy that adds ``--rtt`` seconds per
request, so one SQS round-trip costs about that much. For each queue count it
measures one uncached :func:`sqs_broker.stats.sqs_pass` (discovery, attributes
of every queue, dead-letter queues), first with a pool of 16 threads and then
with the default pool (SQS_BROKER_MAX_WORKERS=100: a thread per queue); then, from a
cold cache again, it fires 50 concurrent passes (a reload storm) and counts the
SQS calls the proxy saw.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import boto3  # noqa: E402
import django  # noqa: E402

django.setup()

from celery import Celery  # noqa: E402
from django.test import override_settings  # noqa: E402

import sqs_broker.cache  # noqa: E402
from benchmarks import report  # noqa: E402
from sqs_broker import stats  # noqa: E402
from sqs_broker.conf import app_settings  # noqa: E402
from sqs_broker.settings import celery_settings  # noqa: E402
from sqs_broker.topology import Topology  # noqa: E402
from tests.support import localserver  # noqa: E402
from tests.support.proxy import Proxy  # noqa: E402


def make_app(endpoint: str, prefix: str) -> Celery:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SQS_", "CELERY_"))},
        "SQS_ENDPOINT_URL": endpoint,
        "SQS_QUEUE_NAME_PREFIX": prefix,
    }
    app = Celery("bench", set_as_current=False)
    app.config_from_object(
        {k.removeprefix("CELERY_").lower(): v for k, v in celery_settings(env).items()}
    )
    return app


def timed_pass(app: Celery, workers: int) -> float:
    sqs_broker.cache.reset()
    with override_settings(SQS_BROKER_MAX_WORKERS=workers, SQS_BROKER_GATHER_TIMEOUT=120):
        started = time.perf_counter()
        found = stats.sqs_pass(Topology.of(app))
        elapsed = time.perf_counter() - started
    errors = [s.error for s in found.states if s.error]
    assert not errors, errors[:3]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, default=0.05, help="seconds added per request")
    parser.add_argument("--queues", type=int, nargs="+", default=[1, 10, 100],
                        help="queue counts (default 1 10 100)")  # fmt: skip
    report.add_flag(parser)
    args = parser.parse_args()
    load_before = report.load_now()
    rows: list[list[object]] = []
    logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
    # tests.settings only picks the address; the server starts here (and stops at exit).
    endpoint = localserver.ensure()
    client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    print(f"round-trip added by the proxy: {args.rtt * 1000:.0f} ms")
    headers = ["queues", "one pass, 16 threads", "one pass, default pool (100 threads)",
               "50 concurrent loads: SQS calls"]  # fmt: skip
    print("| " + " | ".join(headers) + " |")
    print("|---:|---:|---:|---:|")
    with Proxy.to(endpoint, delay=args.rtt) as proxy:
        for count in args.queues:
            prefix = f"b{uuid.uuid4().hex[:6]}-"
            for i in range(count - 1):  # the app's default queue makes one more
                client.create_queue(QueueName=f"{prefix}q{i:03d}")
            client.create_queue(QueueName=f"{prefix}celery")
            app = make_app(proxy.endpoint_url, prefix)
            pooled = timed_pass(app, 16)
            wide = timed_pass(app, app_settings.MAX_WORKERS)
            sqs_broker.cache.reset()
            proxy.reset_counts()
            with (
                override_settings(SQS_BROKER_CACHE_TTL=30),
                ThreadPoolExecutor(max_workers=50) as pool,
            ):
                list(pool.map(stats.sqs_pass, [Topology.of(app)] * 50))
            calls = sum(proxy.reset_counts().values())
            rows.append([count, f"{pooled:.2f} s", f"{wide:.2f} s", calls])
            print("| " + " | ".join(map(str, rows[-1])) + " |")
    if args.write_docs:
        title = f"{args.rtt * 1000:.0f} ms added to every SQS request by the proxy."
        table = report.Table(headers, rows, title=title)
        report.write("dashboard_fetch", [table], report.Machine.since(load_before))


if __name__ == "__main__":
    main()
