"""Large messages: the latency and cost of a task offloaded to S3 beside one sent inline.

On a local moto server (SQS and S3 on one port), one task at a time goes
through the three steps a task's message takes: publish (``send_task``
through the publish guard), receive and resolve (``ReceiveMessage`` and, for
a pointer, the worker side's S3 ``GetObject``), acknowledge (``DeleteMessage``
and, for a pointer, ``DeleteObjects``). Three kinds take turns: a small task,
the same 200 KB argument sent inline, and that argument offloaded (a threshold
of 0 forces it to S3); then a 3 MB argument, which only offloading can send.
The figures are medians per step; the requests are counted on the clients,
and the cost per million tasks follows from them and the list prices below.
Against a local server the S3 steps cost what moto costs; on AWS add a round
trip to S3 (typically 10-30 ms) per step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.common import ADD, django_setup, env_for, local_sqs, make_app, unique
from tests.support.queues import drain

#: us-east-1 list prices, dollars: SQS per million requests (each 64 KiB of a
#: message counts as one), S3 per thousand PUTs and GETs (DELETE is free).
SQS_PER_MILLION = 0.40
S3_PUT_PER_THOUSAND = 0.005
S3_GET_PER_THOUSAND = 0.0004
CHUNK = 65_536
#: Where the figures were measured, by ``--servers``.
SERVERS = {
    "moto": "local moto server",
    "node": "local-aws-sqs and s3rver (Node.js)",
}
#: The page that explains offloading: it shows the figures too.
PUBLISHING = report.ROOT / "docs" / "publishing.md"


def _counting(client: Any, counts: Counter[str]) -> None:
    if getattr(client, "_bench_counted", False):
        return
    client.meta.events.register(
        f"before-call.{client.meta.service_model.service_name}",
        lambda model, **_: counts.update([model.name]),
    )
    client._bench_counted = True


def _one(app: Any, sqs: Any, url: str, args: tuple[Any, ...]) -> dict[str, float]:
    from sqs_broker.transport import payloads as worker_side

    times: dict[str, float] = {}
    started = time.perf_counter()
    app.send_task(ADD, args=args)
    times["publish"] = time.perf_counter() - started
    started = time.perf_counter()
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=5)[
        "Messages"
    ]
    body = worker_side.body_of(message)
    times["receive"] = time.perf_counter() - started
    assert len(body) > 0
    started = time.perf_counter()
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    worker_side.acknowledged([message["ReceiptHandle"]])
    times["ack"] = time.perf_counter() - started
    times["sqs_bytes"] = len(message["Body"].encode())
    return times


@contextmanager
def _servers(kind: str) -> Iterator[tuple[str, str]]:
    """The SQS and S3 endpoints: moto (both on one port) or local-aws-sqs and s3rver."""
    if kind == "moto":
        with local_sqs() as server:
            yield server.endpoint_url, server.endpoint_url
        return
    from sqs_broker.localsqs import LOCAL_ENV
    from tests.support import nodeaws

    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    with tempfile.TemporaryDirectory() as data, nodeaws.servers(Path(data)) as found:
        yield found.sqs, found.s3


def run(tasks: int = 20, servers: str = "moto") -> dict[str, Any]:
    """Medians per kind and step, and the requests each kind took per task.

    ``servers`` is ``moto`` or ``node`` (``local-aws-sqs`` and ``s3rver``).
    """
    import boto3
    from botocore.config import Config
    from django.test import override_settings

    from sqs_broker import payloads, publishing

    django_setup()
    kinds = {
        "small, inline": ((1, 2), None),
        "200 KB, inline": (("a" * 200_000, "y"), None),
        "200 KB, offloaded": (("a" * 200_000, "y"), 0),
        "3 MB, offloaded": (("a" * 3_000_000, "y"), 0),
    }
    out: dict[str, Any] = {"tasks": tasks, "servers": servers, "kinds": {}}
    with _servers(servers) as (endpoint, s3_endpoint):
        bucket = unique("bench")
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        s3.create_bucket(Bucket=bucket)
        payloads.forget_clients()
        client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        samples: dict[str, dict[str, list[float]]] = {k: {} for k in kinds}
        counts: dict[str, Counter[str]] = {k: Counter() for k in kinds}
        seen: Counter[str] = Counter()  # every S3 call, by operation
        sizes: dict[str, float] = {}
        prefix = unique("pl") + "-"
        app = make_app(env_for(endpoint, prefix))
        publishing.install(app)
        app.send_task(ADD, args=(0, 0))  # the queue, the pooled connection, the size lookup
        url = client.get_queue_url(QueueName=f"{prefix}celery")["QueueUrl"]
        # Taken off the queue, not purged: local-aws-sqs still delivers a message sent just
        # before PurgeQueue (AWS allows a purge 60 s), and each step would then receive the
        # message sent before its own.
        for message in drain(client, url):
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        for _ in range(tasks):
            for kind, (args, threshold) in kinds.items():
                with override_settings(
                    SQS_BROKER_LARGE_PAYLOAD_BUCKET=bucket,
                    SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL=s3_endpoint,
                    SQS_BROKER_LARGE_PAYLOAD_THRESHOLD=threshold,
                ):
                    _counting(payloads.s3_client(app), seen)
                    before = Counter(seen)
                    times = _one(app, client, url, args)
                    counts[kind].update(seen - before)
                sizes[kind] = times.pop("sqs_bytes")
                for step, value in times.items():
                    samples[kind].setdefault(step, []).append(value)
        left = s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
        if left:  # every task was acknowledged: its object must be gone
            raise RuntimeError(f"{left} stored bodies were left in the bucket")
        s3.delete_bucket(Bucket=bucket)
        payloads.forget_clients()
    for kind in kinds:
        s3_calls = {k: v / tasks for k, v in counts[kind].items()}
        sqs_requests = 2 * -(-int(sizes[kind]) // CHUNK) + 1  # send and receive per 64 KiB, delete
        cost = sqs_requests * SQS_PER_MILLION
        cost += s3_calls.get("PutObject", 0) * S3_PUT_PER_THOUSAND * 1000
        cost += s3_calls.get("GetObject", 0) * S3_GET_PER_THOUSAND * 1000
        out["kinds"][kind] = {
            "ms": {step: statistics.median(v) * 1000 for step, v in samples[kind].items()},
            "sqs_body_bytes": int(sizes[kind]),
            "s3_calls_per_task": s3_calls,
            "billed_sqs_requests_per_task": sqs_requests,
            "dollars_per_million_tasks": cost,
        }
    return out


def doc_tables(out: dict[str, Any]) -> list[report.Table]:
    rows = []
    for kind, figures in out["kinds"].items():
        ms = figures["ms"]
        calls = figures["s3_calls_per_task"]
        s3 = ", ".join(f"{name} {count:g}" for name, count in sorted(calls.items())) or "none"
        rows.append(
            [
                kind,
                f"{figures['sqs_body_bytes']:,}",
                f"{ms['publish']:.1f}",
                f"{ms['receive']:.1f}",
                f"{ms['ack']:.1f}",
                s3,
                figures["billed_sqs_requests_per_task"],
                f"{figures['dollars_per_million_tasks']:.2f}",
            ]
        )
    return [
        report.Table(
            [
                "task",
                "SQS body bytes",
                "publish ms",
                "receive + resolve ms",
                "ack ms",
                "S3 calls per task",
                "billed SQS requests",
                "$ per million tasks",
            ],
            rows,
            title=f"Medians of {out['tasks']} tasks per kind, one at a time, "
            + SERVERS[out.get("servers", "moto")]
            + ".",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20, help="tasks per kind (default 20)")
    parser.add_argument(
        "--servers",
        choices=sorted(SERVERS),
        default="moto",
        help="moto (default), or node: local-aws-sqs and s3rver, installed with npm on first use",
    )
    report.add_flag(parser)
    args = parser.parse_args()
    load_before = report.load_now()
    out = run(args.tasks, args.servers)
    print(json.dumps(out, indent=2))
    if args.write_docs:
        machine = report.Machine.since(load_before)
        if args.servers == "node":
            report.write("payloads-node", doc_tables(out), machine)
            return
        report.write("payloads", doc_tables(out), machine)
        # The same figures where the feature is explained, so neither page is copied by hand.
        report.write("payloads", doc_tables(out), machine, page=PUBLISHING)


if __name__ == "__main__":
    main()
