"""Celery's ``app.control`` answered as named workers would, and heartbeats of live workers.

For the tests of ``sqs_broker.remote`` and the dashboard's worker pages that
need no real worker: :class:`Control` records each call and answers in
Celery's reply shapes; :func:`remote_app` is an app with remote control on
whose control it is; :func:`beat` writes a worker's heartbeat.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from sqs_broker.control import KeptReplyMailbox
from sqs_broker.models import WorkerHeartbeat
from tests.support.env import base_env, make_app


class Control:
    """Celery's ``app.control`` as the workers in ``answers`` would answer it.

    ``answers``: ``{hostname: {command: reply}}``; a worker answers a command
    it has a reply for. Each call is recorded in ``calls`` with its arguments.
    """

    def __init__(self, answers: dict[str, dict[str, Any]], fail: Exception | None = None):
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail
        # sqs_broker.control.install() finds it already in place and leaves it.
        self.mailbox = KeptReplyMailbox.__new__(KeptReplyMailbox)

    def _replies(self, command: str, destination: list[str] | None) -> list[dict[str, Any]]:
        if self.fail:
            raise self.fail
        return [
            {host: replies[command]}
            for host, replies in self.answers.items()
            if command in replies and (destination is None or host in destination)
        ]

    def inspect(self, **kwargs: Any) -> Any:
        control = self

        class Inspect:
            def __getattr__(self, command: str) -> Any:
                def call() -> dict[str, Any] | None:
                    control.calls.append((command, kwargs))
                    replies = control._replies(command, kwargs.get("destination"))
                    merged = {k: v for r in replies for k, v in r.items()}
                    return merged or None

                return call

        return Inspect()

    def _command(self, command: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append((command, kwargs))
            if not kwargs.get("reply"):
                return None
            return self._replies(command, kwargs.get("destination"))

        return call

    def __getattr__(self, command: str) -> Any:
        return self._command(command)


def remote_app(control: Control, on: bool = True) -> Any:
    app = make_app(base_env(), worker_enable_remote_control=on)
    app.control = control  # a cached property: the instance's own value wins
    return app


def beat(hostname: str, pool: str = "prefork", seconds_ago: float = 1, **fields: Any) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        hostname=hostname,
        pid=1,
        pool=pool,
        concurrency=2,
        queues=["celery"],
        started_at=now - timedelta(minutes=5),
        last_seen=now - timedelta(seconds=seconds_ago),
        interval=10,
        **fields,
    )


ACTIVE = [
    {
        "id": "t-1",
        "name": "project.demo.add",
        "args": [1, 2],
        "kwargs": {"token": "x"},
        "time_start": 1_700_000_000.0,
        "worker_pid": 42,
    }
]
SCHEDULED = [
    {"eta": "2030-01-01T00:00:00+00:00", "priority": 6, "request": {"id": "t-2", "name": "n"}}
]
