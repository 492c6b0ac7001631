"""Celery's remote control on SQS through SNS fanout: real workers on the local SQS and SNS,
called through ``app.control`` and the ``celery`` command line."""

from __future__ import annotations

import time
from typing import Any

from sqs_broker import control
from tests.support.env import make_app
from tests.test_faults import wait_for, with_worker, worker_env


def remote_env(unique: str, **overrides: str) -> dict[str, str]:
    """A worker's environment with remote control on (long polls of 1 s)."""
    return worker_env(unique, SQS_REMOTE_CONTROL="true", **overrides)


def caller(env: dict[str, str]) -> Any:
    """A Celery app calling as a web process does (one reply queue per thread)."""
    app = make_app(env)
    control.install(app)
    return app


@with_worker
def test_ping__one_worker_answers_within_two_seconds(start_worker: Any, unique: str) -> None:
    """inspect ping reaches a worker through SNS and its answer comes back by the reply queue."""
    env = remote_env(unique)
    worker = start_worker(env)
    app = caller(env)
    # The worker subscribes its mailbox as it starts: the first ping may come before.
    assert wait_for(lambda: bool(app.control.ping(timeout=1.0, limit=1)), 30), worker.output()
    started = time.monotonic()
    replies = app.control.ping(timeout=2.0, limit=1)
    took = time.monotonic() - started
    print(f"ping, 1 worker: {took:.3f} s")
    assert len(replies) == 1 and list(replies[0].values()) == [{"ok": "pong"}], replies
    assert took < 2.0
