"""``manage.py sqs_check``: every SQS pitfall of this project, offline and on the live queues.

Exit status: 0 when nothing is at or above ``--fail-level``, 1 when
something is, 2 when SQS could not be checked (endpoint unreachable,
credentials missing or rejected), 64 a usage error, 130 interrupted. The
findings themselves come from :mod:`sqs_broker.findings`; this command only
prints them.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from sqs_broker import findings, stats
from sqs_broker.management.commands._base import SqsCommand, number
from sqs_broker.redact import scrub, scrub_data
from sqs_broker.topology import Topology

LABELS = {"error": "ERROR", "warning": "WARNING", "info": "INFO"}


class Command(SqsCommand):
    help = (
        "Check the Celery-on-SQS configuration for known pitfalls: offline (settings) and "
        "online (credentials, queues, attributes). Exit 0: nothing at or above --fail-level; "
        "1: something is; 2: SQS could not be checked; 64: usage error; 130: interrupted."
    )
    # It must report E001 itself, so the system checks must not stop it first.
    requires_system_checks: list[str] = []
    # Tests pass a Celery app of their own; the command line always uses the project's.
    stealth_options = ("app",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            help='Print one JSON object {"ok": bool, "results": [...]} instead of text. '
            "Default: text.",
        )
        parser.add_argument(
            "--offline",
            action="store_true",
            help="Skip the online checks (no call to SQS or STS). Default: run them.",
        )
        parser.add_argument(
            "--timeout",
            type=number(float, 0.1, 3600, "seconds"),
            default=30.0,
            help="Seconds the online checks may take in all before the command gives up "
            "with exit 2, from 0.1 to 3600. Default: 30.",
        )
        parser.add_argument(
            "--window",
            type=int,
            choices=stats.WINDOWS,
            default=stats.DEFAULT_WINDOW,
            metavar="SECONDS",
            help="Seconds of task telemetry the measured causes (W030-W032) are judged on: "
            f"{', '.join(map(str, stats.WINDOWS))}, as on the dashboard. "
            f"Default: {stats.DEFAULT_WINDOW}.",
        )
        parser.add_argument(
            "--fail-level",
            type=str.lower,
            choices=("error", "warning"),
            default="error",
            help="Lowest level that makes the command exit 1: error or warning, in any case "
            "(ERROR and WARNING, as Django's check spells them). Default: error.",
        )
        parser.add_argument(
            "--include-silenced",
            action="store_true",
            help="Also report the ids listed in SILENCED_SYSTEM_CHECKS. Default: leave them "
            "out, as Django's check does.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Resolved once: the offline and online findings describe one configuration.
        topo = Topology.of(options.get("app"))
        found = findings.offline(topo)
        note = None
        if not options["offline"]:
            found += findings.online_within(options["timeout"], topo)
            if not findings.could_not_check(found):
                # Causes named from what the workers measured (telemetry in the database).
                causes = stats.measured_causes(topo, options["window"])
                found += causes.found
                note = self._unjudged(causes, options["window"])
        if not options["include_silenced"]:
            found = findings.unsilenced(found)
        found.sort(key=lambda f: (-findings.rank(f.level), f.id, f.queue or ""))
        unchecked = findings.could_not_check(found)
        threshold = findings.rank(options["fail_level"])
        failing = [f for f in found if findings.rank(f.level) >= threshold]
        results = [scrub_data(f.as_dict()) for f in found]

        if options["json"]:
            ok = not failing and not unchecked
            self.stdout.write(json.dumps({"ok": ok, "results": results}, ensure_ascii=False))
        else:
            self._print(results, note)

        if unchecked:
            raise CommandError(
                _("SQS could not be checked: %(ids)s.")
                % {"ids": ", ".join(f.id for f in unchecked)},
                returncode=2,
            )
        if failing:
            raise CommandError(
                ngettext(
                    "%(count)d finding at or above %(level)s.",
                    "%(count)d findings at or above %(level)s.",
                    len(failing),
                )
                % {"count": len(failing), "level": options["fail_level"]},
                returncode=1,
            )

    @staticmethod
    def _unjudged(causes: stats.Causes, window: int) -> str | None:
        """Why the measured causes were not judged (no telemetry), else ``None``."""
        if causes.telemetry_error is not None:
            return _("Measured causes (W030-W032) not judged: %(error)s") % {
                "error": scrub(causes.telemetry_error)
            }
        if causes.tasks:
            return None
        return _(
            "Measured causes (W030-W032) not judged: no task telemetry in the last %(seconds)s "
            "s (workers record it with SQS_BROKER_TELEMETRY = True; --window 3600 or 86400 "
            "looks further back)."
        ) % {"seconds": window}

    def _print(self, results: list[dict[str, Any]], note: str | None = None) -> None:
        styles = {
            "error": self.style.ERROR,
            "warning": self.style.WARNING,
            "info": self.style.NOTICE,
        }
        for result in results:
            where = f" [{result['queue']}]" if result["queue"] else ""
            label = styles[result["level"]](f"{LABELS[result['level']]:<7}")
            self.stdout.write(f"{label} {result['id']}{where}: {result['message']}")
            self.stdout.write(f"        {_('Hint')}: {result['hint']}")
        if note is not None:
            self.stdout.write(self.style.NOTICE(note))
        counts = {level: sum(r["level"] == level for r in results) for level in LABELS}
        summary = _("Errors: %(error)d, warnings: %(warning)d, information: %(info)d.") % counts
        style = self.style.SUCCESS if not counts["error"] else self.style.ERROR
        self.stdout.write(style(summary))
