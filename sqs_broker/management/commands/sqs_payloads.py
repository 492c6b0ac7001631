"""``manage.py sqs_payloads sweep``: delete stored message bodies whose messages are gone.

Task messages too large for SQS are stored in ``SQS_BROKER_LARGE_PAYLOAD_BUCKET``
(see docs/publishing.md); a worker deletes each object after acknowledging its
message. What is left (a worker killed before the delete, a dead-lettered,
quarantined or purged message) is deleted here once it is older than any
message that could still point to it: the queue's retention plus its
dead-letter or quarantine queue's (:func:`sqs_broker.payloads.sweep.keep_for`). The
Celery beat task ``sqs_broker.sweep_payloads`` does the same from a worker.

Exit status: 0 when the sweep ran and every delete succeeded, 1 when some
objects could not be deleted, 2 when the bucket could not be swept (no bucket
configured, S3 unreachable or access denied).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_broker.payloads.sweep import sweep


class Command(BaseCommand):
    help = (
        "Sweep the large-payload bucket: delete stored task message bodies older than any "
        "message that could still point to them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action",
            choices=["sweep"],
            help="What to do: 'sweep' deletes objects whose messages can no longer exist.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List what would be deleted, delete nothing (default: delete).",
        )
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="SECONDS",
            help="Delete objects older than this many seconds, whatever the queues' retention "
            "(default: each queue's retention plus its dead-letter or quarantine queue's, "
            "plus an hour).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = options.get("older_than")
        if older_than is not None and not older_than >= 0:
            raise CommandError("--older-than must be a number of seconds >= 0.", returncode=2)
        dry_run = bool(options.get("dry_run"))
        try:
            result = sweep(dry_run=dry_run, older_than=older_than)
        except RuntimeError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except Exception as exc:  # the listing failed: nothing was judged
            raise CommandError(
                f"Could not list the bucket: {type(exc).__name__}: {exc}", returncode=2
            ) from None
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {result.deleted_total} of {result.scanned} stored bodies; kept {result.kept}."
        )
        for queue, count in sorted(result.deleted.items()):
            bound = result.bounds.get(queue)  # none with --older-than
            kept_for = f" (older than {bound / 86400:.1f} days)" if bound is not None else ""
            self.stdout.write(f"  {queue or '(no queue in the key)'}: {count}{kept_for}")
        for error in result.errors:
            self.stderr.write(self.style.ERROR(error))
        if result.errors:
            raise CommandError(
                f"{len(result.errors)} delete(s) failed; the objects are still there.",
                returncode=1,
            )
