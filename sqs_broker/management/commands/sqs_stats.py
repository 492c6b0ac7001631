"""``manage.py sqs_stats``: the dashboard's data as JSON, once or every N seconds.

The same :func:`sqs_broker.stats.gather` result as ``/sqs/stats.json``
(secrets masked), for a shell, a cron job or ``jq``. ``--interval N``
prints one JSON document per line every N seconds until Ctrl-C.
Exit status: 0 printed (or stopped by Ctrl-C), 64 a usage error, 130
interrupted while printing once.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _

from sqs_broker import stats
from sqs_broker.management.commands._base import (
    EXIT_USAGE,
    MAX_INDENT,
    MAX_INTERVAL,
    MIN_INTERVAL,
    SqsCommand,
    interval_seconds,
    number,
)
from sqs_broker.management.commands._output import reader_gone


class Command(SqsCommand):
    help = (
        "Print queues, findings, workers and tasks as JSON (the data of /sqs/stats.json); "
        "with --interval N, one line every N seconds until Ctrl-C. "
        "Exit status: 0 printed (or stopped with Ctrl-C), 64 usage error, 130 interrupted "
        "(one shot)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval",
            type=interval_seconds,
            metavar="N",
            help=f"Print every N seconds ({MIN_INTERVAL:g} to {MAX_INTERVAL:g}) until "
            "interrupted, one JSON document per line (default: print once).",
        )
        parser.add_argument(
            "--window",
            default=None,
            metavar="SECONDS",
            help="Seconds of task telemetry: 300 (default), 3600 or 86400.",
        )
        parser.add_argument(
            "--offline",
            action="store_true",
            help="Skip the online findings (fewer calls to SQS and STS; default: run them).",
        )
        parser.add_argument(
            "--indent",
            type=number(int, 0, MAX_INDENT),
            default=None,
            metavar="N",
            help=f"Pretty-print with N spaces (0 to {MAX_INDENT}; one shot only; "
            "default: one line).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            window = stats.parse_window(options["window"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None
        interval = options["interval"]
        if interval is not None and options["indent"] is not None:
            raise CommandError(
                _("--indent is for one shot: --interval prints one JSON document per line."),
                returncode=EXIT_USAGE,
            )
        online = not options["offline"]
        if interval is None:
            data = stats.gather(window=window, online=online)
            self.stdout.write(json.dumps(data, ensure_ascii=False, indent=options["indent"]))
            return
        try:
            while True:
                started = time.monotonic()
                data = stats.gather(window=window, online=online)
                self.stdout.write(json.dumps(data, ensure_ascii=False))
                self.stdout.flush()
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
        except KeyboardInterrupt:
            self.stderr.write(_("Stopped."))
        except BrokenPipeError:
            reader_gone()
