"""``manage.py sqs_revoke TASK_ID...``: revoke task ids in the database, for every worker.

Workers started later refuse them too (:mod:`sqs_broker.revocation_sync`);
running workers from their next refresh, or at once with remote control on
(``SQS_BROKER_REMOTE_CONTROL``: the revocation is broadcast too). ``--list`` shows the unexpired
revocations, ``--forget`` withdraws some. Each change is written on the
``sqs_broker.audit`` logger with the OS user. Exit status: 0 done, 2 the
database (or, for the default expiry, nothing else) could not be used,
64 a usage error (nothing done), 130 interrupted.
"""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError

from sqs_broker import control, revocations
from sqs_broker.conf import app_settings
from sqs_broker.management.commands._base import (
    EXIT_COULD_NOT_CHECK,
    EXIT_USAGE,
    SqsCommand,
    number,
)
from sqs_broker.redact import scrub
from sqs_broker.revocations import MAX_EXPIRES, MAX_REASON
from sqs_broker.telemetry.read import snapshot
from sqs_broker.topology import Topology

COMMAND = "manage.py sqs_revoke"
#: Seconds the broadcast (with remote control on) waits for running workers' answers.
BROADCAST_TIMEOUT = 2.0


def _alive() -> int | None:
    """Workers whose heartbeats say alive (None without telemetry): the answers to wait for."""
    if not app_settings.TELEMETRY:
        return None
    return sum(1 for worker in snapshot(60)["workers"] if worker["alive"]) or None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "?"


def _when(moment: Any) -> str:
    return str(moment.isoformat(timespec="seconds"))


class Command(SqsCommand):
    help = (
        "Revoke tasks by id for every worker, those started later included: the ids are kept "
        "in the database until they expire, and workers discard their messages unrun. "
        "Exit status: 0 done, 2 the database could not be used, 64 a usage error (nothing "
        "done), 130 interrupted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task_ids", nargs="*", metavar="TASK_ID", help="Task ids to revoke.")
        parser.add_argument(
            "--expires",
            type=number(int, 1, MAX_EXPIRES, "seconds"),
            metavar="SECONDS",
            help=(
                "How long the revocation lasts (default: the longest message retention of the "
                "app's queues, as SQS answers; 345600 = 4 days, SQS's default, if unknown)."
            ),
        )
        parser.add_argument(
            "--reason", default="", help="Why, kept with the revocation (default: none)."
        )
        parser.add_argument(
            "--list",
            action="store_true",
            help="List the unexpired revocations instead (default: off).",
        )
        parser.add_argument(
            "--forget",
            action="append",
            metavar="TASK_ID",
            default=[],
            help="Withdraw the revocation of TASK_ID; may be repeated (default: none).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[str] = list(options["task_ids"])
        forget: list[str] = list(options["forget"] or [])
        chosen = [bool(ids), bool(options["list"]), bool(forget)]
        if sum(chosen) != 1:
            raise CommandError(
                "Give task ids to revoke, or --list, or --forget TASK_ID (one of the three).",
                returncode=EXIT_USAGE,
            )
        if (options["list"] or forget) and (options["expires"] is not None or options["reason"]):
            raise CommandError(
                "--expires and --reason go with task ids to revoke, not with --list or --forget.",
                returncode=EXIT_USAGE,
            )
        try:
            if options["list"]:
                self._list()
            elif forget:
                self._forget(forget)
            else:
                self._revoke(ids, options["expires"], options["reason"])
        except DatabaseError as exc:
            raise CommandError(
                f"The database could not be used: {exc}", returncode=EXIT_COULD_NOT_CHECK
            ) from None

    def _revoke(self, ids: list[str], expires: int | None, reason: str) -> None:
        if len(reason) > MAX_REASON:
            raise CommandError(
                f"--reason is at most {MAX_REASON} characters; got {len(reason)}.",
                returncode=EXIT_USAGE,
            )
        source = "--expires"
        if expires is None:
            expires, source = revocations.default_expiry(Topology.of())
        try:
            outcome = revocations.revoke(
                ids, user=_user(), reason=reason, expires=expires, via=COMMAND
            )
        except ValueError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None
        until = _when(outcome.expires_at)
        for task_id in outcome.added:
            self.stdout.write(f"Revoked {task_id} until {until}.")
        for task_id in outcome.renewed:
            self.stdout.write(f"Already revoked, renewed until {until}: {task_id}.")
        self.stdout.write(f"Expiry: {expires} s ({source}).")
        if app_settings.REMOTE_CONTROL:
            self._broadcast(outcome.added + outcome.renewed)
        if app_settings.REVOCATIONS:
            self.stdout.write(
                f"Workers started from now on refuse these tasks; running workers within "
                f"{app_settings.REVOCATION_REFRESH:g} s (SQS_BROKER_REVOCATION_REFRESH). A task "
                "already running is not stopped (that needs remote control and the prefork pool)."
            )
        else:
            self.stderr.write(
                "SQS_BROKER_REVOCATIONS is False in these settings: workers started with them "
                "do not read revocations, and run these tasks."
            )

    def _broadcast(self, ids: list[str]) -> None:
        """With remote control on: tell the running workers now, and say who confirmed."""
        app = Topology.of().app
        try:
            confirmed = control.revoke(app, ids, timeout=BROADCAST_TIMEOUT, expected=_alive())
        except Exception as exc:  # the database holds the revocation: say what was not done
            error = scrub(f"{type(exc).__name__}: {exc}")  # a URL's keys never shown
            self.stderr.write(
                f"The broadcast to running workers failed ({error}); they refuse these tasks "
                "from their next refresh."
            )
            return
        if confirmed:
            self.stdout.write(f"Running workers told at once: {', '.join(confirmed)}.")
        else:
            self.stdout.write(
                f"No running worker confirmed the broadcast within {BROADCAST_TIMEOUT:g} s."
            )

    def _list(self) -> None:
        rows = revocations.active()
        if not rows:
            self.stdout.write("No task is revoked.")
            return
        for row in rows:
            line = f"{row.task_id}  until {_when(row.expires_at)}  by {row.revoked_by}"
            self.stdout.write(f"{line}  ({row.reason})" if row.reason else line)

    def _forget(self, ids: list[str]) -> None:
        try:
            withdrawn = revocations.forget(ids, user=_user(), via=COMMAND)
        except ValueError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None
        for task_id in dict.fromkeys(ids):
            if task_id in withdrawn:
                self.stdout.write(f"Withdrawn: {task_id}.")
            else:
                self.stdout.write(f"Not revoked (nothing to withdraw): {task_id}.")
