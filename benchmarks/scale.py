"""Scale: many queues, long windows, many web processes and viewers, big publishes.

    .venv/bin/python -m benchmarks.scale            # about 4 minutes (the data set once more)
    .venv/bin/python -m benchmarks.scale --quick    # 30 s of viewers instead of 60
    .venv/bin/python -m benchmarks.scale --latency 0.02   # every SQS request 20 ms slower
    .venv/bin/python -m benchmarks.scale --write-docs     # and the figures into docs/benchmarks.md

Cases (docs/benchmarks.md reports them):

- the data set: 7 days of per-minute task counters for 20 tasks x 5 queues
  (1,008,000 rows) and one day of per-minute samples for each of 300 queues
  (432,000 rows), written by :func:`fill` in chunks into a SQLite file in the
  temporary directory (``DATABASE_URL`` picks another database);
- the dashboard page with 300 queues, cold (attribute cache empty) and cached,
  beside one GetQueueAttributes round trip, SQL queries counted;
- ``stats.json?window=86400`` over the data set;
- 4 web processes x 10 viewers reloading every ``SQS_BROKER_REFRESH_SECONDS``
  for a minute, on a shared cache (a file cache here; Redis, Memcached or the
  database cache in production) and, for comparison, on each process's own
  local memory: SQS requests per minute counted at a proxy;
- ``publish_many`` of 1,000 tasks at +20 ms a request, one batch at a time
  (as before) and concurrently; and 1,000 tasks in 10 FIFO groups, the order
  of each group checked on receipt.

Not part of the test suite. The SQS server is ``local-aws-sqs``
(:mod:`benchmarks.fastsqs`, the backlog benchmark's) or, with ``--server moto``,
moto, behind a counting proxy: request counts and the shape of the times carry
over to AWS, absolute times do not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import sqs_broker.cache
from benchmarks import report
from benchmarks.common import ADD, ROOT, ProxyProcess, local_sqs, sqs_client, unique
from tests.support.proxy import Proxy

TASKS, TASK_QUEUES, DAYS = 20, 5, 7
QUEUES = 300
DATABASE = Path(tempfile.gettempdir()) / "sqs-broker-scale.sqlite3"
PAGE = "/admin/sqs_broker/dashboard/"


# --- the data set ------------------------------------------------------------------


def fill(queues: list[str], now: datetime, chunk: int = 20_000) -> dict[str, Any]:
    """Write the counters and samples of the data set; returns rows and seconds."""
    from django.db import transaction

    from sqs_broker.models import HourlyTaskCounter, QueueSample, TaskCounter
    from sqs_broker.telemetry.base import Counts, hour_of

    started = time.perf_counter()
    TaskCounter.objects.all().delete()
    HourlyTaskCounter.objects.all().delete()
    QueueSample.objects.all().delete()
    end = now.replace(second=0, microsecond=0)
    rng = random.Random(15)
    minutes = DAYS * 24 * 60
    pairs = [(f"app.tasks.t{t:02d}", f"work-{q}") for t in range(TASKS) for q in range(TASK_QUEUES)]
    batch: list[Any] = []
    # What the workers' flushes add to the hourly counters as they write the minutes.
    hours: dict[tuple[str, str, datetime], Counts] = {}

    def flush(model: Any) -> None:
        with transaction.atomic():
            model.objects.bulk_create(batch, batch_size=chunk)
        batch.clear()

    for m in range(minutes):
        minute = end - timedelta(minutes=m)
        for task, queue in pairs:
            done = rng.randrange(0, 40)
            counts = Counts(
                received=done, succeeded=done, failed=done // 20, redelivered=done // 30,
                runtime_sum=done * 0.05, runtime_max=0.2,
            )  # fmt: skip
            batch.append(TaskCounter(task=task, queue=queue, minute=minute, **vars(counts)))
            hours.setdefault((task, queue, hour_of(minute)), Counts()).merge(counts)
        if len(batch) >= chunk:
            flush(TaskCounter)
    flush(TaskCounter)
    batch.extend(
        HourlyTaskCounter(task=task, queue=queue, hour=hour, **vars(counts))
        for (task, queue, hour), counts in hours.items()
    )
    flush(HourlyTaskCounter)
    for m in range(24 * 60):
        at = end - timedelta(minutes=m, seconds=-5)
        for name in queues:
            batch.append(
                QueueSample(queue=name, sampled_at=at, visible=rng.randrange(0, 500),
                            in_flight=rng.randrange(0, 50), delayed=0)
            )  # fmt: skip
        if len(batch) >= chunk:
            flush(QueueSample)
    flush(QueueSample)
    return {
        "task_counters": TaskCounter.objects.count(),
        "hourly_task_counters": HourlyTaskCounter.objects.count(),
        "queue_samples": QueueSample.objects.count(),
        "seconds": round(time.perf_counter() - started, 1),
    }


# --- the page and the JSON ----------------------------------------------------------


def _timed(call: Any, repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def pages(proxy: ProxyProcess, names: list[str], repeats: int) -> dict[str, Any]:
    """The dashboard cold and cached, stats.json over a day; SQS requests and SQL queries."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from sqs_broker import history as samples
    from sqs_broker import sqs
    from sqs_broker.topology import Topology

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    browser = Client()
    browser.force_login(user)

    def page() -> Any:
        response = browser.get(PAGE)
        if response.status_code != 200:
            raise RuntimeError(f"the dashboard answered {response.status_code}")
        return response

    page()  # warm: clients, templates, translations
    client = sqs.client(None, Topology.of())
    url = client.get_queue_url(QueueName=names[0])["QueueUrl"]
    rtt, _ = _timed(lambda: client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]), 21)

    colds, requests, queries = [], {}, 0
    for _ in range(repeats):
        # The shared cache starts a new generation: every queue is asked again.
        sqs_broker.cache.reset()
        proxy.reset_counts()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            page()
            colds.append(time.perf_counter() - started)
        requests = dict(proxy.reset_counts())
        queries = len(captured)
    # Every load inside the cache (the loads on a busy machine could outlast 5 s).
    from django.test import override_settings

    page()
    proxy.reset_counts()
    with override_settings(SQS_BROKER_CACHE_TTL=300), CaptureQueriesContext(connection) as captured:
        cached, response = _timed(page, repeats * 3)
        if os.environ.get("SCALE_PROFILE"):
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(page)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    cached_requests = sum(proxy.reset_counts().values())
    # The first load after the attributes' TTL, as viewers meet it: every queue is asked
    # again, while the queue list, the online findings and the history are still shared.
    with override_settings(SQS_BROKER_CACHE_TTL=0):
        page()
        if os.environ.get("SCALE_PROFILE"):
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(page)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        proxy.reset_counts()
        expired, _ = _timed(page, repeats)
        expired_requests = sum(proxy.reset_counts().values()) / repeats
    # With ``now`` given the read skips the cache: the query itself is timed.
    history, _ = _timed(lambda: samples.history(names, now=datetime.now(UTC)), repeats)
    # The oldest-message estimate of queues that hold messages, from every kept sample
    # (the benchmark's SQS queues are empty, so the page itself never asks for it).
    ages, estimated = _timed(lambda: samples.history_ages(names, now=datetime.now(UTC)), repeats)

    def day() -> Any:
        response = browser.get("/sqs/stats.json?window=86400")
        if response.status_code != 200:
            raise RuntimeError(f"stats.json answered {response.status_code}")
        return response.json()

    day()
    json_day, data = _timed(day, repeats * 3)
    # The day's task sums alone, from the hourly counters and, as before they existed,
    # from the minute counters only.
    from sqs_broker.telemetry import read

    tasks_day, _ = _timed(lambda: read.snapshot(86400), repeats * 3)
    with mock.patch.object(read, "HOURLY_FROM", float("inf")):
        minutes_day, _ = _timed(lambda: read.snapshot(86400), repeats)

    def metrics() -> Any:
        response = browser.get("/sqs/metrics")
        if response.status_code != 200:
            raise RuntimeError(f"metrics answered {response.status_code}")
        return response

    metrics()
    metrics_s, _ = _timed(metrics, repeats * 3)
    # The all-time task totals the metrics export: baseline + hours, and as they were read
    # before the hourly counters, every minute row grouped.
    totals_s, _ = _timed(read.totals, repeats * 3)
    totals_minutes_s, _ = _timed(_totals_from_minutes, repeats)
    proxy.reset_counts()
    return {
        "queues": len(data["queues"]),
        "rtt_get_queue_attributes_s": rtt,
        "cold_s": statistics.median(colds),
        "cold_goal_s": 1.5 * rtt + 0.3,
        "cold_sqs_requests": requests,
        "cold_sql_queries": queries,
        "cached_s": cached,
        "expired_s": expired,
        "expired_sqs_requests": expired_requests,
        "cached_sql_queries": round(len(captured) / (repeats * 3), 1),
        "cached_sqs_requests": cached_requests,
        "page_bytes": len(response.content),
        "history_query_s": history,
        "history_ages_s": ages,
        "history_ages_queues": len(estimated),
        "stats_json_day_s": json_day,
        "tasks_day_hours_s": tasks_day,
        "tasks_day_minutes_s": minutes_day,
        "metrics_s": metrics_s,
        "totals_s": totals_s,
        "totals_minutes_s": totals_minutes_s,
        "stats_json_day_tasks": len(data["tasks"]),
    }


def _totals_from_minutes() -> list[dict[str, Any]]:
    """The all-time sums as ``read.totals`` made them before the hourly counters."""
    from django.db.models import Sum

    from sqs_broker.models import TaskCounter
    from sqs_broker.telemetry.base import ADDITIVE_COLUMNS

    rows = TaskCounter.objects.order_by().values("task", "queue")
    return list(rows.annotate(**{f"total_{name}": Sum(name) for name in ADDITIVE_COLUMNS}))


# --- many processes, many viewers ----------------------------------------------------


def viewer(seconds: float, threads: int, refresh: float) -> None:
    """One web process: ``threads`` viewers, each loading the dashboard's data every ``refresh``."""
    import django

    django.setup()
    from sqs_broker import stats

    stop = time.monotonic() + seconds
    loads = [0]

    def one(offset: float) -> None:
        time.sleep(offset)
        while time.monotonic() < stop:
            stats.gather()
            loads[0] += 1
            time.sleep(refresh)

    pool = [
        threading.Thread(target=one, args=(random.uniform(0, refresh),)) for _ in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    print(json.dumps({"loads": loads[0]}))


def viewers(proxy: ProxyProcess, env: dict[str, str], seconds: float, processes: int = 4,
            threads: int = 10) -> dict[str, Any]:  # fmt: skip
    """SQS requests a minute of ``processes`` x ``threads`` viewers, shared cache vs per process."""
    refresh = float(env.get("SQS_BROKER_REFRESH_SECONDS", "10"))
    ttl = float(env.get("SQS_BROKER_CACHE_TTL", "5"))
    out: dict[str, Any] = {"processes": processes, "viewers_per_process": threads,
                           "refresh_s": refresh, "ttl_s": ttl, "seconds": seconds}  # fmt: skip
    with tempfile.TemporaryDirectory() as shared:
        for label, cache_url in (("shared", f"filecache://{shared}"), ("per_process", "")):
            run_env = {**env, "CACHE_URL": cache_url or "locmemcache://"}
            proxy.reset_counts()
            children = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.scale",
                        "viewer",
                        "--seconds",
                        str(seconds),
                        "--threads",
                        str(threads),
                        "--refresh",
                        str(refresh),
                    ],
                    cwd=ROOT,
                    env=run_env,
                    stdout=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                for _ in range(processes)
            ]
            loads = 0
            for child in children:
                output, _ = child.communicate(timeout=seconds + 120)
                loads += json.loads(output.strip().splitlines()[-1])["loads"]
            counts = proxy.reset_counts()
            attributes = counts.get("GetQueueAttributes", 0)
            out[label] = {
                "loads": loads,
                "requests": dict(counts),
                "requests_per_min": sum(counts.values()) * 60 / seconds,
                # A pass reads every queue once: passes = attribute reads / queues.
                "passes_per_min": attributes / QUEUES * 60 / seconds,
            }
    out["one_pass_per_ttl_per_min"] = 60 / ttl
    return out


# --- publish_many ---------------------------------------------------------------------


def publishing(endpoint: str, latency: float, tasks: int = 1000) -> dict[str, Any]:
    """publish_many of ``tasks`` one batch at a time and concurrently; FIFO order checked."""
    from benchmarks.common import env_for, make_app
    from sqs_broker import publishing as pub

    raw = sqs_client(endpoint)
    out: dict[str, Any] = {"tasks": tasks, "added_latency_ms": latency * 1000}
    with Proxy.to(endpoint, delay=latency) as proxy:
        for label, concurrency in (("one_at_a_time", 1), ("concurrent", None)):
            times = []
            for _ in range(3):
                prefix = unique("pub") + "-"
                app = make_app(env_for(proxy.endpoint_url, prefix))
                sqs_broker.cache.reset()
                app.send_task(ADD, args=(0, 0))  # the queue exists, the connection is open
                signatures = [app.signature(ADD, args=(n, n)) for n in range(tasks)]
                started = time.perf_counter()
                pub.publish_many(signatures, app=app, concurrency=concurrency)
                times.append(time.perf_counter() - started)
                raw.delete_queue(
                    QueueUrl=raw.get_queue_url(QueueName=f"{prefix}celery")["QueueUrl"]
                )
            out[label] = {"seconds": statistics.median(times), "concurrency": concurrency or
                          pub.app_settings.PUBLISH_CONCURRENCY}  # fmt: skip
        out["speedup"] = out["one_at_a_time"]["seconds"] / out["concurrent"]["seconds"]

        prefix = unique("fifo") + "-"
        app = make_app(env_for(proxy.endpoint_url, prefix), task_routes={ADD: {"queue": "o.fifo"}})
        app.send_task(ADD, args=(-1, 0), **pub.fifo_options("warm"))
        signatures = [
            app.signature(ADD, args=(n, n % 10), options=pub.fifo_options(f"g{n % 10}"))
            for n in range(tasks)
        ]
        started = time.perf_counter()
        pub.publish_many(signatures, app=app)
        fifo_s = time.perf_counter() - started
    url = raw.get_queue_url(QueueName=f"{prefix}o.fifo")["QueueUrl"]
    seen: dict[int, list[int]] = {}
    received = 0
    while received < tasks + 1:
        answer = raw.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            import base64

            body = json.loads(base64.b64decode(message["Body"]))
            n, group = json.loads(base64.b64decode(body["body"]))[0]
            if n >= 0:
                seen.setdefault(group, []).append(n)
            received += 1
        raw.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ])  # fmt: skip
    in_order = all(ns == sorted(ns) for ns in seen.values())
    out["fifo"] = {"seconds": fifo_s, "groups": len(seen), "received": sum(map(len, seen.values())),
                   "each_group_in_order": in_order}  # fmt: skip
    return out


@contextmanager
def _server(kind: str) -> Iterator[str]:
    """The endpoint of a fresh local SQS server of ``kind``."""
    if kind == "moto":
        with local_sqs() as server:
            yield server.endpoint_url
        return
    try:
        from benchmarks.fastsqs import fast_sqs
    except ImportError:
        raise SystemExit(
            "benchmarks.fastsqs (local-aws-sqs) is not in this tree: run with --server moto."
        ) from None
    with fast_sqs() as endpoint:
        yield endpoint


# --- the whole run ----------------------------------------------------------------------


def _row(name: str, *values: Any) -> str:
    return f"{name:<58}" + "".join(f"{v:>14}" for v in values)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def doc_tables(out: dict[str, Any]) -> list[report.Table]:
    """The run's cases as tables: printed, and written into docs/benchmarks.md."""
    data = out["data"]
    tables = [
        report.Table(
            ["data set", "rows"],
            [["per-minute task counters", f"{data['task_counters']:,}"],
             ["per-minute queue samples", f"{data['queue_samples']:,}"],
             ["seconds to write (0: kept from an earlier run)", data["seconds"]]],
            title=f"Server `{out['server']}`, database {out['database']}.",
        ),
    ]  # fmt: skip
    page = out.get("pages")
    if page:
        cold = sum(page["cold_sqs_requests"].values())
        title = f"dashboard, {page['queues']} queues (+{out['latency'] * 1000:.0f} ms a request)"
        tables.append(report.Table([title, "measured", "goal"], [
            ["one `GetQueueAttributes` round trip", _ms(page["rtt_get_queue_attributes_s"]), ""],
            ["page, cold (every queue asked)", _ms(page["cold_s"]), _ms(page["cold_goal_s"])],
            ["page, cached", _ms(page["cached_s"]), "250 ms"],
            ["page, attributes expired (the rest shared)", _ms(page["expired_s"]), ""],
            ["SQS requests then", f"{page['expired_sqs_requests']:.0f}", ""],
            ["history query, uncached (300 queues × 6 h)", _ms(page["history_query_s"]), ""],
            [f"oldest-age estimate, uncached ({page['history_ages_queues']} busy queues)",
             _ms(page["history_ages_s"]), ""],
            ["SQL queries cold / cached",
             f"{page['cold_sql_queries']} / {page['cached_sql_queries']}", ""],
            ["SQS requests cold / cached", f"{cold} / {page['cached_sqs_requests']}", ""],
            ["`stats.json?window=86400`", _ms(page["stats_json_day_s"]), "150 ms"],
            ["a day's task sums from hours", _ms(page["tasks_day_hours_s"]), ""],
            ["a day's task sums from minutes only", _ms(page["tasks_day_minutes_s"]), ""],
            ["`/sqs/metrics` (attributes cached)", _ms(page["metrics_s"]), ""],
            ["all-time task totals, baseline + hours", _ms(page["totals_s"]), ""],
            ["all-time task totals from every minute", _ms(page["totals_minutes_s"]), ""],
        ]))  # fmt: skip
    many = out.get("viewers")
    if many:
        title = (f"viewers: {many['processes']} processes × {many['viewers_per_process']}, "
                 f"reload every {many['refresh_s']:g} s")  # fmt: skip
        rows: list[list[object]] = [
            [f"{label}, {many[key]['loads']} loads", f"{many[key]['passes_per_min']:.1f}",
             f"{many[key]['requests_per_min']:,.0f}"]
            for key, label in (("shared", "shared cache (file)"),
                               ("per_process", "local memory each"))
        ]  # fmt: skip
        rows.append([f"goal: one pass per TTL ({many['ttl_s']:g} s)",
                     f"{many['one_pass_per_ttl_per_min']:.1f}", ""])  # fmt: skip
        tables.append(report.Table([title, "passes/min", "requests/min"], rows))
    pub = out.get("publish")
    if pub:
        fifo = pub["fifo"]
        title = f"`publish_many`, {pub['tasks']} tasks, +{pub['added_latency_ms']:.0f} ms a request"
        tables.append(report.Table([title, "seconds", "speed-up"], [
            ["one batch at a time", f"{pub['one_at_a_time']['seconds']:.2f}", ""],
            [f"{pub['concurrent']['concurrency']} batches at a time",
             f"{pub['concurrent']['seconds']:.2f}", f"×{pub['speedup']:.1f}"],
            [f"FIFO, {fifo['groups']} groups, each in order: {fifo['each_group_in_order']}",
             f"{fifo['seconds']:.2f}", ""],
        ]))  # fmt: skip
    return tables


def print_table(out: dict[str, Any]) -> None:
    lines = []
    for table in doc_tables(out):
        if table.title:
            lines.append(table.title)
        lines.append(_row(*table.headers))
        lines += [_row(*row) for row in table.rows]
        lines.append("")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="all", choices=("all", "viewer"))
    parser.add_argument(
        "--server", choices=("fast", "moto"), default="fast",
        help="local-aws-sqs (benchmarks.fastsqs, Node.js) or moto (slower: ~40 messages/s)",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", action="store_true",
        help="keep the data set of an earlier run (its times shift: for trying changes only)",
    )  # fmt: skip
    parser.add_argument("--cases", default="pages,viewers,publish",
                        help="comma-separated: pages, viewers, publish")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="30 s of viewers instead of 60")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--refresh", type=float, default=10.0)
    report.add_flag(parser)
    args = parser.parse_args(argv)
    if args.mode == "viewer":
        viewer(args.seconds, args.threads, args.refresh)
        return 0
    cases = set(args.cases.split(","))
    load_before = report.load_now()

    from sqs_broker.localsqs import LOCAL_ENV

    out: dict[str, Any] = {"latency": args.latency}
    out["server"] = args.server
    with _server(args.server) as endpoint:
        raw = sqs_client(endpoint)
        prefix = unique("scale") + "-"
        names = [f"{prefix}q{n:03d}" for n in range(QUEUES)]
        for name in names:
            raw.create_queue(QueueName=name)
        with ProxyProcess(endpoint, delay=args.latency) as proxy:
            env = {
                **os.environ, **LOCAL_ENV,
                "DJANGO_SETTINGS_MODULE": "project.settings",
                "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "scale-" + "k" * 50,
                "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{DATABASE}",
                "SQS_ENDPOINT_URL": proxy.endpoint_url,
                "SQS_QUEUE_NAME_PREFIX": prefix,
                "SQS_BROKER_TELEMETRY": "false",
                "DJANGO_LOG_LEVEL": "WARNING",
                "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            }  # fmt: skip
            os.environ.update(env)
            import django

            django.setup()
            from django.core.management import call_command

            out["database"] = env["DATABASE_URL"].split(":", 1)[0]
            call_command("migrate", verbosity=0)
            from sqs_broker.models import QueueSample, TaskCounter

            if args.reuse and TaskCounter.objects.count() == DAYS * 24 * 60 * TASKS * TASK_QUEUES:
                # The stored samples take this run's queue names (the data set is as written).
                # order_by(): the model orders by (queue, sampled_at), and DISTINCT would
                # then keep one row per sample, not per queue.
                old = sorted(
                    QueueSample.objects.order_by().values_list("queue", flat=True).distinct()
                )
                for before, after in zip(old, names, strict=False):
                    QueueSample.objects.filter(queue=before).update(queue=after)
                out["data"] = {
                    "task_counters": TaskCounter.objects.count(),
                    "queue_samples": QueueSample.objects.count(),
                    "seconds": 0,
                }
            else:
                print("writing the data set ...", file=sys.stderr)
                out["data"] = fill(names, datetime.now(UTC))
            if "pages" in cases:
                print("dashboard and stats.json ...", file=sys.stderr)
                out["pages"] = pages(proxy, names, repeats=3)
            if "viewers" in cases:
                print("viewers ...", file=sys.stderr)
                out["viewers"] = viewers(proxy, env, 30.0 if args.quick else args.seconds)
        if "publish" in cases:
            print("publish_many ...", file=sys.stderr)
            out["publish"] = publishing(endpoint, args.latency or 0.02)
    print_table(out)
    print(json.dumps(out, sort_keys=True, default=str))
    if args.write_docs:
        report.write("scale", doc_tables(out), report.Machine.since(load_before))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
