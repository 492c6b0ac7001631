"""Load on ``/sqs/stats.json``: concurrent clients on loopback for a bounded time.

Starts a local SQS (moto) behind a counting proxy, creates queues with known
depths, runs the example project's web server (``manage.py runserver``,
threaded, DEBUG off) against it, and lets ``--clients`` threads request
``stats.json`` with the API token for ``--seconds``. Every answer is checked
(status 200, every queue present with its known depth and no error). SQS
calls are counted at the proxy, i.e. at the server, not estimated; the
attribute cache (``SQS_BROKER_CACHE_TTL``) must keep them bounded however many
requests arrive.

Run::

    .venv/bin/python -m benchmarks.load_stats --clients 50 --seconds 30
    .venv/bin/python -m benchmarks.load_stats --write-docs   # and into docs/benchmarks.md

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3

from benchmarks import report
from sqs_broker.localsqs import LOCAL_ENV, LocalSQS, free_port
from tests.support.proxy import Proxy

ROOT = Path(__file__).resolve().parent.parent


def make_queues(endpoint: str, prefix: str, count: int) -> dict[str, int]:
    """``count`` queues under ``prefix``, queue ``n`` holding ``n`` messages; name -> depth."""
    client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    depths = {}
    for n in range(count):
        name = f"{prefix}q{n:02d}"
        url = client.create_queue(QueueName=name)["QueueUrl"]
        for start in range(0, n, 10):
            client.send_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, min(n, start + 10))
                ],
            )
        depths[name] = n
    return depths


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    with log.open("wb") as out:
        server = subprocess.Popen(
            [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/sqs/stats.json")
            conn.getresponse().read()
            return server
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.2)
    raise RuntimeError(f"server not up in 60 s:\n{log.read_text()}")


def check(body: bytes, depths: dict[str, int]) -> str | None:
    """``None`` when the answer is right, else what is wrong."""
    try:
        data = json.loads(body)
    except ValueError:
        return "not JSON"
    queues = {q["name"]: q for q in data.get("queues", [])}
    for name, expected in depths.items():
        row = queues.get(name)
        if row is None:
            return f"{name} missing"
        if row["error"]:
            return f"{name}: {row['error']}"
        if row["visible"] != expected:
            return f"{name}: visible {row['visible']} != {expected}"
    return None


def client_loop(
    port: int, token: str, depths: dict[str, int], stop: float, out: dict[str, Any]
) -> None:
    latencies: list[float] = []
    wrong: Counter[str] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            conn.request("GET", "/sqs/stats.json", headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            wrong[type(exc).__name__] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        latencies.append(time.monotonic() - started)
        problem = f"HTTP {response.status}" if response.status != 200 else check(body, depths)
        if problem:
            wrong[problem] += 1
    conn.close()
    out["latencies"] = latencies
    out["wrong"] = wrong


def run(clients: int, seconds: float, queues: int, cache_ttl: float) -> dict[str, Any]:
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    token = secrets.token_urlsafe(24)
    prefix = f"load{secrets.token_hex(3)}-"
    with (
        LocalSQS() as local,
        Proxy.to(local.endpoint_url) as proxy,
        tempfile.TemporaryDirectory() as tmp,
    ):
        depths = make_queues(local.endpoint_url, prefix, queues)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SQS_", "CELERY_"))}
        env.update(LOCAL_ENV)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "project.settings",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
                "DJANGO_DEBUG": "false",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                "DJANGO_LOG_LEVEL": "WARNING",
                "DATABASE_URL": f"sqlite:///{tmp}/load.sqlite3",
                "SQS_ENDPOINT_URL": proxy.endpoint_url,
                "SQS_QUEUE_NAME_PREFIX": prefix,
                "SQS_BROKER_API_TOKEN": token,
                "SQS_BROKER_TELEMETRY": "false",
                "SQS_BROKER_CACHE_TTL": str(cache_ttl),
                "PYTHONUNBUFFERED": "1",
            }
        )
        server = start_server(env, port, Path(tmp) / "server.log")
        try:
            # One cold request: what a single pass over SQS costs.
            proxy.reset_counts()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/sqs/stats.json", headers={"Authorization": f"Bearer {token}"})
            cold = conn.getresponse().read()
            conn.close()
            problem = check(cold, depths)
            if problem:
                raise RuntimeError(f"wrong answer before the load: {problem}")
            per_pass = sum(proxy.reset_counts().values())

            results: list[dict[str, Any]] = [{} for _ in range(clients)]
            stop = time.monotonic() + seconds
            threads = [
                threading.Thread(target=client_loop, args=(port, token, depths, stop, out))
                for out in results
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            calls = proxy.reset_counts()
        finally:
            server.terminate()
            server.wait(timeout=30)

    latencies = sorted(x for r in results for x in r["latencies"])
    wrong: Counter[str] = Counter()
    for r in results:
        wrong.update(r["wrong"])
    total_calls = sum(calls.values())
    # At most one pass per TTL window (plus the one in flight when the run ends).
    bound = (math.ceil(elapsed / cache_ttl) + 1) * per_pass if cache_ttl else None
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "queues": queues,
        "cache_ttl": cache_ttl,
        "requests": len(latencies),
        "wrong_answers": sum(wrong.values()),
        "wrong_detail": dict(wrong.most_common(5)),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1)
        if latencies
        else None,
        "latency_max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "sqs_calls": total_calls,
        "sqs_calls_by_action": dict(calls),
        "sqs_calls_per_pass": per_pass,
        "sqs_calls_bound": bound,
        "sqs_calls_per_request": round(total_calls / max(1, len(latencies)), 4),
        "within_bound": bound is None or total_calls <= bound,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="Concurrent clients. Default: 50.")
    parser.add_argument("--seconds", type=float, default=30, help="Duration. Default: 30.")
    parser.add_argument("--queues", type=int, default=10, help="Queues to report. Default: 10.")
    parser.add_argument(
        "--cache-ttl", type=float, default=5, help="SQS_BROKER_CACHE_TTL. Default: 5 (the app's)."
    )
    report.add_flag(parser)
    args = parser.parse_args()
    if not 1 <= args.clients <= 200 or not 1 <= args.seconds <= 300:
        parser.error("keep it bounded: 1-200 clients, 1-300 seconds")
    load_before = report.load_now()
    result = run(args.clients, args.seconds, args.queues, args.cache_ttl)
    rows = [
        ("clients", result["clients"]),
        ("duration (s)", result["seconds"]),
        ("queues", result["queues"]),
        ("requests", result["requests"]),
        ("wrong answers", result["wrong_answers"]),
        ("requests/s", result["requests_per_second"]),
        ("latency p50 (ms)", result["latency_p50_ms"]),
        ("latency p95 (ms)", result["latency_p95_ms"]),
        ("latency max (ms)", result["latency_max_ms"]),
        ("SQS calls (at the server)", result["sqs_calls"]),
        ("SQS calls per pass", result["sqs_calls_per_pass"]),
        ("SQS calls bound (passes x per pass)", result["sqs_calls_bound"]),
        ("SQS calls per request", result["sqs_calls_per_request"]),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(result, sort_keys=True))
    if args.write_docs:
        table = report.Table(["`stats.json` under load", "measured"], rows)
        report.write("load_stats", [table], report.Machine.since(load_before))
    if result["wrong_answers"] or not result["within_bound"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
