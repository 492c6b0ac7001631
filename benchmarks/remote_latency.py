"""How long ``ping`` takes through SNS fanout: one call to N workers, until all N answered.

On a local SQS and SNS (moto's server on 127.0.0.1), starts N ``celery -A
project worker`` processes with remote control on, waits until all of them
answer, then times ``app.control.ping(timeout=2, limit=N)`` from a caller that
keeps its reply queue (as a Django process does, ``sqs_broker.control``).
Prints one line per N, then one JSON line. A script, not a test::

    .venv/bin/python benchmarks/remote_latency.py                # 1, 3 and 10 workers
    .venv/bin/python benchmarks/remote_latency.py --workers 5 --calls 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 3, 10], help="worker counts (1 3 10)"
    )
    parser.add_argument("--calls", type=int, default=12, help="timed calls per count (12)")
    return parser.parse_args()


def main() -> None:
    args = parse()
    from benchmarks.common import env_for, local_sqs, make_app, start_worker, unique
    from sqs_broker import control

    results = []
    with local_sqs() as server:
        for count in args.workers:
            env = env_for(server.endpoint_url, unique("p") + "-", SQS_REMOTE_CONTROL="true")
            env["SQS_WAIT_TIME_SECONDS"] = "20"
            workers = [start_worker(env) for _ in range(count)]
            try:
                for worker in workers:
                    worker.wait_ready()
                app = make_app(env)
                control.install(app)
                deadline = time.monotonic() + 120
                while len(app.control.ping(timeout=2.0, limit=count)) < count:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{count} workers did not all answer within 120 s")
                figures, short = [], 0
                for _ in range(args.calls):
                    started = time.monotonic()
                    answered = len(app.control.ping(timeout=2.0, limit=count))
                    figures.append(time.monotonic() - started)
                    short += answered < count
            finally:
                for worker in workers:
                    worker.stop()
            median = statistics.median(figures)
            print(
                f"{count:3d} worker(s): median {median:.3f} s, max {max(figures):.3f} s over "
                f"{len(figures)} calls, {short} call(s) short of an answer"
            )
            results.append(
                {"workers": count, "median": median, "max": max(figures), "short": short}
            )
    print(json.dumps({"benchmark": "remote_control_ping", "results": results}))


if __name__ == "__main__":
    main()
