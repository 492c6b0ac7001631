"""What a worker's revocation refresh costs: one read of the revoked ids, and applying them.

For each number of unexpired revocations (plus as many expired rows, which the
read must skip on its index), times what the refresh thread of
:mod:`sqs_broker.revocation_sync` does every ``SQS_BROKER_REVOCATION_REFRESH``
seconds: ``Sync.read()`` (the query, and the connection closed after it, as
in a worker) and ``Sync.apply()`` with nothing changed (the steady state), and
the first ``apply()`` at a worker's start (every id new). Prints a table,
then one JSON line. A script, not a test::

    .venv/bin/python benchmarks/revocations.py               # 10, 1,000, 10,000, 50,000 ids
    .venv/bin/python benchmarks/revocations.py --sizes 100 --repeat 50

The database is a fresh SQLite file (WAL, as the example project configures
it) in a temporary directory; DATABASE_URL, when set, names another one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10, 1000, 10000, 50000],
        help="numbers of unexpired revocations (default 10 1000 10000 50000)",
    )
    parser.add_argument("--repeat", type=int, default=20, help="reads per size (default 20)")
    return parser.parse_args()


def setup(tmp: Path) -> None:
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-" + "x" * 40)
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def fill(size: int) -> None:
    """``size`` unexpired revocations and ``size`` expired ones, in place of any before."""
    from django.utils import timezone

    from sqs_broker.models import Revocation

    Revocation.objects.all().delete()
    now = timezone.now()
    rows = [
        Revocation(
            task_id=f"{'live' if i < size else 'gone'}-{i:08d}-0000-0000-0000-000000000000",
            revoked_at=now,
            expires_at=now + timedelta(days=4 if i < size else -1),
            revoked_by="bench",
            reason="",
        )
        for i in range(2 * size)
    ]
    Revocation.objects.bulk_create(rows, batch_size=5000)


def measure(size: int, repeat: int) -> dict[str, Any]:
    from celery.worker import state

    from sqs_broker.revocation_sync import Sync

    fill(size)
    sync = Sync(interval=5)
    sync._last_prune = time.monotonic()  # the read alone; pruning is every 10 minutes
    state.revoked.clear()
    found = sync.read()
    assert found is not None and len(found) == size, "the read did not see every row"
    started = time.perf_counter()
    sync.apply(found)
    first_apply = time.perf_counter() - started
    assert len(state.revoked) == size
    reads, applies = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        found = sync.read()
        reads.append(time.perf_counter() - started)
        assert found is not None
        started = time.perf_counter()
        sync.apply(found)
        applies.append(time.perf_counter() - started)
    state.revoked.clear()
    return {
        "revoked": size,
        "read_ms_median": round(statistics.median(reads) * 1000, 2),
        "read_ms_max": round(max(reads) * 1000, 2),
        "apply_unchanged_ms_median": round(statistics.median(applies) * 1000, 2),
        "apply_at_start_ms": round(first_apply * 1000, 2),
    }


def main() -> None:
    args = parse()
    with tempfile.TemporaryDirectory() as tmp:
        setup(Path(tmp))
        import logging

        logging.getLogger("sqs_broker.revocation_sync").setLevel(logging.WARNING)
        results = [measure(size, args.repeat) for size in args.sizes]
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'revoked':>8} {'read ms (median)':>17} {'read ms (max)':>14} "
          f"{'apply, unchanged':>17} {'apply at start':>15}")  # fmt: skip
    for r in results:
        print(
            f"{r['revoked']:>8} {r['read_ms_median']:>17} {r['read_ms_max']:>14} "
            f"{r['apply_unchanged_ms_median']:>17} {r['apply_at_start_ms']:>15}"
        )
    print(json.dumps({"benchmark": "revocations", "load": load[0], "results": results}))


if __name__ == "__main__":
    main()
