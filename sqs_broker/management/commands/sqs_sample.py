"""``manage.py sqs_sample``: record queue depths for the dashboard's history.

Writes one :class:`~sqs_broker.models.QueueSample` per queue (and dead-letter
queue) that answers, then prunes samples older than
``SQS_BROKER_RETENTION_DAYS``. ``--once`` samples once; ``--interval N``
samples every N seconds until interrupted. The Celery beat task
``sqs_broker.sample_queues`` does the same from a worker.

Exit status: 0 when every queue answered (a declared queue that does not
exist yet is reported, not counted as a failure), 1 when some queue failed
(samples of the others are written), 2 when no queue could be read, 64 a
usage error, 130 interrupted (``--once``; ``--interval`` stops with 0).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError, CommandParser

from sqs_broker import stats
from sqs_broker.management.commands._base import (
    EXIT_COULD_NOT_CHECK,
    EXIT_FINDINGS,
    MAX_INTERVAL,
    MIN_INTERVAL,
    SqsCommand,
    interval_seconds,
)
from sqs_broker.management.commands._output import reader_gone


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class Command(SqsCommand):
    help = (
        "Record the depth of every queue the Celery app uses (visible, in flight, delayed), "
        "for the dashboard's sparklines and charts, and prune samples older than "
        "SQS_BROKER_RETENTION_DAYS. Exit status: 0 every queue sampled, 1 some failed, "
        "2 none could be read, 64 usage error, 130 interrupted (one sample)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--once", action="store_true", help="Take one sample and exit (the default)."
        )
        mode.add_argument(
            "--interval",
            type=interval_seconds,
            metavar="N",
            help=f"Take a sample every N seconds ({MIN_INTERVAL:g} to {MAX_INTERVAL:g}) until "
            "interrupted (default: sample once).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options.get("interval")
        if interval is None:
            self._sample_once(raise_on_failure=True)
            return
        try:
            while True:
                started = time.monotonic()
                self._sample_once(raise_on_failure=False)
                self.stdout.flush()  # each pass reaches a pipe or a log file as it happens
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
        except BrokenPipeError:
            reader_gone()

    def _sample_once(self, raise_on_failure: bool) -> None:
        result = stats.sample()
        line = (
            f"Sampled {_count(result.written, 'queue')}; "
            f"pruned {_count(result.pruned, 'old sample')}."
        )
        self.stdout.write(line)
        for name in result.missing:
            self.stdout.write(f"{name}: does not exist yet (Celery creates it on first use).")
        for name, error in result.failed.items():
            self.stderr.write(self.style.ERROR(f"{name}: {error}"))
        if raise_on_failure and result.failed:
            code = EXIT_COULD_NOT_CHECK if result.written == 0 else EXIT_FINDINGS
            raise CommandError(
                f"{len(result.failed)} queue(s) could not be sampled.", returncode=code
            )
