"""``manage.py sqs_purge QUEUE``: PurgeQueue, with the dashboard's safety.

Only a queue the app owns (declared, predefined, or one of their dead-letter
queues); ``--yes``, or the queue's name typed at the prompt. Ctrl-C before
PurgeQueue is sent does nothing; once it is sent, Ctrl-C is held until SQS
answers and the audit line is written (a second Ctrl-C stops the wait, and
the audit line then says the outcome is unknown). Exit status: 0 purged,
1 SQS refused (one purge per queue every 60 s, access denied), 64 not the
app's queue or not confirmed, 130 interrupted.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from sqs_broker import actions, sqs
from sqs_broker.management.commands._base import EXIT_FINDINGS, EXIT_INTERRUPTED, SqsCommand
from sqs_broker.management.commands._confirm import audit, confirm, interrupts_held, owned
from sqs_broker.topology import Topology

COMMAND = "manage.py sqs_purge"


class Command(SqsCommand):
    #: call_command(..., stdin=...) gives the typed confirmation (tests, scripts).
    stealth_options = ("stdin",)
    help = (
        "Delete every message of one of the app's queues (PurgeQueue). Asks for the queue's "
        "name unless --yes is given. Exit status: 0 purge started, 1 SQS refused, 64 not the "
        "app's queue, not confirmed or a usage error (nothing done), 130 interrupted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queue", help="The queue's SQS name, prefix included.")
        parser.add_argument(
            "--yes", action="store_true", help="Purge without asking (default: ask)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["queue"]
        topo = Topology.of()
        try:
            state = owned(name, topo)
            count = state.int("ApproximateNumberOfMessages")
            shown = count if count is not None else "?"
            self.stdout.write(f"{name}: about {shown} visible messages.")
            confirm(name, f"purge {name}", options, self.stdout)
        except KeyboardInterrupt:
            raise CommandError(
                "Interrupted: nothing was purged.", returncode=EXIT_INTERRUPTED
            ) from None
        self._purge(state, shown, topo)

    def _purge(self, state: Any, shown: object, topo: Topology) -> None:
        name = state.ref.name
        with interrupts_held(self.stderr) as held:
            try:
                with held.may_stop():
                    actions.purge(state, topo)
            except KeyboardInterrupt:
                audit(
                    COMMAND,
                    f"interrupted while asking SQS to purge {name} (about {shown} visible "
                    "messages): whether it purged is unknown",
                )
                raise CommandError(
                    f"Interrupted while asking SQS to purge {name}: whether it purged is "
                    f"unknown; look at its depth (manage.py sqs_stats).",
                    returncode=EXIT_INTERRUPTED,
                ) from None
            except Exception as exc:
                raise CommandError(
                    f"Purging {name} failed: {sqs.error_text(exc)[0]}", returncode=EXIT_FINDINGS
                ) from None
            audit(COMMAND, f"purged {name} (about {shown} visible messages)")
            self.stdout.write(
                f"Purge of {name} started: SQS deletes its messages within about 60 seconds."
            )
            if held.pressed:
                self.stderr.write("Ctrl-C came after PurgeQueue was sent: the purge went ahead.")
