"""``manage.py sqs_alerts``: alerting rules, a live check, and autoscaling recipes.

``rules`` writes Prometheus alerting rules for this deployment's queues;
``check`` judges the live state by the same thresholds (exit 0 ok, 1 firing,
2 could not check; ``--json`` for machines); ``keda`` and ``ecs`` write a
KEDA ScaledObject and an ECS target-tracking configuration that scale
workers on backlog per worker. See docs/alerts.md. Every action exits 64 on
a usage error (an unknown option, a value out of range), before it reads
anything, and 130 when interrupted; Django's options (``-v 2``,
``--settings``) go before or after it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _

from sqs_broker import alerts, stats
from sqs_broker.conf import app_settings
from sqs_broker.management.commands._base import EXIT_USAGE, SqsCommand
from sqs_broker.schema import Stats
from sqs_broker.topology import Topology


def _threshold_options(parser: CommandParser) -> None:
    d = alerts.Thresholds()
    parser.add_argument(
        "--dead-letter-messages",
        type=int,
        default=d.dead_letter_messages,
        metavar="N",
        help="Fire when a dead-letter queue holds more than N messages "
        f"(default {d.dead_letter_messages}).",
    )
    parser.add_argument(
        "--oldest-age",
        type=float,
        default=d.oldest_age,
        metavar="SECONDS",
        help=f"Fire when a queue's oldest message is older than this (default {d.oldest_age:g}).",
    )
    parser.add_argument(
        "--failure-rate",
        type=float,
        default=d.failure_rate,
        metavar="SHARE",
        help="Fire when a task fails more than this share of its runs "
        f"(default {d.failure_rate:g}).",
    )
    parser.add_argument(
        "--min-finished",
        type=int,
        default=d.min_finished,
        metavar="N",
        help=f"...among at least N finished runs in the window (default {d.min_finished}).",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=d.window,
        metavar="SECONDS",
        help=f"Seconds of task telemetry the failure rate is taken over (default {d.window}).",
    )
    parser.add_argument(
        "--for",
        dest="hold",
        type=int,
        default=d.hold,
        metavar="SECONDS",
        help=f"Seconds a condition must hold before a rule fires (rules only; default {d.hold}).",
    )


def _recipe_options(parser: CommandParser) -> None:
    parser.add_argument(
        "--target",
        type=float,
        default=10,
        metavar="N",
        help="Target backlog per worker: visible messages one worker may have waiting "
        f"(above 0, at most {alerts.MAX_TARGET}; default 10; about its concurrency times the "
        "tasks it runs in your latency budget).",
    )
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="Scale on this queue (SQS name; repeat for several). Default: every queue "
        "except dead-letter queues.",
    )


class Command(SqsCommand):
    help = (
        "Prometheus alerting rules for this deployment's queues (rules), the same alerts "
        "judged now (check: exit 0 ok, 1 firing, 2 could not check), and autoscaling "
        "recipes on backlog per worker (keda, ecs). Exit status 64: a usage error; "
        "130: interrupted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        rules = actions.add_parser("rules", help="Write Prometheus alerting rules (YAML).")
        _threshold_options(rules)
        rules.add_argument("--output", "-o", metavar="FILE", help="Write to FILE, not stdout.")
        check = actions.add_parser("check", help="Judge the live state; exit 0, 1 or 2.")
        _threshold_options(check)
        check.add_argument("--json", action="store_true", help="Print the verdict as JSON.")
        keda = actions.add_parser("keda", help="A KEDA ScaledObject (YAML).")
        _recipe_options(keda)
        keda.add_argument(
            "--deployment",
            default="celery-worker",
            help="Deployment to scale (default celery-worker).",
        )
        keda.add_argument(
            "--min-replicas",
            type=int,
            default=1,
            metavar="N",
            help="Fewest workers, 0 or more, not above --max-replicas (default 1).",
        )
        keda.add_argument(
            "--max-replicas",
            type=int,
            default=10,
            metavar="N",
            help="Most workers, 1 or more (default 10).",
        )
        ecs = actions.add_parser("ecs", help="An ECS target-tracking configuration (JSON).")
        _recipe_options(ecs)
        ecs.add_argument("--cluster", required=True, help="ECS cluster name.")
        ecs.add_argument("--service", required=True, help="ECS service running the workers.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action in ("keda", "ecs"):
                alerts.check_target(options["target"])
            if action == "keda":
                alerts.check_replicas(options["min_replicas"], options["max_replicas"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None
        if action in ("rules", "check"):
            try:
                thresholds = alerts.Thresholds(
                    dead_letter_messages=options["dead_letter_messages"],
                    oldest_age=options["oldest_age"],
                    failure_rate=options["failure_rate"],
                    min_finished=options["min_finished"],
                    hold=options["hold"],
                    window=options["window"],
                )
            except ValueError as exc:
                raise CommandError(str(exc), returncode=EXIT_USAGE) from None
        if action == "rules":
            text = alerts.to_yaml(alerts.rules(self._data(), thresholds))
            self._write(text, options.get("output"))
        elif action == "check":
            self._check(thresholds, options["json"])
        else:
            data = self._data()
            try:
                if action == "keda":
                    text = alerts.to_yaml(
                        alerts.keda(
                            data,
                            options["deployment"],
                            Topology.of().region,
                            options["target"],
                            options["queue"],
                            options["min_replicas"],
                            options["max_replicas"],
                        )
                    )
                else:
                    config = alerts.ecs(
                        data, options["cluster"], options["service"], options["target"],
                        options["queue"],
                    )  # fmt: skip
                    text = json.dumps(config, indent=2) + "\n"
            except ValueError as exc:  # a --queue that is not the deployment's
                raise CommandError(str(exc), returncode=EXIT_USAGE) from None
            self.stdout.write(text, ending="")

    def _data(self, window: int | None = None) -> Stats:
        return stats.gather(online=False, window=window)

    def _write(self, text: str, output: str | None) -> None:
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CommandError(
                f"--output {output}: {exc.strerror or exc}; nothing was written.",
                returncode=EXIT_USAGE,
            ) from None
        self.stderr.write(_("Wrote %(path)s.") % {"path": output})

    def _check(self, thresholds: alerts.Thresholds, as_json: bool) -> None:
        try:
            data = self._data(thresholds.window)
        except Exception as exc:  # could not check at all: exit 2 with the reason
            data = None
            reason = f"{type(exc).__name__}: {exc}"
        if data is None:
            verdict = alerts.Verdict(unknown=[reason])
        else:
            verdict = alerts.evaluate(data, thresholds, telemetry=app_settings.TELEMETRY)
        if as_json:
            self.stdout.write(json.dumps(verdict.as_json(thresholds), ensure_ascii=False))
        else:
            for alert in verdict.firing:
                self.stdout.write(f"FIRING {alert.alert} {alert.subject}: {alert.message}")
            for reason in verdict.unknown:
                self.stdout.write(_("COULD NOT CHECK: %(reason)s") % {"reason": reason})
            for reason in verdict.skipped:
                self.stdout.write(_("SKIPPED: %(reason)s") % {"reason": reason})
            if verdict.exit_code == 0:
                self.stdout.write(_("OK: no alert fires."))
        if verdict.exit_code:
            sys.stdout.flush()
            raise SystemExit(verdict.exit_code)
