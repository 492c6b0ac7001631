"""``manage.py sqs_purge QUEUE``: PurgeQueue, with the dashboard's safety.

Only a queue the app owns (declared, predefined, or one of their dead-letter
queues); ``--yes``, or the queue's name typed at the prompt. Exit status: 0
purged, 1 SQS refused (one purge per queue every 60 s, access denied), 2 not
the app's queue or not confirmed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_broker import actions, sqs
from sqs_broker.management.commands._confirm import audit, confirm, owned
from sqs_broker.topology import Topology


class Command(BaseCommand):
    #: call_command(..., stdin=...) gives the typed confirmation (tests, scripts).
    stealth_options = ("stdin",)
    help = (
        "Delete every message of one of the app's queues (PurgeQueue). Asks for the queue's "
        "name unless --yes is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queue", help="The queue's SQS name, prefix included.")
        parser.add_argument("--yes", action="store_true", help="Purge without asking.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["queue"]
        topo = Topology.of()
        state = owned(name, topo)
        count = state.int("ApproximateNumberOfMessages")
        self.stdout.write(f"{name}: about {count if count is not None else '?'} visible messages.")
        confirm(name, f"purge {name}", options, self.stdout)
        try:
            actions.purge(state, topo)
        except Exception as exc:
            raise CommandError(f"Purging {name} failed: {sqs.error_text(exc)[0]}") from None
        audit("manage.py sqs_purge", f"purged {name} (about {count} visible messages)")
        self.stdout.write(
            f"Purge of {name} started: SQS deletes its messages within about 60 seconds."
        )
