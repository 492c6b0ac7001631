"""``manage.py sqs_move QUEUE``: move dead letters back, all or some, at a rate, with progress.

QUEUE is the queue whose dead-letter queue is emptied (the destination).
``--task`` (``*`` globs) and ``--exception`` (text of the stored exception)
select messages; ``--rate`` caps messages per second; ``--limit`` caps the
move. Messages whose stored result is SUCCESS stay unless
``--include-succeeded``; ``--dry-run`` prints what the dead-letter queue
holds (by task, exception and stored state) and what each choice would move,
and moves nothing; ``--delete-succeeded`` deletes the succeeded ones.

Progress prints as the move runs. Ctrl-C stops it at the end of the step
under way (at most a few seconds): a message is never left sent and not
deleted by the interruption, the progress is saved, messages passed over are
made visible again, and the audit line counts what moved. ``--list`` shows
SQS's native move tasks of the dead-letter queue; ``--cancel HANDLE`` cancels
one. Exit status: 0 done, 1 failed or cancelled (or SQS could not be read),
64 a usage error (a bad option, a queue that is not the app's or has no
dead-letter queue, not confirmed), 130 interrupted before the move started.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandError, CommandParser

from sqs_broker import actions, moves, sqs, triage
from sqs_broker.conf import app_settings
from sqs_broker.management.commands._base import EXIT_USAGE, SqsCommand
from sqs_broker.management.commands._confirm import audit, confirm, owned
from sqs_broker.topology import Topology


class Interrupts:
    """Ctrl-C presses noted while a move runs, acted on between its steps."""

    def __init__(self) -> None:
        self.count = 0

    def note(self, signum: int, frame: Any) -> None:
        self.count += 1


@contextmanager
def interrupts_between_steps() -> Iterator[Interrupts]:
    """SIGINT noted instead of raised, for the block; the previous handler restored after.

    A KeyboardInterrupt raised between a send and its delete would leave the
    message in both queues and the step's progress unsaved; noted, it ends
    the move after the step under way, with everything counted.
    """
    noted = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield noted  # no signal reaches another thread: nothing to defer
        return
    previous = signal.signal(signal.SIGINT, noted.note)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


class Command(SqsCommand):
    #: call_command(..., stdin=...) gives the typed confirmation (tests, scripts).
    stealth_options = ("stdin",)
    help = (
        "Move messages from a queue's dead-letter queue back to it: all, or by task name or "
        "exception, at most --rate per second, with progress; Ctrl-C cancels."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queue", help="The queue to move dead letters back to.")
        parser.add_argument(
            "--task", help="Only this task name (* matches any characters). Default: every task."
        )
        parser.add_argument(
            "--exception",
            help="Only tasks whose stored exception contains this text. Default: any.",
        )
        parser.add_argument(
            "--rate",
            type=float,
            help="At most this many messages per second (default: as fast as SQS allows).",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="At most this many messages (copy moves; default: SQS_BROKER_REDRIVE_LIMIT).",
        )
        parser.add_argument(
            "--include-succeeded",
            action="store_true",
            help="Move messages whose stored result is SUCCESS too (default: they stay).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print the dead-letter queue's breakdown (by task, exception and stored "
            "state; a sample of at most 100 messages, each received once, which raises its "
            "receive count by 1) and what a move would take; move nothing. Default: off.",
        )
        parser.add_argument(
            "--delete-succeeded",
            action="store_true",
            help="Delete dead letters whose stored result is SUCCESS (at most 100 per run), "
            "after confirmation. Default: off.",
        )
        parser.add_argument(
            "--yes", action="store_true", help="Move without asking (default: ask)."
        )
        parser.add_argument(
            "--list",
            action="store_true",
            help="List SQS's move tasks of the dead-letter queue (default: off).",
        )
        parser.add_argument(
            "--cancel",
            metavar="HANDLE",
            help="Cancel SQS's move task HANDLE (default: none).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["queue"]
        topo = Topology.of()
        source = owned(name, topo)
        dlq = actions.dead_letter_state(source, topo)
        if dlq is None:
            raise CommandError(
                f"{name} has no dead-letter queue (no RedrivePolicy).", returncode=EXIT_USAGE
            )
        if dlq.error:
            raise CommandError(f"{dlq.ref.name}: {dlq.error}", returncode=1)
        chosen = [o for o in ("list", "cancel", "dry_run", "delete_succeeded") if options[o]]
        if len(chosen) > 1:
            names = " and ".join("--" + o.replace("_", "-") for o in chosen)
            raise CommandError(f"{names} cannot be combined: choose one.", returncode=EXIT_USAGE)
        if options["list"] or options["cancel"]:
            self._native(dlq, topo, options)
            return
        if options["dry_run"]:
            self._dry_run(dlq, name, topo)
            return
        if options["delete_succeeded"]:
            self._delete_succeeded(dlq, name, topo, options)
            return
        rate, limit = options["rate"], options["limit"]
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise CommandError(
                "--rate must be a number of messages per second above 0.", returncode=EXIT_USAGE
            )
        if limit is None:
            limit = app_settings.REDRIVE_LIMIT
        elif limit <= 0:  # never "no limit": 0 would otherwise move every dead letter
            raise CommandError(
                "--limit must be a number of messages above 0.", returncode=EXIT_USAGE
            )
        visible = dlq.int("ApproximateNumberOfMessages")
        self.stdout.write(
            f"{dlq.ref.name}: about {visible if visible is not None else '?'} messages."
        )
        confirm(name, f"move messages of {dlq.ref.name} back to {name}", options, self.stdout)
        with interrupts_between_steps() as interrupted:
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
                    include_succeeded=options["include_succeeded"],
                )
            except Exception as exc:
                raise CommandError(f"The move could not start: {sqs.error_text(exc)[0]}") from None
            if not record["include_succeeded"]:
                self.stdout.write(
                    "Messages whose stored result is SUCCESS stay (--include-succeeded moves "
                    "them too)."
                )
            elif not options["include_succeeded"]:
                self.stdout.write(
                    "No result store is configured: no message is known to have succeeded, "
                    "so every one moves."
                )
            while record["state"] == "running" and not interrupted.count:
                record = moves.step(record["id"], topo)
                left = len(record.get("succeeded") or {})
                self.stdout.write(
                    f"  {record['state']}: {record['moved']} moved, {record['skipped']} passed "
                    f"over, {record['failed']} not sent"
                    + (f", {left} left as succeeded" if left else "")
                )
                self.stdout.flush()  # progress as it happens, through a pipe too
            if interrupted.count and record["state"] == "running":
                self.stdout.write("Interrupted: stopping after the step under way.")
                record = moves.cancel(record["id"], topo)
        self.stdout.write(moves.describe(record))
        audit("manage.py sqs_move", moves.describe(record))
        for error in record["errors"]:
            self.stderr.write(error)
        if record["state"] != "done":
            raise CommandError(f"The move ended {record['state']}.", returncode=1)

    def _dry_run(self, dlq: Any, name: str, topo: Topology) -> None:
        try:
            found = triage.breakdown(dlq, topo, source=name)
        except Exception as exc:
            raise CommandError(
                f"{dlq.ref.name} could not be sampled: {sqs.error_text(exc)[0]}", returncode=1
            ) from None
        for line in breakdown_lines(found, name):
            self.stdout.write(line)
        if found["results_error"]:
            self.stderr.write(f"Stored results could not be read: {found['results_error']}")

    def _delete_succeeded(
        self, dlq: Any, name: str, topo: Topology, options: dict[str, Any]
    ) -> None:
        confirm(
            dlq.ref.name,
            f"delete the dead letters of {dlq.ref.name} whose stored result is SUCCESS",
            options,
            self.stdout,
        )
        with interrupts_between_steps() as interrupted:
            try:
                done = triage.delete_succeeded(dlq, topo)
            except LookupError as exc:
                raise CommandError(f"Nothing was deleted: {exc}", returncode=1) from None
            except Exception as exc:
                raise CommandError(sqs.error_text(exc)[0], returncode=1) from None
        text = triage.describe_deleted(done)
        self.stdout.write(text)
        audit("manage.py sqs_move", text)
        if interrupted.count:
            self.stdout.write("Interrupted: the sample under way was finished first.")
        for error in done["errors"]:
            self.stderr.write(error)
        if done["errors"]:
            raise CommandError("Some dead letters could not be deleted.", returncode=1)

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


def breakdown_lines(found: Any, name: str) -> list[str]:
    """The ``--dry-run`` report: the sample, its groups, and what each move would take."""
    approximate = found["approximate"]
    scope = "all of them" if found["complete"] else f"at most {found['sampled']}"
    lines = [
        f"{found['queue']}: about {approximate if approximate is not None else '?'} messages; "
        f"sampled {found['sampled']} ({scope}) with {found['receives']} receives and "
        f"{found['releases']} visibility changes; each sampled message's receive count "
        "went up by 1.",
    ]
    if found["groups"]:
        lines.append(f"  {'count':>5}  {'stored state':<12}  {'task':<40}  exception")
    for group in found["groups"]:
        lines.append(
            f"  {group['count']:>5}  {group['state'] or 'no result':<12}  "
            f"{group['task'] or '(not a Celery message)':<40}  {group['exception'] or '-'}"
        )
    moves = found["would_move"]
    estimate = found["would_move_estimate"]
    whole = ""
    if not found["complete"] and estimate["default"] is not None:
        whole = f" (about {estimate['default']} of the whole queue)"
    lines.append(
        f"A move back to {name} would take {moves['default']} of the {found['sampled']} "
        f"sampled{whole}, leaving {found['succeeded']} with a stored SUCCESS result; with "
        f"--include-succeeded it would take {moves['include_succeeded']}."
    )
    return lines
