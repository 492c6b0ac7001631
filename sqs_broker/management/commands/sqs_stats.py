"""``manage.py sqs_stats``: the dashboard's data as JSON, once or every N seconds.

The same :func:`sqs_broker.stats.gather` result as ``/sqs/stats.json``
(secrets masked), for a shell, a cron job or ``jq``. ``--interval N``
prints one JSON document per line every N seconds until Ctrl-C.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from sqs_broker import stats
from sqs_broker.management.commands._output import reader_gone


class Command(BaseCommand):
    help = (
        "Print queues, findings, workers and tasks as JSON (the data of /sqs/stats.json); "
        "with --interval N, one line every N seconds until Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval",
            type=float,
            metavar="N",
            help="Print every N seconds until interrupted, one JSON document per line.",
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
            help="Skip the online findings (fewer calls to SQS and STS).",
        )
        parser.add_argument("--indent", type=int, default=None, help="Pretty-print (one shot).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            window = stats.parse_window(options["window"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        interval = options["interval"]
        if interval is not None and not (math.isfinite(interval) and interval > 0):
            raise CommandError(_("--interval must be a number of seconds above 0."), returncode=2)
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
