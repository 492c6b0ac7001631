"""``manage.py sqs_remote sweep``: delete remote control's leftover queues and subscriptions.

Which queues count as left over is :mod:`sqs_broker.mailboxes`' rule: the
mailbox (``<hostname>.celery.pidbox``) of a worker lost or stopped for longer
than ``--lost-for`` (``SQS_BROKER_PIDBOX_SWEEP_AFTER``), and, only when asked,
a reply queue (``<oid>.reply.celery.pidbox``) that is empty and older than
``--reply-age`` (``SQS_BROKER_REPLY_SWEEP_AFTER``); plus subscriptions of the
app's pidbox topic whose queue is gone. Only under the app's prefix, only pidbox names.

It lists what it would delete, then asks for ``sweep`` to be typed (or
``--yes``); ``--dry-run`` lists and stops. Each deletion goes to the audit
logger ``sqs_broker.audit``. The beat task ``sqs_broker.sweep_mailboxes`` does
the same without asking. Exit status: 0 swept (or nothing to sweep), 1 some
calls failed (a delete, the topic's listing), 2 SQS could not be listed, 64
usage error or not confirmed, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from sqs_broker import mailboxes, sqs
from sqs_broker.management.commands._base import (
    EXIT_COULD_NOT_CHECK,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    SqsCommand,
    number,
)
from sqs_broker.management.commands._confirm import audit, interrupts_held
from sqs_broker.topology import Topology

COMMAND = "manage.py sqs_remote sweep"
#: What is typed at the prompt to confirm.
CONFIRM_WORD = "sweep"


class Command(SqsCommand):
    #: call_command(..., stdin=...) gives the typed confirmation (tests, scripts).
    stealth_options = ("stdin",)
    help = (
        "Remote control's queues: 'sweep' deletes the mailboxes of workers lost for long, idle "
        "reply queues and subscriptions of the app's pidbox topic whose queue is gone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["sweep"], help="What to do: 'sweep'.")
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be deleted, delete nothing."
        )
        parser.add_argument("--yes", action="store_true", help="Delete without asking.")
        parser.add_argument(
            "--lost-for",
            type=number(float, 60, None, "seconds"),
            metavar="SECONDS",
            help="A mailbox is swept once its worker has been lost or stopped this long "
            "(default: SQS_BROKER_PIDBOX_SWEEP_AFTER, 3600).",
        )
        parser.add_argument(
            "--reply-age",
            type=number(float, 600, None, "seconds"),
            metavar="SECONDS",
            help="Also sweep empty reply queues this old (default: SQS_BROKER_REPLY_SWEEP_AFTER, "
            "None: reply queues are kept). A caller still running whose reply queue is deleted "
            "fails its next calls: give an age no caller process reaches.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        topo = Topology.of()
        if not topo.is_sqs:
            raise CommandError("The broker is not SQS: nothing to sweep.", returncode=EXIT_USAGE)
        try:
            found = mailboxes.survey(
                topo, pidbox_after=options.get("lost_for"), reply_after=options.get("reply_age")
            )
        except KeyboardInterrupt:
            raise CommandError(
                "Interrupted: nothing was deleted.", returncode=EXIT_INTERRUPTED
            ) from None
        except Exception as exc:
            raise CommandError(
                f"Could not list the queues: {sqs.error_text(exc)[0]}",
                returncode=EXIT_COULD_NOT_CHECK,
            ) from None
        self._show(found)
        doomed = len(found.leftovers) + len(found.orphans)
        if options.get("dry_run") or not doomed:
            if not doomed:
                self.stdout.write("Nothing to sweep.")
            self._failed(found.errors)
            return
        self._confirm(doomed, options)
        with interrupts_held(self.stderr) as held:
            result = mailboxes.sweep(topo, found=found)
            for name in result.deleted:
                audit(COMMAND, f"deleted queue {name}")
            for arn in result.unsubscribed:
                audit(COMMAND, f"removed subscription {arn}")
            if held.pressed:
                self.stderr.write("Ctrl-C came during the sweep: it went ahead.")
        self.stdout.write(
            f"Deleted {len(result.deleted)} queue(s), removed "
            f"{len(result.unsubscribed)} subscription(s)."
        )
        self._failed(result.errors)

    def _failed(self, errors: list[str]) -> None:
        for error in errors:
            self.stderr.write(self.style.ERROR(error))
        if errors:
            raise CommandError(
                f"{len(errors)} call(s) failed: what they concern was not swept; run the "
                "sweep again.",
                returncode=EXIT_FINDINGS,
            )

    def _show(self, found: mailboxes.Survey) -> None:
        for note in found.notes:
            self.stdout.write(f"Note: {note}.")
        for box in found.mailboxes:
            verb = "delete" if box.leftover else "keep"
            who = f" ({box.hostname})" if box.hostname else ""
            self.stdout.write(f"  {verb:6} {box.kind:6} {box.name}{who}: {box.reason}")
        for sub in found.orphans:
            self.stdout.write(f"  delete subscription {sub.arn}: its queue {sub.queue} is gone")

    def _confirm(self, doomed: int, options: dict[str, Any]) -> None:
        if options.get("yes"):
            return
        stdin = options.get("stdin") or sys.stdin
        try:
            self.stdout.write(
                f"Delete these {doomed} item(s)? Type '{CONFIRM_WORD}' to confirm: ", ending=""
            )
            self.stdout.flush()
            typed = stdin.readline()
        except KeyboardInterrupt:
            self.stdout.write("")
            raise CommandError(
                "Interrupted at the prompt: nothing was deleted.", returncode=EXIT_INTERRUPTED
            ) from None
        if not (hasattr(stdin, "isatty") and stdin.isatty()):
            self.stdout.write("")
        if typed.strip() != CONFIRM_WORD:
            raise CommandError(
                f"Not confirmed: nothing was deleted (type '{CONFIRM_WORD}', or pass --yes).",
                returncode=EXIT_USAGE,
            )
