"""How long a revocation takes to reach a running worker: revoke, then read the worker's log.

On a local SQS (moto's server on 127.0.0.1), starts one ``celery -A project
worker`` per refresh interval (``SQS_BROKER_REVOCATION_REFRESH``), revokes a
new task id through :func:`sqs_broker.revocations.revoke` every so often, and
times from the revoke to the worker's log line saying it refuses that id (the
change applied on its event loop). Prints a table, then one JSON line. A
script, not a test::

    .venv/bin/python benchmarks/revocation_reach.py                  # refresh 1 and 5 s
    .venv/bin/python benchmarks/revocation_reach.py --refresh 2 --revokes 5

The database is a fresh SQLite file (WAL) in a temporary directory, shared by
this process and the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_REFUSED = re.compile(
    r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}).*revocations: 1 task id\(s\) revoked in the "
    r"database, refused here: (\S+)$",
    re.MULTILINE,
)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--refresh",
        type=float,
        nargs="+",
        default=[1.0, 5.0],
        help="SQS_BROKER_REVOCATION_REFRESH values, seconds (default 1 5)",
    )
    parser.add_argument("--revokes", type=int, default=8, help="revokes per interval (default 8)")
    return parser.parse_args()


def main() -> None:
    args = parse()
    from benchmarks.common import local_sqs
    from sqs_broker.localsqs import stop_process

    with local_sqs() as server, tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SQS_", "CELERY_"))}
        env.update(
            {
                "SQS_ENDPOINT_URL": server.endpoint_url,
                "SQS_QUEUE_NAME_PREFIX": f"r{uuid.uuid4().hex[:8]}-",
                "SQS_WAIT_TIME_SECONDS": "1",
                "DJANGO_SETTINGS_MODULE": "project.settings",
                "DJANGO_SECRET_KEY": "benchmark-" + "x" * 40,
                "DATABASE_URL": database,
                "SQS_BROKER_TELEMETRY": "false",
                "CELERY_RESULT_BACKEND": "cache+memory://",
                "PYTHONUNBUFFERED": "1",
            }
        )
        os.environ.update(env)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        import logging

        from sqs_broker import revocations

        logging.getLogger("sqs_broker.audit").setLevel(logging.WARNING)  # one line per revoke

        results = []
        for refresh in args.refresh:
            log = Path(tmp) / f"worker-{refresh:g}.log"
            argv = [
                sys.executable, "-m", "celery", "-A", "project", "worker", "--pool=solo",
                "--loglevel=INFO", "-n", f"reach-{uuid.uuid4().hex[:6]}@%h",
                "--without-heartbeat", "--without-mingle", "--without-gossip",
            ]  # fmt: skip
            with log.open("wb") as out:
                process = subprocess.Popen(  # noqa: S603 - fixed argv
                    argv,
                    cwd=ROOT,
                    env={**env, "SQS_BROKER_REVOCATION_REFRESH": str(refresh)},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                deadline = time.monotonic() + 90
                while "ready." not in log.read_text(errors="replace"):
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(log.read_text(errors="replace")[-3000:])
                    time.sleep(0.1)
                sent: dict[str, float] = {}
                for _ in range(args.revokes):
                    # Off the refresh's beat, so the waits spread over the interval.
                    time.sleep(random.uniform(0.2, refresh))  # noqa: S311 - not security
                    task_id = str(uuid.uuid4())
                    sent[task_id] = time.time()
                    revocations.revoke([task_id], user="bench", expires=600)
                    while task_id not in log.read_text(errors="replace"):
                        if time.time() - sent[task_id] > refresh + 30:
                            raise RuntimeError(f"{task_id} never reached the worker")
                        time.sleep(0.05)
                seen = {
                    task_id: datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    for stamp, task_id in _REFUSED.findall(log.read_text(errors="replace"))
                }
                waits = [seen[t] - sent[t] for t in sent]
            finally:
                stop_process(process, 20)
            results.append(
                {
                    "refresh": refresh,
                    "revokes": len(waits),
                    "median_s": round(statistics.median(waits), 3),
                    "max_s": round(max(waits), 3),
                }
            )
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'refresh s':>10} {'revokes':>8} {'reach median s':>15} {'reach max s':>12}")
    for r in results:
        print(f"{r['refresh']:>10g} {r['revokes']:>8} {r['median_s']:>15} {r['max_s']:>12}")
    print(json.dumps({"benchmark": "revocation_reach", "load": load[0], "results": results}))


if __name__ == "__main__":
    main()
