"""Loaded into a test's worker (``celery worker --include tests.worker_probe``).

When the worker is ready, and after each task, it writes the names of the
sqs_broker and prometheus_client modules it holds to ``SQS_BROKER_TEST_MODULES_FILE``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery.signals import task_postrun, worker_ready


def _write(**_kwargs: Any) -> None:
    path = os.environ.get("SQS_BROKER_TEST_MODULES_FILE")
    if path:
        names = sorted(n for n in sys.modules if n.startswith(("sqs_broker", "prometheus_client")))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(names))


worker_ready.connect(_write, weak=False)
task_postrun.connect(_write, weak=False)
