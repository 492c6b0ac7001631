"""What a dead-letter breakdown costs: SQS calls, time, receive counts; and a default move.

Run:  .venv/bin/python -m benchmarks.triage_sample [--rtt 0.05] [--messages 10 100 300]

A local SQS (moto) behind a loopback proxy that adds ``--rtt`` seconds per
request. For each size, a dead-letter queue holds that many Celery messages,
half of them with a stored SUCCESS result (django-celery-results, in a
throw-away SQLite database). It prints, for :func:`sqs_broker.triage.breakdown`
(at most 100 messages sampled), the SQS calls by action, the time, and how
much each message's ``ApproximateReceiveCount`` rose; then the same for a
default move back (:mod:`sqs_broker.moves`, which leaves the succeeded half).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
_DATABASE = Path(tempfile.mkdtemp()) / "triage-bench.sqlite3"
os.environ["DATABASE_URL"] = f"sqlite:///{_DATABASE}"

import boto3  # noqa: E402
import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import override_settings  # noqa: E402

from benchmarks.dashboard_fetch import make_app  # noqa: E402
from sqs_broker import actions, moves, triage  # noqa: E402
from tests.support import localserver  # noqa: E402
from tests.support.proxy import Proxy  # noqa: E402


def _receive_counts(client: object, url: str) -> list[int]:
    """How much each message's receive count rose, read by receiving each once more (released)."""
    found: dict[str, int] = {}
    handles = []
    while True:
        got = client.receive_message(  # type: ignore[attr-defined]
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, AttributeNames=["All"]
        ).get("Messages", [])
        fresh = [m for m in got if m["MessageId"] not in found]
        if not fresh:
            break
        for m in fresh:
            found[m["MessageId"]] = int(m["Attributes"]["ApproximateReceiveCount"]) - 1
            handles.append(m["ReceiptHandle"])
    for start in range(0, len(handles), 10):  # visible again for the move that follows
        client.change_message_visibility_batch(  # type: ignore[attr-defined]
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for i, h in enumerate(handles[start : start + 10])
            ],
        )
    return sorted(found.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, default=0.05, help="seconds added per request")
    parser.add_argument("--messages", type=int, nargs="+", default=[10, 100, 300])
    args = parser.parse_args()
    logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    from django_celery_results.models import TaskResult

    endpoint = localserver.ensure()
    client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    print(f"round-trip added by the proxy: {args.rtt * 1000:.0f} ms")
    print(
        "| dead letters | breakdown: sampled | SQS calls | time | receive count rise "
        "| default move: moved / left | SQS calls | time |"
    )
    print("|---:|---:|---|---:|---|---:|---|---:|")
    with Proxy.to(endpoint, delay=args.rtt) as proxy:
        for count in args.messages:
            prefix = f"b{uuid.uuid4().hex[:6]}-"
            source = client.create_queue(QueueName=f"{prefix}celery")["QueueUrl"]
            dlq_url = client.create_queue(QueueName=f"{prefix}celery-dlq")["QueueUrl"]
            arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
            policy = f'{{"deadLetterTargetArn": "{arn["Attributes"]["QueueArn"]}", '
            policy += '"maxReceiveCount": "5"}'
            client.set_queue_attributes(QueueUrl=source, Attributes={"RedrivePolicy": policy})
            app = make_app(proxy.endpoint_url, prefix)
            for i in range(count):
                task_id = app.send_task("bench.task", queue="celery-dlq").id
                if i % 2 == 0:
                    TaskResult.objects.create(task_id=task_id, status="SUCCESS", result="1")
            with override_settings(SQS_BROKER_CELERY_APP=app):
                source_state = actions.owned_state(f"{prefix}celery", app)
                assert source_state is not None
                dlq = actions.dead_letter_state(source_state, app)
                assert dlq is not None
                proxy.reset_counts()
                started = time.perf_counter()
                found = triage.breakdown(dlq, app)
                sampling = time.perf_counter() - started
                sample_calls = dict(proxy.reset_counts())
                rise = _receive_counts(client, dlq_url)
                proxy.reset_counts()
                started = time.perf_counter()
                record = moves.start(dlq, source_state, app, limit=10_000)
                while record["state"] == "running":
                    record = moves.step(record["id"], app)
                moving = time.perf_counter() - started
                move_calls = dict(proxy.reset_counts())
            rises = f"{rise.count(1)}×1, {rise.count(0)}×0"
            print(
                f"| {count} | {found['sampled']} | {_calls(sample_calls)} | {sampling:.2f} s "
                f"| {rises} | {record['moved']} / {len(record['succeeded'])} "
                f"| {_calls(move_calls)} | {moving:.2f} s |"
            )


def _calls(counts: dict[str, int]) -> str:
    return ", ".join(f"{action} {n}" for action, n in sorted(counts.items()))


if __name__ == "__main__":
    main()
