"""Celery's remote control as the dashboard uses it: who runs what, and the worker actions.

Every face asks here, never ``app.control`` itself: :func:`tasks` returns
each worker's active, reserved and scheduled (ETA) tasks, and the actions
(:func:`revoke`, :func:`rate_limit`, :func:`resize_pool`, :func:`shutdown`)
what each worker answered. Each call waits for at most :func:`reply_timeout`
seconds and stops waiting as soon as the workers the heartbeats show alive
(:func:`live_workers`) have all answered (Celery's ``limit``), so a page
waits out the timeout only when a worker stays silent, and then names it.

Remote control is on when the Celery app's ``worker_enable_remote_control``
is (``include()`` turns it on with ``SQS_BROKER_REMOTE_CONTROL``); off, every
function here returns at once with ``enabled=False`` and sends nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from sqs_broker import control
from sqs_broker.conf import app_settings
from sqs_broker.models import WorkerHeartbeat
from sqs_broker.redact import scrub, scrub_data
from sqs_broker.telemetry.read import worker_state
from sqs_broker.topology import Topology, celery_app

#: Pools that can stop a running task (``revoke`` with ``terminate``): a process
#: to signal (prefork) or a greenlet to kill. Threads and solo cannot.
TERMINATING_POOLS = frozenset({"prefork", "eventlet", "gevent"})
#: Pools Celery can grow and shrink at run time; threads and solo cannot.
RESIZABLE_POOLS = frozenset({"prefork", "eventlet", "gevent"})
#: How a turned-off remote control is turned on, as every face says it.
HOW_TO_TURN_ON = gettext_lazy(
    "set SQS_BROKER_REMOTE_CONTROL = True in the settings of the web processes and the workers "
    "(the example project: SQS_REMOTE_CONTROL=true in the environment)"
)
#: The longest task arguments shown, in characters.
MAX_ARGS_SHOWN = 200


@dataclass(frozen=True)
class Live:
    """A worker the heartbeats show running: it should answer a call."""

    hostname: str
    pool: str
    concurrency: int
    state: str


@dataclass(frozen=True)
class TaskRow:
    """One task a worker holds: running (``active``), prefetched (``reserved``) or waiting
    for its ETA (``scheduled``)."""

    id: str
    name: str
    kind: str
    args: str
    eta: str | None = None
    started: str | None = None
    worker_pid: int | None = None


@dataclass
class WorkerTasks:
    """What one worker answered (or that it did not), with what its heartbeat says."""

    hostname: str
    pool: str = ""
    concurrency: int | None = None
    answered: bool = False
    active: list[TaskRow] = field(default_factory=list)
    reserved: list[TaskRow] = field(default_factory=list)
    scheduled: list[TaskRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def can_terminate(self) -> bool:
        return self.pool in TERMINATING_POOLS

    @property
    def can_resize(self) -> bool:
        return self.pool in RESIZABLE_POOLS


@dataclass
class Tasks:
    """Every worker's tasks: those that answered, then those the heartbeats expected."""

    enabled: bool
    workers: list[WorkerTasks] = field(default_factory=list)
    #: Workers the heartbeats show alive that did not answer every call.
    missing: list[str] = field(default_factory=list)
    #: How many answers were awaited; ``None`` when no heartbeat says (telemetry off).
    expected: int | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Outcome:
    """What one action's call got back: each worker's answer, and who stayed silent."""

    enabled: bool
    command: str
    #: ``{hostname: what it answered}`` for the workers that said it was done.
    done: dict[str, str] = field(default_factory=dict)
    #: ``{hostname: why not}`` for the workers that answered with an error.
    refused: dict[str, str] = field(default_factory=dict)
    #: Workers that were asked and did not answer in time.
    missing: list[str] = field(default_factory=list)
    #: The call itself failed (the broker unreachable, SNS refused): nothing is known.
    error: str | None = None
    #: Sent without waiting for answers (a worker shutting down does not answer).
    sent_only: bool = False
    #: What else the user must know (a pool that cannot terminate a task).
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _control(app: Any) -> Any:
    """``app.control``, its reply queue kept per process and thread (:mod:`sqs_broker.control`).

    ``ready()`` does it for the app it configures; an app named later
    (``SQS_BROKER_CELERY_APP`` in a test) gets it here, so no call leaves a
    reply queue behind.
    """
    control.install(app)
    return app.control


def enabled(app: Any = None) -> bool:
    """Whether the Celery app has remote control on (workers then answer over SNS fanout)."""
    return bool(celery_app(app).conf.worker_enable_remote_control)


def reply_timeout() -> float:
    """Seconds a call waits for a silent worker (``SQS_BROKER_REMOTE_TIMEOUT``)."""
    return app_settings.REMOTE_TIMEOUT


def live_workers(now: datetime | None = None) -> list[Live]:
    """The workers whose heartbeats are fresh (alive or stalled), by hostname.

    A stalled worker is asked too: its consumer loop may be stuck, and then
    its silence is what the page shows.
    """
    now = now or timezone.now()
    found = []
    # Beat writes a heartbeat too (pool "beat"): it has no mailbox and never answers.
    for beat in WorkerHeartbeat.objects.filter(stopped_at__isnull=True).exclude(pool="beat"):
        state = worker_state(beat.last_seen, beat.stopped_at, beat.interval, now, beat.progress)
        if state in ("alive", "stalled"):
            found.append(Live(beat.hostname, beat.pool, beat.concurrency, state))
    return sorted(found, key=lambda w: w.hostname)


def _args(request: Mapping[str, Any]) -> str:
    if request.get("args") is None and request.get("kwargs") is None:
        return "—"  # a scheduled task's answer may leave them out
    shown = f"{request.get('args')!r}, {request.get('kwargs')!r}"
    shown = scrub(shown)
    return shown if len(shown) <= MAX_ARGS_SHOWN else shown[: MAX_ARGS_SHOWN - 1] + "…"


def _started(request: Mapping[str, Any]) -> str | None:
    started = request.get("time_start")
    if not isinstance(started, int | float):
        return None
    return datetime.fromtimestamp(started, UTC).isoformat()


def task_rows(kind: str, answer: Any) -> list[TaskRow]:
    """One worker's answer to ``active``, ``reserved`` or ``scheduled`` as rows (scrubbed)."""
    rows = []
    for item in answer if isinstance(answer, list) else []:
        if not isinstance(item, Mapping):
            continue
        request = item.get("request") if kind == "scheduled" else item
        if not isinstance(request, Mapping):
            continue
        pid = request.get("worker_pid")
        rows.append(
            TaskRow(
                id=str(request.get("id") or ""),
                name=str(request.get("name") or request.get("type") or "?"),
                kind=kind,
                args=_args(request),
                eta=str(item["eta"]) if kind == "scheduled" and item.get("eta") else None,
                started=_started(request),
                worker_pid=pid if isinstance(pid, int) else None,
            )
        )
    return rows


def _failure(exc: BaseException) -> str:
    return scrub(f"{type(exc).__name__}: {exc}")


def tasks(topo: Topology | None = None) -> Tasks:
    """Each worker's active, reserved and scheduled tasks: three calls, each bounded.

    The first call awaits the workers the heartbeats show alive (all of them,
    or the whole timeout when none is known); the next two ask only those that
    answered it, and wait for no one else. So a silent worker costs one
    timeout, not three, and when nobody answers the first, the rest are not sent.
    """
    app = celery_app(topo)
    if not enabled(app):
        return Tasks(enabled=False)
    live = live_workers()
    limit = len(live) or None
    destination: list[str] | None = None
    found = Tasks(enabled=True, expected=len(live) if live else None)
    workers = {w.hostname: WorkerTasks(w.hostname, w.pool, w.concurrency) for w in live}
    answered_all: set[str] = set()
    started = time.monotonic()
    for kind in ("active", "reserved", "scheduled"):
        inspect = _control(app).inspect(
            timeout=reply_timeout(), limit=limit, destination=destination
        )
        try:
            answers = getattr(inspect, kind)() or {}
        except Exception as exc:  # the broker or SNS refused: said, not hidden
            found.error = _failure(exc)
            break
        for hostname, answer in scrub_data(answers).items():
            worker = workers.setdefault(hostname, WorkerTasks(hostname))
            worker.answered = True
            if isinstance(answer, Mapping) and "error" in answer:
                worker.errors.append(f"{kind}: {answer['error']}")
                continue
            getattr(worker, kind).extend(task_rows(kind, answer))
        answered_all = set(answers) if destination is None else answered_all & set(answers)
        if not answered_all:
            break
        destination = sorted(answered_all)
        limit = len(destination)
    found.seconds = round(time.monotonic() - started, 3)
    found.missing = sorted(h for h in (w.hostname for w in live) if h not in answered_all)
    found.workers = sorted(workers.values(), key=lambda w: (not w.answered, w.hostname))
    return found


def _call(
    command: str,
    send: Any,
    destination: Iterable[str] | None,
    live: Iterable[Live],
    **arguments: Any,
) -> Outcome:
    """``send(**arguments)`` with replies, awaited from ``destination`` (else every live worker)."""
    asked = sorted(destination) if destination is not None else sorted(w.hostname for w in live)
    outcome = Outcome(enabled=True, command=command)
    started = time.monotonic()
    try:
        replies = send(
            **arguments,
            destination=list(destination) if destination is not None else None,
            reply=True,
            timeout=reply_timeout(),
            limit=len(asked) or None,
        )
    except Exception as exc:
        outcome.error = _failure(exc)
        outcome.missing = asked
        return outcome
    finally:
        outcome.seconds = round(time.monotonic() - started, 3)
    for reply in scrub_data(replies or []):
        for hostname, answer in reply.items() if isinstance(reply, Mapping) else ():
            if isinstance(answer, Mapping) and "ok" in answer:
                outcome.done[hostname] = str(answer["ok"])
            elif isinstance(answer, Mapping) and "error" in answer:
                outcome.refused[hostname] = str(answer["error"])
            else:
                outcome.done[hostname] = str(answer)
    outcome.missing = [h for h in asked if h not in outcome.done and h not in outcome.refused]
    return outcome


def _off(command: str) -> Outcome:
    return Outcome(enabled=False, command=command)


def revoke(task_id: str, terminate: bool = False, topo: Topology | None = None) -> Outcome:
    """Broadcast a revoke of ``task_id`` to every worker; with ``terminate``, stop it where it runs.

    The revoke goes to every worker (awaiting those the heartbeats show
    alive). With ``terminate``, a second call asks the workers whose pool can
    stop a running task (:data:`TERMINATING_POOLS`, known from their
    heartbeats) to stop it with SIGTERM; :attr:`Outcome.notes` names the
    others, which cannot. The id is stored in the database by the caller
    (:func:`sqs_broker.revocations.revoke`), which also reaches workers started later.
    """
    app = celery_app(topo)
    if not enabled(app):
        return _off("revoke")
    live = live_workers()
    outcome = _call("revoke", _control(app).revoke, None, live, task_id=task_id)
    if not terminate or outcome.error:
        return outcome
    able = [w.hostname for w in live if w.pool in TERMINATING_POOLS]
    if able:
        send = _control(app).revoke
        stop = _call("revoke", send, able, live, task_id=task_id, terminate=True, signal="SIGTERM")
        outcome.error = stop.error
        outcome.refused.update(stop.refused)
        for hostname in stop.missing:
            outcome.notes.append(
                _("No answer to the terminate from %(worker)s") % {"worker": hostname}
            )
        outcome.seconds = round(outcome.seconds + stop.seconds, 3)
    unable = [w for w in live if w.pool not in TERMINATING_POOLS]
    for w in unable:
        outcome.notes.append(
            _(
                "Not stopped on %(worker)s if it runs there: "
                "the %(pool)s pool cannot terminate a task"
            )
            % {"worker": w.hostname, "pool": w.pool}
        )
    if not live:
        outcome.notes.append(
            _("Terminate was sent to no worker: no heartbeat says which pool each one runs")
        )
    return outcome


def rate_limit(
    task_name: str, rate: str, destination: list[str] | None = None, topo: Topology | None = None
) -> Outcome:
    """Set ``task_name``'s rate limit (``"10/m"``, ``"0"`` for none) on every worker or some."""
    app = celery_app(topo)
    if not enabled(app):
        return _off("rate_limit")
    return _call(
        "rate_limit",
        _control(app).rate_limit,
        destination,
        live_workers(),
        task_name=task_name,
        rate_limit=rate,
    )


def resize_pool(hostname: str, by: int, topo: Topology | None = None) -> Outcome:
    """Grow (``by`` > 0) or shrink (``by`` < 0) one worker's pool by ``abs(by)``."""
    if by == 0:
        raise ValueError("Grow or shrink by at least 1 (by must not be 0).")
    app = celery_app(topo)
    command = "pool_grow" if by > 0 else "pool_shrink"
    if not enabled(app):
        return _off(command)
    send = _control(app).pool_grow if by > 0 else _control(app).pool_shrink
    return _call(command, send, [hostname], live_workers(), n=abs(by))


def shutdown(hostname: str, topo: Topology | None = None) -> Outcome:
    """Ask one worker to shut down warmly (it finishes its running tasks first).

    Celery's ``shutdown`` sends no answer (the worker is leaving), so this
    does not wait: the worker's heartbeat shows it stopped once it is gone.
    """
    app = celery_app(topo)
    if not enabled(app):
        return _off("shutdown")
    outcome = Outcome(enabled=True, command="shutdown", sent_only=True)
    started = time.monotonic()
    try:
        _control(app).shutdown(destination=[hostname], reply=False)
    except Exception as exc:
        outcome.error = _failure(exc)
    outcome.seconds = round(time.monotonic() - started, 3)
    return outcome
