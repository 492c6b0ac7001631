"""Publishing: tasks/s and SQS requests per task, ``.delay()`` one by one, ``publish_many``."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import ADD, env_for, make_app, proxy_to, sqs_client, unique
from sqs_broker import sqs
from sqs_broker.publishing import publish_many


def run(endpoint: str, delay_tasks: int = 300, batch_tasks: int = 1000) -> dict[str, Any]:
    client = sqs_client(endpoint)
    results: dict[str, Any] = {}
    with proxy_to(endpoint) as proxy:
        prefix = unique("pub") + "-"
        app = make_app(env_for(proxy.endpoint_url, prefix))
        app.send_task(ADD, args=(0, 0))  # create the queue, open the pooled connection
        sqs.clear_caches()

        proxy.reset_counts()
        started = time.perf_counter()
        for n in range(delay_tasks):
            app.send_task(ADD, args=(n, n))
        elapsed = time.perf_counter() - started
        counts = proxy.reset_counts()
        results["delay"] = {
            "tasks": delay_tasks,
            "tasks_per_s": delay_tasks / elapsed,
            "requests_per_task": sum(counts.values()) / delay_tasks,
            "requests": dict(counts),
        }

        signatures = [app.signature(ADD, args=(n, n)) for n in range(batch_tasks)]
        started = time.perf_counter()
        publish_many(signatures, app=app)
        elapsed = time.perf_counter() - started
        counts = proxy.reset_counts()
        results["batch"] = {
            "tasks": batch_tasks,
            "tasks_per_s": batch_tasks / elapsed,
            "requests_per_task": sum(counts.values()) / batch_tasks,
            "requests": dict(counts),
        }
        url = client.get_queue_url(QueueName=f"{prefix}celery")["QueueUrl"]
        client.delete_queue(QueueUrl=url)
    return results
