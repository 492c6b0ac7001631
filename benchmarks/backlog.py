"""Backlog throughput: a prefork worker (``-c 2``) draining 2,000 queued no-op tasks.

What it measures: tasks/s from the worker's first receipt to the moment the
queue is empty, and every SQS request of the run (publishing with
``publish_many``, the worker's receives, deletes and start-up calls) per task,
counted at a proxy. kombu's channel sleeps ``polling_interval`` whenever the
prefetch buffer is full, which caps a backlog at prefetch slots ÷
``polling_interval``; the project's transport looks for a free slot every
10 ms without a request and batches the deletes.

The configurations take turns, round after round, on one server, so a change
of machine load hits them alike; each figure is the median of the rounds.
The server is ``local-aws-sqs`` (:mod:`benchmarks.fastsqs`): moto drains about
40 messages/s and would measure itself.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.common import ADD, env_for, make_app, publish, sqs_client, start_worker, unique
from sqs_broker import sqs
from tests.support.proxy import Proxy

#: Each configuration's variables on top of the project's defaults.
CASES: dict[str, dict[str, Any]] = {
    "kombu_defaults": {"SQS_TRANSPORT": "kombu"},
    "kombu_polling_0": {"SQS_TRANSPORT": "kombu", "SQS_POLLING_INTERVAL": 0},
    "project_transport": {"SQS_TRANSPORT": "sqs_broker"},
}


def _round(endpoint: str, variables: dict[str, Any], tasks: int) -> dict[str, Any]:
    direct = sqs_client(endpoint)
    with Proxy.to(endpoint) as proxy:
        prefix = unique("bl") + "-"
        env = env_for(proxy.endpoint_url, prefix, **variables)
        app = make_app(env)
        sqs.clear_caches()
        proxy.reset_counts()
        publish([app.signature(ADD, args=(n, n)) for n in range(tasks)], "batch", app)
        url = direct.get_queue_url(QueueName=f"{prefix}celery")["QueueUrl"]
        worker = start_worker(env, pool="prefork", concurrency=2, prefetch_multiplier=4)
        try:
            names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                got = direct.get_queue_attributes(QueueUrl=url, AttributeNames=names)
                if sum(int(v) for v in got["Attributes"].values()) == 0:
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError(f"backlog not drained:\n{worker.output()[-3000:]}")
            emptied = time.time()
            received = worker.received()
        finally:
            worker.stop()
        counts = proxy.reset_counts()
        direct.delete_queue(QueueUrl=url)
    if len(received) < tasks:
        raise RuntimeError(f"only {len(received)} of {tasks} tasks were received")
    elapsed = emptied - min(received.values())
    return {
        "tasks_per_s": tasks / elapsed,
        "requests_per_task": sum(counts.values()) / tasks,
        "requests": dict(counts),
    }


def run(endpoint: str, tasks: int = 2000, rounds: int = 2) -> dict[str, Any]:
    """Median tasks/s and requests per task of each case, the cases alternating."""
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, variables in CASES.items():
            found[name].append(_round(endpoint, variables, tasks))
    results = {}
    for name, rows in found.items():
        results[name] = {
            "tasks": tasks,
            "rounds": rounds,
            "tasks_per_s": statistics.median(r["tasks_per_s"] for r in rows),
            "requests_per_task": statistics.median(r["requests_per_task"] for r in rows),
            "each_round": rows,
        }
    return results


if __name__ == "__main__":
    import json
    import sys

    from benchmarks.common import django_setup
    from benchmarks.fastsqs import fast_sqs

    django_setup()
    with fast_sqs() as server:
        out = run(server, tasks=int(sys.argv[1]) if len(sys.argv) > 1 else 2000, rounds=1)
    print(json.dumps(out, indent=1, default=str))
