"""What remote control costs on SQS: requests of an idle worker with it on and off, and per ping.

On a local SQS and SNS (moto's server), one ``celery -A project worker`` (solo
pool, the project's transport and defaults) runs behind a counting proxy
(``tests/support/proxy.py``) with ``SQS_REMOTE_CONTROL`` off, then on; after it
is ready (with remote control on: once it answers a ping, its mailbox
subscribed) the proxy counts every SQS and SNS request it makes for
``--seconds`` seconds of idleness: requests per hour idle. Then a caller (as a
web process calls: one kept reply queue per thread, behind a proxy of its own)
sends ``--pings`` ``inspect ping`` calls with ``limit=1``; each call's requests
are counted on both sides, the worker's less its idle rate over the same time.
The first call, which creates the caller's reply queue, is counted apart.
Requests carry over to AWS (they follow kombu's, Celery's and the transport's
logic); times do not. A script, not a test::

    .venv/bin/python -m benchmarks.remote_control                  # 300 s idle per mode
    .venv/bin/python -m benchmarks.remote_control --seconds 60 --pings 5   # a quick look
    .venv/bin/python -m benchmarks.remote_control --write-docs     # docs/benchmarks.md and
                                                                   # docs/remote-control.md
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from typing import Any

from benchmarks import report
from benchmarks.common import django_setup, env_for, local_sqs, make_app, start_worker, unique
from tests.support import ROOT
from tests.support.proxy import Proxy

#: The second page the figures are written to, between the same markers.
REMOTE_PAGE = ROOT / "docs" / "remote-control.md"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="idle seconds per mode")
    parser.add_argument("--pings", type=int, default=20, help="inspect ping calls counted")
    report.add_flag(parser)
    args = parser.parse_args()
    if not (args.seconds >= 10 and args.pings >= 1):
        parser.error("--seconds must be at least 10 and --pings at least 1")
    return args


def _ping(app: Any) -> list[dict[str, Any]]:
    return list(app.control.ping(timeout=5.0, limit=1) or [])


def idle(endpoint: str, remote: bool, seconds: float) -> tuple[Counter[str], Any, Any, Proxy]:
    """An idle worker's requests over ``seconds``; the worker, its env and proxy left running."""
    prefix = unique("rc") + "-"
    proxy = Proxy.to(endpoint).start()
    env = env_for(proxy.endpoint_url, prefix, SQS_REMOTE_CONTROL="true" if remote else "false")
    worker = start_worker(env)
    worker.wait_ready()
    if remote:
        caller = make_app(env_for(endpoint, prefix, SQS_REMOTE_CONTROL="true"))
        deadline = time.monotonic() + 60
        while not _ping(caller):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker never answered ping: see {worker.log}")
        time.sleep(2)  # the answer's own requests are done
    proxy.reset_counts()
    time.sleep(seconds)
    return proxy.reset_counts(), worker, env, proxy


def pings(
    endpoint: str, env: dict[str, str], worker_proxy: Proxy, idle_rate: float, count: int
) -> dict[str, Any]:
    """Requests of ``count`` ping calls: the caller's, and the worker's above its idle rate."""
    from sqs_broker import control

    caller_proxy = Proxy.to(endpoint).start()
    prefix = env["SQS_QUEUE_NAME_PREFIX"]
    app = make_app(env_for(caller_proxy.endpoint_url, prefix, SQS_REMOTE_CONTROL="true"))
    control.install(app)
    worker_proxy.reset_counts()
    started = time.monotonic()
    if len(_ping(app)) != 1:
        raise RuntimeError("the first ping got no answer")
    first_caller = caller_proxy.reset_counts()
    first_worker = worker_proxy.reset_counts()
    first_extra = sum(first_worker.values()) - idle_rate * (time.monotonic() - started)
    started = time.monotonic()
    took = []
    for _ in range(count):
        begun = time.monotonic()
        if len(_ping(app)) != 1:
            raise RuntimeError("a ping got no answer")
        took.append(time.monotonic() - begun)
    elapsed = time.monotonic() - started
    caller_counts = caller_proxy.reset_counts()
    worker_counts = worker_proxy.reset_counts()
    caller_proxy.stop()
    return {
        "first_caller": first_caller,
        "first_worker_extra": first_extra,
        "caller": caller_counts,
        "worker_extra": sum(worker_counts.values()) - idle_rate * elapsed,
        "worker": worker_counts,
        "seconds": took,
    }


def _actions(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"


def main() -> None:
    args = parse()
    django_setup()
    load = report.load_now()
    with local_sqs() as server:
        measured: dict[bool, Counter[str]] = {}
        for remote in (False, True):
            counts, worker, env, proxy = idle(server.endpoint_url, remote, args.seconds)
            measured[remote] = counts
            if remote:
                rate = sum(counts.values()) / args.seconds
                calls = pings(server.endpoint_url, env, proxy, rate, args.pings)
            worker.stop()
            proxy.stop()
    hour = 3600 / args.seconds
    off, on = (sum(measured[m].values()) * hour for m in (False, True))
    idle_table = report.Table(
        ["remote control", "requests per hour, idle worker", "by action (in the window)"],
        [
            ["off", f"{off:,.0f}", _actions(measured[False])],
            ["on", f"{on:,.0f}", _actions(measured[True])],
            ["on − off: its cost per worker", f"{on - off:,.0f}", ""],
        ],
        title=f"One idle worker (solo pool), counted for {args.seconds:g} s per mode.",
    )
    n = args.pings
    per_call = sum(calls["caller"].values()) / n
    ping_table = report.Table(
        ["inspect ping, limit=1", "caller's requests", "worker's requests", "median time"],
        [
            [
                "first call (creates the reply queue)",
                _actions(calls["first_caller"]),
                f"{calls['first_worker_extra']:.1f} above idle",
                "",
            ],
            [
                f"each next call (mean of {n})",
                f"{per_call:.1f}: {_actions(calls['caller'])} in all",
                f"{calls['worker_extra'] / n:.1f} above idle",
                f"{sorted(calls['seconds'])[n // 2]:.3f} s",
            ],
        ],
        title="Calls from a process that keeps its reply queue (as a web process does).",
    )
    print(report.markdown_table(idle_table))
    print()
    print(report.markdown_table(ping_table))
    print(
        json.dumps(
            {
                "idle_per_hour": {"off": round(off), "on": round(on)},
                "ping_caller_requests": round(per_call, 2),
                "ping_worker_requests": round(calls["worker_extra"] / n, 2),
            }
        )
    )
    if args.write_docs:
        machine = report.Machine.since(load)
        report.write("remote_control", [idle_table, ping_table], machine)
        report.write("remote_control", [idle_table, ping_table], machine, page=REMOTE_PAGE)


if __name__ == "__main__":
    main()
