"""Publishing: tasks/s and SQS requests per task, ``.delay()`` one by one, ``publish_many``.

The two publishers take turns in rounds, each round into a fresh queue, so a
change in machine load or in queue length affects both alike; the figures
are the medians of the rounds. A second pass adds 50 ms to every request
(a delaying proxy), the regime where round trips, not the server, decide.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import sqs_broker.cache
from benchmarks.common import ADD, env_for, make_app, publish, sqs_client, unique
from tests.support.proxy import Proxy


def _round(app: Any, client: Any, prefix: str, method: str, tasks: int) -> float:
    app.send_task(ADD, args=(0, 0))  # create the queue, open the pooled connection
    signatures = [app.signature(ADD, args=(n, n)) for n in range(tasks)]
    started = time.perf_counter()
    publish(signatures, method, app)
    elapsed = time.perf_counter() - started
    client.delete_queue(QueueUrl=client.get_queue_url(QueueName=f"{prefix}celery")["QueueUrl"])
    return elapsed


def run(
    endpoint: str, delay_tasks: int = 100, batch_tasks: int = 300, rounds: int = 3,
    latency: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    client = sqs_client(endpoint)
    sizes = {"delay": delay_tasks, "batch": batch_tasks}
    rates: dict[str, list[float]] = {"delay": [], "batch": []}
    requests: dict[str, dict[str, int]] = {"delay": {}, "batch": {}}
    with Proxy.to(endpoint, delay=latency) as proxy:
        for _ in range(rounds):
            for method in ("delay", "batch"):
                prefix = unique("pub") + "-"
                app = make_app(env_for(proxy.endpoint_url, prefix))
                sqs_broker.cache.reset()
                elapsed = _round(app, client, prefix, method, sizes[method])
                counts = proxy.reset_counts()
                # Count the publishes only: the warm-up and the queue's creation are not.
                requests[method] = {
                    k: v for k, v in counts.items() if k in ("SendMessage", "SendMessageBatch")
                }
                requests[method]["SendMessage"] -= 1  # the warm-up
                if not requests[method]["SendMessage"]:
                    del requests[method]["SendMessage"]
                rates[method].append(sizes[method] / elapsed)
    return {
        method: {
            "tasks": sizes[method],
            "rounds": rounds,
            "added_latency_ms": latency * 1000,
            "tasks_per_s": statistics.median(rates[method]),
            "requests_per_task": sum(requests[method].values()) / sizes[method],
            "requests": requests[method],
        }
        for method in ("delay", "batch")
    }
