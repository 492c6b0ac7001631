"""Faults too slow for the suite, with real prefork workers on moto: the goals of the transport.

    .venv/bin/python -m benchmarks.faults      # about 10 minutes

* ``fault``: the endpoint of a running worker (20 s long polls, as in
  production) is cut (3 s and 30 s), black-holed (30 s: connections accepted,
  nothing forwarded, nothing closed) or refused (the port closed, 5 s) by a
  loopback proxy, while tasks are published before and during; a task is
  published 1 s after the fault ends and the seconds until it runs are
  measured, with the project's transport and with kombu's side by side (the
  goal: within 8 s). Every task must run and the worker must live.
* ``restart``: the local SQS is stopped and a new, empty one started on the
  same port; the worker must declare its queue again and run the task sent
  1 s after the restart (the goal: within 10 s), both transports.
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
    start_worker,
    unique,
)
from sqs_broker.localsqs import LocalSQS, free_port
from tests.support.proxy import Proxy
from tests.support.queues import publish_after_restart
from tests.support.workers import wait_for

JOURNAL = "project.demo.tasks.journal"


def _runs(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines() if line.strip())


def fault(endpoint: str, kind: str, seconds: float, transport: str) -> dict[str, Any]:
    """``kind`` (cut, black_hole, refused) for ``seconds`` under a running worker."""
    journal = Path(tempfile.mkdtemp()) / "journal"
    prefix = unique("ft") + "-"
    direct = env_for(
        endpoint, prefix, SQS_VISIBILITY_TIMEOUT=10, SQS_WAIT_TIME_SECONDS=20,
        SQS_TRANSPORT=transport,
    )  # fmt: skip
    app = make_app(direct)
    with Proxy.to(endpoint) as proxy:
        worker = start_worker({**direct, "SQS_ENDPOINT_URL": proxy.endpoint_url}, pool="prefork",
                              concurrency=2)  # fmt: skip
        try:
            worker.wait_ready()
            tags = [f"before{n}" for n in range(5)]
            for tag in tags:
                app.send_task(JOURNAL, args=(str(journal), tag))
            wait_for(lambda: set(tags) <= set(_runs(journal)), 60)
            time.sleep(1)  # a long poll is in flight
            {"cut": proxy.cut, "black_hole": proxy.black_hole, "refused": proxy.refuse}[kind]()
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                tag = f"during{len(tags)}"
                tags.append(tag)
                app.send_task(JOURNAL, args=(str(journal), tag))
                time.sleep(min(1.0, seconds))
            proxy.restore()
            time.sleep(1)
            sent = time.monotonic()
            tags.append("after")
            app.send_task(JOURNAL, args=(str(journal), "after"))
            ran = wait_for(lambda: "after" in _runs(journal), 60)
            resumed = time.monotonic() - sent
            # Messages taken by a long poll whose answer the fault lost return
            # after the visibility timeout (10 s).
            wait_for(lambda: set(tags) <= set(_runs(journal)), 60 if ran else 5)
            output = worker.output()
            alive = worker.process.poll() is None
        finally:
            worker.stop()
    runs = _runs(journal)
    return {
        "fault": kind,
        "seconds": seconds,
        "transport": transport,
        "task_after_ran_after_s": round(resumed, 1) if ran else None,
        "tasks": len(tags),
        "lost": sorted(set(tags) - set(runs)),
        "ran_twice": sum(1 for tag in tags if runs[tag] > 1),
        "worker_alive": alive,
        "unrecoverable_errors": output.count("Unrecoverable error"),
        "outage_warnings": output.count("failed: "),
    }


def restart(transport: str) -> dict[str, Any]:
    """The local SQS stopped and started again, empty, on the same port."""
    journal = Path(tempfile.mkdtemp()) / "journal"
    port = free_port()
    server = LocalSQS(port=port).start()
    prefix = unique("rs") + "-"
    env = env_for(server.endpoint_url, prefix, SQS_WAIT_TIME_SECONDS=20, SQS_TRANSPORT=transport)
    worker = start_worker(env, pool="prefork", concurrency=2)
    try:
        worker.wait_ready()
        make_app(env).send_task(JOURNAL, args=(str(journal), "before"))
        wait_for(lambda: "before" in _runs(journal), 60)
        server.stop()
        time.sleep(5)
        server = LocalSQS(port=port).start()
        time.sleep(1)
        sent = time.monotonic()
        publish_after_restart(
            lambda: make_app(env).send_task(JOURNAL, args=(str(journal), "after"))
        )
        ran = wait_for(lambda: "after" in _runs(journal), 60)
        ran_after = time.monotonic() - sent
        output = worker.output()
        alive = worker.process.poll() is None
    finally:
        worker.stop()
        server.stop()
    return {
        "transport": transport,
        "task_after_ran_after_s": round(ran_after, 1) if ran else None,
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
        wait_for(lambda: sum(_runs(journal).values()) >= tasks // 3, 120)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
    finally:
        first.stop()
    ran_before_kill = sum(_runs(journal).values())
    second = start_worker(env, pool="prefork", concurrency=2)
    try:
        wait_for(lambda: set(tags) <= set(_runs(journal)), 180)
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


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """``row``, printed at once to stderr: a long run's figures survive a later failure."""
    import sys

    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main() -> int:
    import os

    django_setup()
    out: dict[str, Any] = {"command": "python -m benchmarks.faults", "load": os.getloadavg()}
    with local_sqs() as server:
        out["faults"] = [
            _shown(fault(server.endpoint_url, kind, seconds, transport))
            for kind, seconds in (("cut", 3.0), ("cut", 30.0), ("black_hole", 30.0),
                                  ("refused", 5.0))
            for transport in ("sqs_broker", "kombu")
        ]  # fmt: skip
        out["crash"] = [
            _shown(crash(server.endpoint_url, transport))
            for transport in ("kombu", "sqs_broker", "kombu", "sqs_broker")
        ]
    out["restart"] = [_shown(restart(transport)) for transport in ("sqs_broker", "kombu")]
    print(json.dumps(out, indent=1))
    print(f"\n{'fault':12} {'s':>4} {'transport':11} {'task after ran after':>21} {'lost':>5}")
    for row in out["faults"] + [{**r, "fault": "restart", "seconds": 5} for r in out["restart"]]:
        after = row["task_after_ran_after_s"]
        print(
            f"{row['fault']:12} {row['seconds']:>4g} {row['transport']:11} "
            f"{'not in 60 s' if after is None else f'{after} s':>21} "
            f"{len(row.get('lost', [])):>5}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
