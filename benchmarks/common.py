"""What every benchmark needs: a local SQS, counting proxies, Celery apps and worker processes.

Each benchmark starts its own :class:`~sqs_broker.localsqs.LocalSQS`, so the
figures of one run come from one server. Workers are real
``celery -A project worker`` processes, configured by ``sqs_broker.settings``
from environment variables, exactly as in production.
"""

from __future__ import annotations

import os
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from celery import Celery

from sqs_broker.localsqs import LOCAL_ENV, LocalSQS
from sqs_broker.settings import celery_settings
from tests.support import ROOT, workers  # noqa: F401 - ROOT for the scripts

ADD = "project.demo.tasks.add"

#: kombu 5.7's own defaults for the SQS transport and Celery's prefetch multiplier.
STOCK = {"polling_interval": 1.0, "wait_time_seconds": 10, "prefetch_multiplier": 4}


def django_setup() -> None:
    """Django settings for the parts of sqs_broker that read them (timeouts, cache TTL)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SQS_BROKER_TELEMETRY=False,
            USE_TZ=True,
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "sqs_broker"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        )
        django.setup()


@contextmanager
def local_sqs() -> Iterator[LocalSQS]:
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    with LocalSQS() as server:
        yield server


def env_for(endpoint: str, prefix: str, **variables: Any) -> dict[str, str]:
    """A worker or publisher environment: the local endpoint, a queue prefix, settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQS_", "CELERY_"))}
    env.update(LOCAL_ENV)
    env.update(
        {
            "SQS_ENDPOINT_URL": endpoint,
            "SQS_QUEUE_NAME_PREFIX": prefix,
            "SQS_BROKER_TELEMETRY": "false",
            # No database in the way: results stay in the worker's memory.
            "CELERY_RESULT_BACKEND": "cache+memory://",
        }
    )
    env.update({k: str(v) for k, v in variables.items()})
    return env


def make_app(env: Mapping[str, str], **conf: Any) -> Celery:
    app = Celery("bench", set_as_current=False)
    settings = celery_settings(env)
    app.config_from_object({k.removeprefix("CELERY_").lower(): v for k, v in settings.items()})
    app.conf.update(task_ignore_result=True, **conf)
    return app


def sqs_client(endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")


def unique(prefix: str = "b") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Worker(workers.Worker):
    """The tests' worker, given more time to start and leaving no log behind when stopped."""

    def wait_ready(self, timeout: float = 90) -> None:
        super().wait_ready(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        status = super().stop(sig, timeout)
        self.log.unlink(missing_ok=True)
        return status


def start_worker(
    env: Mapping[str, str],
    queues: str = "celery",
    prefetch_multiplier: int = 4,
    pool: str = "solo",
    concurrency: int = 1,
) -> Worker:
    """A ``celery -A project worker`` on ``queues``; call ``wait_ready()`` before timing.

    The tests' harness (``tests/support/workers.py``), with a database of the
    benchmarks' own, and the worker leading its own process group, so a
    benchmark can kill the pool with it (``os.killpg``).
    """
    log = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
    database = Path(tempfile.gettempdir()) / "sqs-broker-bench.sqlite3"
    own = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "DJANGO_SECRET_KEY")}
    worker = workers.spawn(
        {**own, "DJANGO_SECRET_KEY": "bench-" + "x" * 50},
        log,
        database_url=f"sqlite:///{database}",
        queues=queues,
        pool=pool,
        concurrency=concurrency,
        prefetch_multiplier=prefetch_multiplier,
        name=unique("w"),
        new_session=True,
    )
    return Worker(worker.process, worker.log, worker.env)


def wait_empty(client: Any, urls: list[str], timeout: float = 120) -> float:
    """Block until no message is visible, delayed or in flight on ``urls``; the time it ended."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = 0
        for url in urls:
            attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
            total += sum(int(v) for v in attributes["Attributes"].values())
        if total == 0:
            return time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError(f"queues not drained in {timeout} s")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def publish(signatures: list[Any], method: str, app: Celery) -> None:
    """Publish with ``publish_many`` (``"batch"``) or one ``.delay()`` per task."""
    from sqs_broker.publishing import publish_many

    if method == "batch":
        publish_many(signatures, app=app)
    else:
        for signature in signatures:
            signature.delay()


class ProxyProcess:
    """The counting proxy (``tests.support.proxy.Proxy``) in a process of its own.

    Its threads then spend no CPU of the process being measured: in-process,
    relaying 300 requests took about 0.15 s of the measured page's time.
    Same face as the proxy: ``endpoint_url`` and ``reset_counts()``.
    """

    def __init__(self, endpoint_url: str, delay: float = 0.0) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve_proxy, args=(endpoint_url, delay, child), daemon=True
        )
        self._process.start()
        self.endpoint_url: str = self._conn.recv()

    def reset_counts(self) -> dict[str, int]:
        """The counts so far, and start again from zero."""
        self._conn.send("reset")
        return dict(self._conn.recv())

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


def _serve_proxy(endpoint_url: str, delay: float, conn: Any) -> None:
    from tests.support.proxy import Proxy

    with Proxy.to(endpoint_url, delay=delay) as proxy:
        conn.send(proxy.endpoint_url)
        while (command := conn.recv()) != "stop":
            if command == "reset":
                conn.send(dict(proxy.reset_counts()))
