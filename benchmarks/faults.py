"""Faults too slow for the suite, with real prefork workers on moto: the goals of the transport.

    .venv/bin/python -m benchmarks.faults      # about 3 minutes

* ``cut``: the endpoint of a running worker is cut for 30 s (a loopback
  proxy), while tasks are published before, during and after; every task
  must run, the worker must live, and consumption must resume by itself
  within the backoff cap (5 s) plus one long poll.
* ``restart``: the local SQS is stopped and a new, empty one started on the
  same port; the worker must declare its queue again and run what follows.
* ``crash``: a worker is killed with SIGKILL in the middle of a backlog, then
  another drains it; tasks that ran twice are counted, once with kombu's
  transport (one ``DeleteMessage`` per task) and once with the project's
  (batched deletes): the duplicate window batching opens.

Tasks are ``project.demo.tasks.journal``, which appends one line per run to a
file, so runs are counted, not inferred.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import (
    django_setup,
    env_for,
    local_sqs,
    make_app,
    sqs_client,
    start_worker,
    unique,
)
from sqs_broker.localsqs import LocalSQS, free_port
from tests.support.proxy import Proxy

JOURNAL = "project.demo.tasks.journal"


def _runs(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines() if line.strip())


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def cut(endpoint: str, seconds: float = 30.0) -> dict[str, Any]:
    """A ``seconds`` cut of a running worker's endpoint."""
    journal = Path(tempfile.mkdtemp()) / "journal"
    prefix = unique("cut") + "-"
    direct = env_for(endpoint, prefix, SQS_VISIBILITY_TIMEOUT=10, SQS_WAIT_TIME_SECONDS=20)
    app = make_app(direct)
    with Proxy.to(endpoint) as proxy:
        worker = start_worker({**direct, "SQS_ENDPOINT_URL": proxy.endpoint_url}, pool="prefork",
                              concurrency=2)  # fmt: skip
        try:
            worker.wait_ready()
            tags = [f"before{n}" for n in range(10)]
            for tag in tags:
                app.send_task(JOURNAL, args=(str(journal), tag))
            _wait(lambda: set(tags) <= set(_runs(journal)), 60)
            proxy.cut()
            cut_at = time.monotonic()
            while time.monotonic() - cut_at < seconds:
                tag = f"during{len(tags)}"
                tags.append(tag)
                app.send_task(JOURNAL, args=(str(journal), tag))
                time.sleep(1)
            proxy.restore()
            restored = time.monotonic()
            after = [f"after{n}" for n in range(10)]
            tags += after
            for tag in after:
                app.send_task(JOURNAL, args=(str(journal), tag))
            _wait(lambda: bool(set(after) & set(_runs(journal))), 120)
            resumed = time.monotonic() - restored
            # Messages taken by a long poll whose answer the cut lost return
            # after the visibility timeout (10 s).
            _wait(lambda: set(tags) <= set(_runs(journal)), 90)
            output = worker.output()
            alive = worker.process.poll() is None
        finally:
            worker.stop()
    runs = _runs(journal)
    return {
        "cut_s": seconds,
        "tasks": len(tags),
        "lost": sorted(set(tags) - set(runs)),
        "ran_twice": sum(1 for tag in tags if runs[tag] > 1),
        "worker_alive": alive,
        "resumed_after_restore_s": round(resumed, 1),
        "unrecoverable_errors": output.count("Unrecoverable error"),
        "outage_warnings": output.count("failed: "),
    }


def restart() -> dict[str, Any]:
    """The local SQS stopped and started again, empty, on the same port."""
    journal = Path(tempfile.mkdtemp()) / "journal"
    port = free_port()
    server = LocalSQS(port=port).start()
    prefix = unique("rs") + "-"
    env = env_for(server.endpoint_url, prefix, SQS_WAIT_TIME_SECONDS=2)
    worker = start_worker(env, pool="prefork", concurrency=2)
    try:
        worker.wait_ready()
        make_app(env).send_task(JOURNAL, args=(str(journal), "before"))
        _wait(lambda: "before" in _runs(journal), 60)
        server.stop()
        time.sleep(5)
        server = LocalSQS(port=port).start()
        restarted = time.monotonic()
        client = sqs_client(server.endpoint_url)

        def declared() -> bool:
            return bool(client.list_queues(QueueNamePrefix=prefix).get("QueueUrls"))

        redeclared = _wait(declared, 60)
        redeclared_after = time.monotonic() - restarted
        make_app(env).send_task(JOURNAL, args=(str(journal), "after"))
        ran = _wait(lambda: "after" in _runs(journal), 60)
        output = worker.output()
        alive = worker.process.poll() is None
    finally:
        worker.stop()
        server.stop()
    return {
        "queue_declared_again": redeclared,
        "declared_after_s": round(redeclared_after, 1),
        "task_after_ran": ran,
        "worker_alive": alive,
        "unrecoverable_errors": output.count("Unrecoverable error"),
    }


def crash(endpoint: str, transport: str, tasks: int = 300) -> dict[str, Any]:
    """SIGKILL a worker mid-backlog; a second one drains it; tasks run twice are counted."""
    journal = Path(tempfile.mkdtemp()) / "journal"
    prefix = unique("cr") + "-"
    env = env_for(endpoint, prefix, SQS_VISIBILITY_TIMEOUT=5, SQS_TRANSPORT=transport)
    app = make_app(env)
    tags = [f"t{n}" for n in range(tasks)]
    for tag in tags:
        app.send_task(JOURNAL, args=(str(journal), tag, 0.005))
    first = start_worker(env, pool="prefork", concurrency=2)
    try:
        _wait(lambda: sum(_runs(journal).values()) >= tasks // 3, 120)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
    finally:
        first.stop()
    ran_before_kill = sum(_runs(journal).values())
    second = start_worker(env, pool="prefork", concurrency=2)
    try:
        _wait(lambda: set(tags) <= set(_runs(journal)), 180)
        time.sleep(8)  # past the visibility timeout: late duplicates show up
    finally:
        second.stop()
    runs = _runs(journal)
    return {
        "transport": transport,
        "tasks": tasks,
        "ran_before_kill": ran_before_kill,
        "lost": len(set(tags) - set(runs)),
        "ran_twice": sum(1 for tag in tags if runs[tag] > 1),
    }


def main() -> int:
    django_setup()
    out: dict[str, Any] = {}
    with local_sqs() as server:
        out["cut_30s"] = cut(server.endpoint_url, 30.0)
        out["crash"] = [
            crash(server.endpoint_url, transport)
            for transport in ("kombu", "sqs_broker", "kombu", "sqs_broker")
        ]
    out["restart"] = restart()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
