"""End to end: tasks/s through one worker, and SQS requests per task counted at the server.

Configurations: kombu's stock options and transport with ``.delay()``, this
project's defaults with ``publish_many`` on kombu's transport and on the
project's (batched deletes), and a raw boto3 loop (batch send, receive 10,
batch delete) as the ceiling of the same server. Every SQS request of the
publisher and the worker goes through one counting proxy; the queue is
watched directly (not counted) until it is empty.
"""

from __future__ import annotations

import time
from typing import Any

import sqs_broker.cache
from benchmarks.common import (
    ADD,
    env_for,
    make_app,
    publish,
    sqs_client,
    start_worker,
    unique,
    wait_empty,
)
from tests.support.proxy import Proxy


def worker_run(
    endpoint: str,
    polling_interval: float,
    wait_time_seconds: int,
    prefetch_multiplier: int,
    publisher: str,
    tasks: int,
    transport: str = "sqs_broker",
) -> dict[str, Any]:
    direct = sqs_client(endpoint)
    with Proxy.to(endpoint) as proxy:
        prefix = unique("e2e") + "-"
        env = env_for(
            proxy.endpoint_url,
            prefix,
            SQS_POLLING_INTERVAL=polling_interval,
            SQS_WAIT_TIME_SECONDS=wait_time_seconds,
            SQS_TRANSPORT=transport,
        )
        worker = start_worker(env, prefetch_multiplier=prefetch_multiplier)
        try:
            worker.wait_ready()
            app = make_app(env)
            url = direct.get_queue_url(QueueName=f"{prefix}celery")["QueueUrl"]
            signatures = [app.signature(ADD, args=(n, n)) for n in range(tasks)]
            sqs_broker.cache.reset()
            proxy.reset_counts()
            started = time.perf_counter()
            publish(signatures, publisher, app)
            ended = wait_empty(direct, [url])
        finally:
            worker.stop()
        # After the warm shutdown: the last batch of deletes is counted too.
        counts = proxy.reset_counts()
        direct.delete_queue(QueueUrl=url)
    return {
        "tasks": tasks,
        "publisher": publisher,
        "polling_interval": polling_interval,
        "wait_time_seconds": wait_time_seconds,
        "prefetch_multiplier": prefetch_multiplier,
        "transport": transport,
        "tasks_per_s": tasks / (ended - started),
        "requests_per_task": sum(counts.values()) / tasks,
        "requests": dict(counts),
    }


def boto3_ceiling(endpoint: str, tasks: int) -> dict[str, Any]:
    """Batch send, then receive 10 and batch delete until every message is back."""
    with Proxy.to(endpoint) as proxy:
        client = sqs_client(proxy.endpoint_url)
        url = client.create_queue(QueueName=unique("raw"))["QueueUrl"]
        body = "x" * 1400  # about the size of a Celery task message
        proxy.reset_counts()
        started = time.perf_counter()
        for first in range(0, tasks, 10):
            entries = [
                {"Id": str(n), "MessageBody": body} for n in range(first, min(first + 10, tasks))
            ]
            client.send_message_batch(QueueUrl=url, Entries=entries)
        done = 0
        while done < tasks:
            answer = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = answer.get("Messages", [])
            if messages:
                client.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
            done += len(messages)
        elapsed = time.perf_counter() - started
        counts = proxy.reset_counts()
        client.delete_queue(QueueUrl=url)
    return {
        "tasks": tasks,
        "tasks_per_s": tasks / elapsed,
        "requests_per_task": sum(counts.values()) / tasks,
        "requests": dict(counts),
    }
