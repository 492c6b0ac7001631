"""Pickup latency of an idle worker, and the idle cost of polling.

For each configuration (kombu's stock options and this project's defaults)
several workers run at once on the same local SQS: two consuming one queue
each, one consuming three queues (latency), and one consuming five queues
that never get a message (idle cost, counted at a proxy). One thread per
latency queue publishes a task at a random moment of the poll cycle, waits
until the worker logs its receipt, and starts again, so the samples cover
every phase of the long poll and of the pause between polls.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from benchmarks.common import (
    ADD,
    Worker,
    env_for,
    make_app,
    percentile,
    start_worker,
    unique,
)
from tests.proxy import Proxy

IDLE_QUEUES = 10


def _sample(
    app: Any, worker: Worker, queue: str, cycle: float, until: float, out: list[float]
) -> None:
    rng = random.Random()  # noqa: S311 - timing jitter, not security
    while True:
        pause = rng.uniform(0, cycle + 1)
        if time.monotonic() + pause + 2 > until:
            return
        time.sleep(pause)
        result = app.send_task(ADD, args=(1, 1), queue=queue)
        sent = time.time()
        deadline = time.monotonic() + cycle + 10
        while time.monotonic() < deadline:
            received = worker.received().get(result.id)
            if received is not None:
                out.append(max(0.0, received - sent))
                break
            time.sleep(0.02)


def run(endpoint: str, configs: dict[str, dict[str, Any]], window: float = 75) -> dict[str, Any]:
    """Latency p50/p95 for 1 and 3 queues, and idle ReceiveMessage per queue per hour."""
    started: list[tuple[str, str, Worker, list[str], Any]] = []
    proxies = {}
    results: dict[str, Any] = {}
    try:
        for label, config in configs.items():
            variables = {
                "SQS_POLLING_INTERVAL": config["polling_interval"],
                "SQS_WAIT_TIME_SECONDS": config["wait_time_seconds"],
            }
            prefix = unique("lat") + "-"
            env = env_for(endpoint, prefix, **variables)
            app = make_app(env)
            for n in range(2):
                queue = f"one{n}"
                started.append((label, "1", start_worker(env, queue), [queue], app))
            three = ["a", "b", "c"]
            started.append((label, "3", start_worker(env, ",".join(three)), three, app))
            proxy = proxies[label] = Proxy.to(endpoint).start()
            idle_env = env_for(proxy.endpoint_url, unique("idle") + "-", **variables)
            idle = [f"q{n}" for n in range(IDLE_QUEUES)]
            started.append((label, "idle", start_worker(idle_env, ",".join(idle)), idle, None))
        for *_, worker, _, _ in started:
            worker.wait_ready()
        time.sleep(2)  # let every worker create its queues and start polling
        for proxy in proxies.values():
            proxy.reset_counts()
        idle_started = time.monotonic()
        until = time.monotonic() + window
        samples: dict[tuple[str, str], list[float]] = {}
        threads = []
        for label, kind, worker, queues, app in started:
            if kind == "idle":
                continue
            config = configs[label]
            cycle = config["polling_interval"] + config["wait_time_seconds"]
            out = samples.setdefault((label, kind), [])
            for queue in queues:
                thread = threading.Thread(
                    target=_sample, args=(app, worker, queue, cycle, until, out), daemon=True
                )
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join()
        idle_elapsed = time.monotonic() - idle_started
        for label, config in configs.items():
            receives = proxies[label].reset_counts().get("ReceiveMessage", 0)
            per_hour = receives / IDLE_QUEUES / idle_elapsed * 3600
            results[label] = {
                **config,
                "idle_receives_per_queue_hour": per_hour,
                "idle_usd_per_queue_month": per_hour * 730 * 0.40 / 1_000_000,
                "idle_window_s": idle_elapsed,
                "idle_receives_counted": receives,
            }
            for kind in ("1", "3"):
                values = sorted(samples.get((label, kind), []))
                results[label][f"latency_{kind}q"] = {
                    "samples": len(values),
                    "p50_s": percentile(values, 50),
                    "p95_s": percentile(values, 95),
                    "max_s": values[-1] if values else float("nan"),
                }
    finally:
        for *_, worker, _, _ in started:
            worker.stop()
        for proxy in proxies.values():
            proxy.stop()
    return results
