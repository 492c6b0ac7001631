"""Pickup latency of an idle worker, and the idle cost of polling.

For each configuration (kombu's stock options and transport, this project's
defaults and transport) two workers run at once on the same local SQS: one
consuming 16 queues (latency) and one consuming ten queues that never get a
message (idle cost, counted at a proxy). One thread per latency queue
publishes a task at a random moment of the poll cycle, waits until the
worker logs its receipt, and starts again, so the samples cover every phase
of the long poll and of the pause between polls. The figures are the mean
and the share of pickups above 100 ms over every sample (several hundred in
the full run), not a tail percentile that one or two samples would decide.

What decides the latency: a message published while a long poll is open is
answered at once, so only the pause after an *empty* poll (``polling_interval``)
delays a pickup, and only for messages that arrive in it. The share of
delayed pickups is about ``polling_interval / (wait_time_seconds +
polling_interval)``, each delayed by half the interval on average.
"""

from __future__ import annotations

import random
import statistics
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
from tests.support.proxy import Proxy

IDLE_QUEUES = 10
#: Queues sampled at once per configuration: one sampler each.
LATENCY_QUEUES = 16


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


def run(
    endpoint: str,
    configs: dict[str, dict[str, Any]],
    window: float = 75,
    queues: int = LATENCY_QUEUES,
) -> dict[str, Any]:
    """Pickup latency (mean, share above 100 ms) and idle ReceiveMessage per queue per hour."""
    started: list[tuple[str, str, Worker, list[str], Any]] = []
    proxies = {}
    results: dict[str, Any] = {}
    try:
        for label, config in configs.items():
            variables = {
                "SQS_POLLING_INTERVAL": config["polling_interval"],
                "SQS_WAIT_TIME_SECONDS": config["wait_time_seconds"],
                "SQS_TRANSPORT": config.get("transport", "sqs_broker"),
            }
            prefix = unique("lat") + "-"
            env = env_for(endpoint, prefix, **variables)
            app = make_app(env)
            # Each queue is polled on its own (kombu and the project's transport
            # alike), so one worker on many queues gives many independent samplers.
            names = [f"l{n}" for n in range(queues)]
            started.append((label, "latency", start_worker(env, ",".join(names)), names, app))
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
        samples: dict[str, list[float]] = {}
        threads = []
        for label, kind, worker, names, app in started:
            if kind == "idle":
                continue
            config = configs[label]
            cycle = config["polling_interval"] + config["wait_time_seconds"]
            out = samples.setdefault(label, [])
            for queue in names:
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
            values = sorted(samples.get(label, []))
            results[label] = {
                **config,
                "idle_receives_per_queue_hour": per_hour,
                "idle_usd_per_queue_month": per_hour * 730 * 0.40 / 1_000_000,
                "idle_window_s": idle_elapsed,
                "idle_receives_counted": receives,
                "latency": {
                    "samples": len(values),
                    "mean_s": statistics.fmean(values) if values else float("nan"),
                    "share_over_100ms": (
                        sum(v > 0.1 for v in values) / len(values) if values else float("nan")
                    ),
                    "p50_s": percentile(values, 50),
                    "max_s": values[-1] if values else float("nan"),
                },
            }
    finally:
        for *_, worker, _, _ in started:
            worker.stop()
        for proxy in proxies.values():
            proxy.stop()
    return results
