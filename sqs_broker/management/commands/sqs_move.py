"""``manage.py sqs_move QUEUE``: move dead letters back, all or some, at a rate, with progress.

QUEUE is the queue whose dead-letter queue is emptied (the destination).
``--task`` (``*`` globs) and ``--exception`` (text of the stored exception)
select messages; ``--rate`` caps messages per second; ``--limit`` caps the
move. Progress prints as the move runs; Ctrl-C cancels it (messages passed
over are made visible again). ``--list`` shows SQS's native move tasks of the
dead-letter queue; ``--cancel HANDLE`` cancels one. Exit status: 0 done,
1 failed or cancelled, 2 bad arguments, not the app's queue, or not confirmed.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_broker import actions, moves, sqs
from sqs_broker.conf import app_settings
from sqs_broker.management.commands._confirm import audit, confirm, owned
from sqs_broker.topology import Topology


class Command(BaseCommand):
    #: call_command(..., stdin=...) gives the typed confirmation (tests, scripts).
    stealth_options = ("stdin",)
    help = (
        "Move messages from a queue's dead-letter queue back to it: all, or by task name or "
        "exception, at most --rate per second, with progress; Ctrl-C cancels."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queue", help="The queue to move dead letters back to.")
        parser.add_argument("--task", help="Only this task name (* matches any characters).")
        parser.add_argument(
            "--exception", help="Only tasks whose stored exception contains this text."
        )
        parser.add_argument("--rate", type=float, help="At most this many messages per second.")
        parser.add_argument(
            "--limit", type=int, default=None, help="At most this many messages (copy moves)."
        )
        parser.add_argument("--yes", action="store_true", help="Move without asking.")
        parser.add_argument(
            "--list", action="store_true", help="List SQS's move tasks of the dead-letter queue."
        )
        parser.add_argument("--cancel", metavar="HANDLE", help="Cancel SQS's move task HANDLE.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["queue"]
        topo = Topology.of()
        source = owned(name, topo)
        dlq = actions.dead_letter_state(source, topo)
        if dlq is None:
            raise CommandError(f"{name} has no dead-letter queue (no RedrivePolicy).", returncode=2)
        if dlq.error:
            raise CommandError(f"{dlq.ref.name}: {dlq.error}", returncode=1)
        if options["list"] or options["cancel"]:
            self._native(dlq, topo, options)
            return
        rate, limit = options["rate"], options["limit"]
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise CommandError(
                "--rate must be a number of messages per second above 0.", returncode=2
            )
        if limit is None:
            limit = app_settings.REDRIVE_LIMIT
        elif limit <= 0:  # never "no limit": 0 would otherwise move every dead letter
            raise CommandError("--limit must be a number of messages above 0.", returncode=2)
        visible = dlq.int("ApproximateNumberOfMessages")
        self.stdout.write(
            f"{dlq.ref.name}: about {visible if visible is not None else '?'} messages."
        )
        confirm(name, f"move messages of {dlq.ref.name} back to {name}", options, self.stdout)
        try:
            record = moves.start(
                dlq,
                source,
                topo,
                task=options["task"],
                exception=options["exception"],
                rate=rate,
                limit=limit,
                user="manage.py sqs_move",
            )
        except Exception as exc:
            raise CommandError(f"The move could not start: {sqs.error_text(exc)[0]}") from None
        try:
            while record["state"] == "running":
                record = moves.step(record["id"], topo)
                self.stdout.write(
                    f"  {record['state']}: {record['moved']} moved, {record['skipped']} passed "
                    f"over, {record['failed']} not sent"
                )
                self.stdout.flush()  # progress as it happens, through a pipe too
        except KeyboardInterrupt:
            record = moves.cancel(record["id"], topo)
        self.stdout.write(moves.describe(record))
        audit("manage.py sqs_move", moves.describe(record))
        for error in record["errors"]:
            self.stderr.write(error)
        if record["state"] != "done":
            raise CommandError(f"The move ended {record['state']}.", returncode=1)

    def _native(self, dlq: Any, topo: Topology, options: dict[str, Any]) -> None:
        try:
            if options["cancel"]:
                moved = actions.cancel_message_move(dlq, options["cancel"], topo)
                self.stdout.write(f"Cancelled {options['cancel']}: {moved} messages moved.")
                audit(
                    "manage.py sqs_move",
                    f"cancelled StartMessageMoveTask {options['cancel']} of {dlq.ref.name} "
                    f"({moved} messages moved)",
                )
                return
            tasks = actions.list_message_moves(dlq, topo)
        except Exception as exc:
            raise CommandError(sqs.error_text(exc)[0]) from None
        if not tasks:
            self.stdout.write(f"No move task of {dlq.ref.name} is known to SQS.")
        for task in tasks:
            self.stdout.write(
                f"{task.get('TaskHandle', '-')}  {task.get('Status')}  "
                f"{task.get('ApproximateNumberOfMessagesMoved', 0)}/"
                f"{task.get('ApproximateNumberOfMessagesToMove', '?')} moved  "
                f"{task.get('FailureReason', '')}".rstrip()
            )
