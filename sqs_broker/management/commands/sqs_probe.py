"""``manage.py sqs_probe``: is this machine's worker consuming? For liveness probes.

Reads the worker heartbeats telemetry writes (one query, no SQS call) and
judges each as the dashboard does (:func:`sqs_broker.telemetry.read.worker_state`):
exit 0 when the worker is consuming, 1 when it is stalled, lost, stopped or
has no heartbeat, 2 when the database could not be read. Without
``--worker`` it checks the workers whose node name ends in ``@`` and this
machine's hostname, which is Celery's default (``celery@%h``): the worker
in the probe's own pod or container. docs/telemetry.md gives the Kubernetes
``livenessProbe`` and the ECS ``healthCheck`` that run it.

With ``--ping`` (remote control on: docs/remote-control.md) the workers are also
asked Celery's ``ping``, which only a running consumer loop answers: a worker whose
heartbeat thread still writes while its loop is stuck (a task blocking a solo pool,
a deadlock) is ``unresponsive``, exit 1. A worker without a heartbeat that answers
is ``answering``, exit 0. A ping costs an SNS publish and a reply queue's calls,
and fails when SQS or SNS cannot be reached: exit 2.
"""

from __future__ import annotations

import json
import socket
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _

from sqs_broker.models import WorkerHeartbeat
from sqs_broker.redact import scrub
from sqs_broker.telemetry import read
from sqs_broker.topology import Topology

#: Exit status by the probe's verdict.
EXIT_CODES = {
    "consuming": 0,
    "alive": 0,
    "answering": 0,
    "stalled": 1,
    "lost": 1,
    "stopped": 1,
    "unresponsive": 1,
    "unknown": 1,
}
#: Verdicts from worst to best: several workers' verdict is the worst of theirs.
ORDER = ("unknown", "lost", "unresponsive", "stalled", "stopped", "alive", "answering", "consuming")
#: The longest --ping-timeout, in seconds: longer outlasts any orchestrator's probe timeout.
MAX_PING_TIMEOUT = 60.0


@dataclass
class Judged:
    """One worker's heartbeat, judged now."""

    hostname: str
    #: ``consuming`` (alive, progress reported), ``alive`` (progress not reported),
    #: ``stalled``, ``lost`` or ``stopped``; with ``--ping``, ``unresponsive`` (its heartbeat
    #: says running, it did not answer) or ``answering`` (no heartbeat, it answered).
    state: str
    seconds_since_seen: float
    seconds_since_progress: float | None
    stall_after: float | None
    stalled_queues: list[str] = field(default_factory=list)


def judge(rows: list[Any], now: Any) -> list[Judged]:
    """Each heartbeat row's verdict (see :class:`Judged`), sorted by hostname."""
    found = []
    for row in sorted(rows, key=lambda r: r.hostname):
        state = read.worker_state(row.last_seen, row.stopped_at, row.interval, now, row.progress)
        consumer = read.consumer_fields(row.progress, row.last_seen, now)
        if state == "alive" and consumer["stall_after"] is not None:
            state = "consuming"
        found.append(
            Judged(
                hostname=row.hostname,
                state=state,
                seconds_since_seen=round((now - row.last_seen).total_seconds(), 1),
                seconds_since_progress=consumer["seconds_since_progress"],
                stall_after=consumer["stall_after"],
                stalled_queues=consumer["stalled_queues"],
            )
        )
    return found


def verdict(workers: list[Judged]) -> str:
    """The worst of the workers' states; ``unknown`` when there is none."""
    if not workers:
        return "unknown"
    return min((w.state for w in workers), key=ORDER.index)


def describe(worker: Judged) -> str:
    """One line about a worker, for people."""
    values = {
        "host": worker.hostname,
        "seen": f"{worker.seconds_since_seen:g}",
        "progress": f"{worker.seconds_since_progress or 0:g}",
        "allowed": f"{worker.stall_after or 0:g}",
        "queues": ", ".join(worker.stalled_queues),
    }
    if worker.state == "consuming":
        text = _(
            "%(host)s is consuming: last progress %(progress)s s ago (stalls after %(allowed)s s)."
        )
    elif worker.state == "alive":
        text = _(
            "%(host)s is alive (heartbeat %(seen)s s ago); its transport reports no consumer "
            "progress, so a stalled consumer cannot be told apart."
        )
    elif worker.state == "stalled":
        text = _(
            "%(host)s is stalled: heartbeats arrive but %(queues)s made no progress for more "
            "than %(allowed)s s (oldest progress %(progress)s s ago)."
        )
    elif worker.state == "unresponsive":
        text = _(
            "%(host)s is unresponsive: its heartbeat arrives (%(seen)s s ago) but it did not "
            "answer ping: its consumer loop is stuck."
        )
    elif worker.state == "answering":
        text = _("%(host)s answered ping (no heartbeat: is SQS_BROKER_TELEMETRY on?).")
    elif worker.state == "lost":
        text = _("%(host)s is lost: no heartbeat for %(seen)s s.")
    else:
        text = _("%(host)s stopped (warm shutdown) %(seen)s s ago.")
    return text % values


class Command(BaseCommand):
    help = (
        "Whether a worker is consuming, from its telemetry heartbeat (no SQS call; with "
        "--ping, Celery's ping too): exit 0 consuming, 1 stalled, lost, stopped, unresponsive "
        "or no heartbeat, 2 could not check (database, or SQS for --ping, unreachable). For a "
        "Kubernetes livenessProbe or an ECS healthCheck in the worker's own container; needs "
        "SQS_BROKER_TELEMETRY on in the workers."
    )
    # A probe answers one question, fast: the system checks (a configuration
    # finding, say) are sqs_check's business, not a reason to restart a worker.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--worker",
            metavar="NAME",
            help="The worker's node name as its heartbeat has it (celery -n; %%h, %%n and "
            "%%d expand as Celery expands them). Default: every worker whose node name ends "
            "in @ and this machine's hostname (Celery's default celery@%%h), leaving out "
            "those that stopped when another one runs.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the verdict as JSON (default: text)."
        )
        parser.add_argument(
            "--ping",
            action="store_true",
            help="Also ask the workers Celery's ping (remote control on): a worker whose "
            "consumer loop is stuck cannot answer, whatever its heartbeat says. Default: "
            "heartbeats only, no SQS call.",
        )
        parser.add_argument(
            "--ping-timeout",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="How long to wait for the answers to --ping (default 5).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["worker"]
        if name:
            from celery.utils.nodenames import host_format

            looked_for = host_format(name)
            rows_of = WorkerHeartbeat.objects.filter(hostname=looked_for)
        else:
            looked_for = f"*@{socket.gethostname()}"
            rows_of = WorkerHeartbeat.objects.filter(hostname__endswith=looked_for[1:])
        try:
            rows = list(rows_of)
        except DatabaseError as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}")
            self._finish({"status": "error", "exit_code": 2, "reason": reason}, options["json"])
            return
        workers = judge(rows, timezone.now())
        if not name and any(w.state != "stopped" for w in workers):
            # An earlier worker of this machine that shut down warmly is not this one.
            workers = [w for w in workers if w.state != "stopped"]
        if options.get("ping"):
            try:
                workers = self._ping(workers, name and looked_for, options["ping_timeout"])
            except Exception as exc:  # SQS or SNS unreachable, remote control off
                reason = scrub(f"ping: {type(exc).__name__}: {exc}")
                self._finish({"status": "error", "exit_code": 2, "reason": reason}, options["json"])
                return
        status = verdict(workers)
        result = {
            "status": status,
            "exit_code": EXIT_CODES[status],
            "worker": looked_for,
            "workers": [asdict(w) for w in workers],
        }
        self._finish(result, options["json"])

    def _ping(self, workers: list[Judged], named: str | None, timeout: Any) -> list[Judged]:
        """``workers`` with Celery's ping asked: running ones that did not answer are
        ``unresponsive``; this machine's (or the named) workers that answered without a
        heartbeat are added as ``answering``."""
        if not (isinstance(timeout, int | float) and 0 < timeout <= MAX_PING_TIMEOUT):
            raise ValueError(f"--ping-timeout must be more than 0 and at most {MAX_PING_TIMEOUT:g}")
        topo = Topology.of()
        if not topo.remote_control:
            raise RuntimeError(
                "--ping needs remote control (SQS_BROKER_REMOTE_CONTROL = True, "
                "SQS_REMOTE_CONTROL=true): workers answer no ping without it"
            )
        running = [w.hostname for w in workers if w.state not in ("lost", "stopped")]
        wanted = running or ([named] if named else None)
        # Its reply queue is deleted when the process exits (sqs_broker.pidbox_cleanup).
        replies = topo.app.control.ping(
            destination=wanted, timeout=float(timeout), limit=len(wanted) if wanted else None
        )
        answered = {host for reply in replies or [] for host in reply}
        judged = [
            replace(w, state="unresponsive")
            if w.hostname in running and w.hostname not in answered
            else w
            for w in workers
        ]
        known = {w.hostname for w in workers}
        suffix = f"@{socket.gethostname()}"
        for host in sorted(answered - known):
            if host == named or (not named and host.endswith(suffix)):
                judged.append(Judged(host, "answering", 0.0, None, None))
        return judged

    def _finish(self, result: dict[str, Any], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
        elif result["status"] == "error":
            self.stdout.write(_("COULD NOT CHECK: %(reason)s") % {"reason": result["reason"]})
        elif result["status"] == "unknown":
            self.stdout.write(
                _("UNKNOWN: no heartbeat of %(worker)s (is SQS_BROKER_TELEMETRY on?).")
                % {"worker": result["worker"]}
            )
        else:
            for worker in result["workers"]:
                line = describe(Judged(**worker))
                self.stdout.write(("OK: " if EXIT_CODES[worker["state"]] == 0 else "FAIL: ") + line)
        if result["exit_code"]:
            sys.stdout.flush()
            raise SystemExit(result["exit_code"])
