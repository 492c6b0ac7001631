"""Dashboard: wall time of one pass over SQS for 1 and 100 queues, with and without latency.

Measures ``sqs_broker.stats.sqs_pass`` (the SQS part of ``stats.gather``:
inventory by prefix, then every queue's attributes on a bounded pool), with
caches cleared before each pass, directly and behind a proxy that adds 50 ms
to every request. A serial fetch would take about one round trip per queue;
the concurrent one about ``queues / SQS_BROKER_MAX_WORKERS`` round trips.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import sqs_broker.cache
from benchmarks.common import env_for, make_app, sqs_client, unique
from sqs_broker import sqs
from sqs_broker.topology import Topology
from tests.support.proxy import Proxy


def _one_pass(app: Any) -> int:
    topo = Topology.of(app)
    try:
        from sqs_broker import stats

        states = stats.sqs_pass(topo, with_online=False).states
    except ImportError:  # an older tree: gather's SQS part is exactly this
        states = sqs.fetch(sqs.inventory(topo), topo, max_age=0)
    errors = [s.error for s in states if s.error]
    if errors:
        raise RuntimeError(f"gather failed: {errors[:3]}")
    return len(states)


def run(endpoint: str, sizes: tuple[int, ...] = (1, 100), delays: tuple[float, ...] = (0, 0.05),
        repeats: int = 3) -> dict[str, Any]:  # fmt: skip
    client = sqs_client(endpoint)
    prefixes = {}
    for size in sizes:
        prefix = prefixes[size] = unique("dash") + "-"
        for n in range(size):
            client.create_queue(QueueName=prefix + ("celery" if n == 0 else f"q{n:03d}"))
    results: dict[str, Any] = {}
    for delay in delays:
        with Proxy.to(endpoint, delay=delay) as proxy:
            for size in sizes:
                app = make_app(env_for(proxy.endpoint_url, prefixes[size]))
                sqs_broker.cache.reset()
                _one_pass(app)  # warm: boto3 clients are built once per process
                names = [ref.name for ref in sqs.inventory(Topology.of(app))]
                times = []
                for _ in range(repeats):
                    for name in names:  # fetch every queue again, keep the clients
                        sqs.forget(name, Topology.of(app))
                    proxy.reset_counts()
                    started = time.perf_counter()
                    found = _one_pass(app)
                    times.append(time.perf_counter() - started)
                    requests = sum(proxy.reset_counts().values())
                if found != size:
                    raise RuntimeError(f"gather saw {found} queues, expected {size}")
                results[f"{size}q_{int(delay * 1000)}ms"] = {
                    "queues": size,
                    "added_latency_ms": delay * 1000,
                    "wall_s": statistics.median(times),
                    "requests": requests,
                }
    return results
