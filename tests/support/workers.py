"""Real ``celery -A project worker`` subprocesses: started, waited for, read and stopped.

The one harness behind the ``start_worker`` fixture (``tests/conftest.py``) and
the benchmarks (``benchmarks/common.py``). A worker is configured only by its
environment, through ``sqs_broker.settings``, exactly as in production; its
output goes to a log file the caller reads.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqs_broker.localsqs import stop_process
from tests.support import ROOT

#: A Django secret for workers whose environment brings none.
SECRET_KEY = "test-secret-key-" + "x" * 40

_RECEIVED = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/\w+\] Task \S+\[([0-9a-f-]{36})\] received",
    re.MULTILINE,
)


@dataclass
class Worker:
    """One worker process and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(repr=False)
    started: float = field(default_factory=time.monotonic)

    def output(self) -> str:
        """Everything the worker has logged so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Return once the worker logs ``ready.``; fail with its log if it exits or is late."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.output():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()[-6000:]}")
            time.sleep(0.1)
        raise AssertionError(f"worker not ready in {timeout} s:\n{self.output()[-6000:]}")

    def received(self) -> dict[str, float]:
        """Task id -> the wall-clock time the worker logged its receipt."""
        found: dict[str, float] = {}
        for stamp, task_id in _RECEIVED.findall(self.output()):
            when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
            found.setdefault(task_id, when.timestamp())
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait (killing it after ``timeout`` s); its exit status."""
        return stop_process(self.process, timeout, sig)


def spawn(
    env: Mapping[str, str],
    log: Path,
    *,
    database_url: str,
    queues: str = "celery",
    pool: str = "solo",
    concurrency: int | None = None,
    prefetch_multiplier: int | None = None,
    name: str | None = None,
    extra: tuple[str, ...] = (),
    new_session: bool = False,
) -> Worker:
    """Start a worker on ``queues`` logging to ``log``; call ``wait_ready()`` before using it.

    ``env``'s own ``DATABASE_URL`` and ``DJANGO_SECRET_KEY`` win over
    ``database_url`` and :data:`SECRET_KEY`. With ``new_session`` the worker
    leads a process group of its own, so a caller can kill its pool with it.
    """
    full_env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_SECRET_KEY": env.get("DJANGO_SECRET_KEY", SECRET_KEY),
        "DATABASE_URL": env.get("DATABASE_URL", database_url),
        "PYTHONUNBUFFERED": "1",
    }
    options = [f"--pool={pool}", "-Q", queues, "--loglevel=INFO"]
    if concurrency is not None:
        options.append(f"--concurrency={concurrency}")
    if prefetch_multiplier is not None:
        options.append(f"--prefetch-multiplier={prefetch_multiplier}")
    options += ["-n", f"{name or 'w' + uuid.uuid4().hex[:8]}@%h"]
    argv = [
        sys.executable, "-m", "celery", "-A", "project", "worker", *options,
        "--without-heartbeat", "--without-mingle", "--without-gossip", *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            argv,
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    return Worker(process, log, full_env)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Whether ``predicate()`` came true within ``timeout`` s (asked every ``interval`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
