"""Observable dead-letter moves: selective, rate-limited, in bounded steps, cancellable.

No background process runs a move. A move is a record in the cache named by
``SQS_BROKER_CACHE`` (:func:`sqs_broker.cache.backend`; ``sqs-broker:move:<id>``,
kept a day) and advances only when asked:
:func:`step` works for at most :data:`STEP_SECONDS`, stores the progress and
returns it. The dashboard's move page posts a step after each answer while it
is open (and offers a button without JavaScript); ``manage.py sqs_move`` calls
steps in a loop. A closed page pauses the move; its page resumes it. With
several web processes the cache must be shared (database, Redis, Memcached):
a per-process memory cache sees a move only in the process that started it.

Two ways to move:

* **native** (no filter, the endpoint has StartMessageMoveTask): SQS moves the
  messages itself, at ``MaxNumberOfMessagesPerSecond``; a step reads
  ListMessageMoveTasks, :func:`cancel` calls CancelMessageMoveTask.
* **copy** (a filter by task name or exception, succeeded tasks left behind,
  or no native call): receive -> send -> delete through
  :func:`sqs_broker.actions.move_messages`. Messages the filter passes over
  stay hidden while the move runs and are made visible again when it ends or
  is cancelled.

By default a move leaves the messages whose stored result is SUCCESS (see
:mod:`sqs_broker.triage`): they ran, and would run again. They stay in the
dead-letter queue, counted (``succeeded``) and listed; ``include_succeeded``
moves them too. SQS's native move cannot choose, so it is used only with
``include_succeeded`` (or when no result store could tell).
"""

from __future__ import annotations

import fnmatch
import time
import uuid
from typing import Any

from sqs_broker import actions, envelopes, results, triage
from sqs_broker.cache import backend
from sqs_broker.sqs import QueueState, error_text
from sqs_broker.topology import Topology

#: Seconds one step may work (well inside a web request's timeout).
STEP_SECONDS = 3.0
#: How long a passed-over message stays hidden: longer than a move usually runs.
SKIP_HOLD = 300
#: Seconds a finished or abandoned move's record is kept.
RECORD_TTL = 86400
#: Final states.
FINISHED = ("done", "cancelled", "failed")
#: SQS's move task statuses as this module's states.
_NATIVE_STATES = {
    "RUNNING": "running",
    "CANCELLING": "running",
    "COMPLETED": "done",
    "CANCELLED": "cancelled",
    "FAILED": "failed",
}


def _key(move_id: str) -> str:
    return f"sqs-broker:move:{move_id}"


def get(move_id: str) -> dict[str, Any] | None:
    """The move's record, or ``None`` (unknown id, or expired)."""
    # Not through cache.get: a cache that cannot be read must fail the step, not lose the move.
    record = backend().get(_key(move_id))
    return dict(record) if record else None


def _save(record: dict[str, Any]) -> dict[str, Any]:
    record["updated_at"] = time.time()
    backend().set(_key(record["id"]), record, RECORD_TTL)
    return record


def selector(
    task: str | None,
    exception: str | None,
    topo: Topology,
    *,
    include_succeeded: bool = True,
    succeeded: dict[str, str] | None = None,
) -> actions.Selector | None:
    """Which received messages match: a task name (``*`` globs) and/or an exception text.

    The exception is read from the task's stored result
    (:func:`sqs_broker.results.lookup`), matched case-insensitively as a
    substring of ``"Type: message"``; a message whose result is unknown does
    not match an exception filter. Without ``include_succeeded`` a message
    whose stored result is SUCCESS never matches; it is added to
    ``succeeded`` (MessageId -> task id). A failed result lookup raises: the
    move stops rather than guess.
    """
    if not task and not exception and include_succeeded:
        return None

    def choose(messages: list[dict[str, Any]]) -> list[bool]:
        summaries = [envelopes.message_summary(m) for m in messages]
        known: dict[str, Any] = {}
        if exception or not include_succeeded:
            known = results.lookup([s["task_id"] for s in summaries if s["task_id"]], topo.app)
        chosen = []
        for message, summary in zip(messages, summaries, strict=True):
            stored = known.get(summary["task_id"] or "")
            if not include_succeeded and stored and stored["state"] == triage.SUCCESS:
                if succeeded is not None:
                    succeeded[str(message.get("MessageId"))] = str(summary["task_id"])
                chosen.append(False)
                continue
            if not task and not exception:
                chosen.append(True)  # no filter: anything not succeeded, Celery's or not
                continue
            ok = summary["task"] is not None
            if ok and task:
                ok = fnmatch.fnmatchcase(summary["task"], task)
            if ok and exception:
                row = known.get(summary["task_id"] or "")
                ok = bool(
                    row and row["exception"] and exception.lower() in row["exception"].lower()
                )
            chosen.append(ok)
        return chosen

    return choose


def start(
    dlq: QueueState,
    destination: QueueState,
    topo: Topology,
    *,
    task: str | None = None,
    exception: str | None = None,
    rate: float | None = None,
    limit: int = 1000,
    user: str = "",
    include_succeeded: bool = False,
) -> dict[str, Any]:
    """Start a move from ``dlq`` back to ``destination``; its first record (not yet stepped).

    Without ``include_succeeded`` messages whose stored result is SUCCESS stay
    (a copy move, unless no result store is configured to tell).

    Raises what SQS answers when a native move cannot start (one already
    running, access denied): the caller says so.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be a positive number of messages per second.")
    if limit <= 0:
        raise ValueError("limit must be a positive number of messages.")
    handle = None
    if not include_succeeded and not triage.results_stored(topo.app):
        include_succeeded = True  # nothing can be known to have succeeded: said in the record
    if not task and not exception and include_succeeded:
        handle = actions.start_message_move(dlq, destination, topo, rate=rate)
    record: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "source": dlq.ref.name,
        "destination": destination.ref.name,
        "task": task or "",
        "exception": exception or "",
        "include_succeeded": include_succeeded,
        "rate": rate,
        "limit": limit,
        "mode": "native" if handle else "copy",
        "handle": handle,
        "state": "running",
        "to_move": dlq.int("ApproximateNumberOfMessages"),
        "moved": 0,
        "skipped": 0,
        "failed": 0,
        "not_deleted": 0,
        "errors": [],
        "seen": {},
        "succeeded": {},
        "started_at": time.time(),
        "user": user,
        "logged": False,
    }
    return _save(record)


def _states(record: dict[str, Any], topo: Topology) -> tuple[QueueState, QueueState]:
    dlq = actions.owned_state(record["source"], topo)
    destination = actions.owned_state(record["destination"], topo)
    if dlq is None or destination is None:
        raise LookupError("The queues of this move are no longer the app's.")
    for state in (dlq, destination):
        if state.error:
            raise LookupError(state.error)
    return dlq, destination


def _finish(record: dict[str, Any], state: str, dlq: QueueState | None, topo: Topology) -> None:
    record["state"] = state
    if record["mode"] == "copy" and record["seen"] and dlq is not None:
        actions.release(dlq, list(record["seen"].values()), topo)
    record["seen"] = {}


def step(move_id: str, topo: Topology, seconds: float = STEP_SECONDS) -> dict[str, Any]:
    """Advance the move for at most ``seconds``; its record afterwards.

    One step runs at a time per move (a cache lock): a second caller gets
    the record as it stands.
    """
    record = get(move_id)
    if record is None:
        raise KeyError(move_id)
    if record["state"] in FINISHED:
        return record
    lock = _key(move_id) + ":lock"
    if not backend().add(lock, 1, timeout=int(seconds) + 60):
        return record
    try:
        return _step(record, topo, seconds)
    finally:
        backend().delete(lock)


def _step(record: dict[str, Any], topo: Topology, seconds: float) -> dict[str, Any]:
    dlq = None
    try:
        dlq, destination = _states(record, topo)
        if record["mode"] == "native":
            for task in actions.list_message_moves(dlq, topo):
                if task.get("TaskHandle") == record["handle"]:
                    record["moved"] = int(task.get("ApproximateNumberOfMessagesMoved", 0))
                    if task.get("ApproximateNumberOfMessagesToMove") is not None:
                        record["to_move"] = int(task["ApproximateNumberOfMessagesToMove"])
                    record["state"] = _NATIVE_STATES.get(str(task.get("Status")), "running")
                    if task.get("FailureReason"):
                        record["errors"] = [str(task["FailureReason"])]
                    break
            return _save(record)
        select = selector(
            record["task"] or None,
            record["exception"] or None,
            topo,
            include_succeeded=record["include_succeeded"],
            succeeded=record["succeeded"],
        )
        result = actions.move_messages(
            dlq,
            destination,
            topo,
            limit=record["limit"] - record["moved"] - record["failed"],
            hold=SKIP_HOLD if select is not None else 60,
            select=select,
            rate=record["rate"],
            deadline=time.monotonic() + seconds,
            seen=record["seen"],
        )
        record["moved"] += result.moved
        record["failed"] += result.failed
        record["not_deleted"] += result.not_deleted
        # Held back by the filter; the succeeded ones are counted apart (``succeeded``).
        record["skipped"] = len(record["seen"]) - len(record["succeeded"])
        record["errors"] = (record["errors"] + result.errors)[-5:]
        if result.errors and not result.moved:
            _finish(record, "failed", dlq, topo)
        elif result.exhausted or record["moved"] + record["failed"] >= record["limit"]:
            _finish(record, "done", dlq, topo)
    except Exception as exc:  # the page shows why the move stopped; nothing is hidden
        record["errors"] = [*record["errors"], error_text(exc)[0]][-5:]
        _finish(record, "failed", dlq, topo)
    # Cancelled while this step ran (another request): the cancel stands.
    latest = get(record["id"])
    if latest is not None and latest["state"] == "cancelled" and record["state"] == "running":
        _finish(record, "cancelled", dlq, topo)
        record["logged"] = latest.get("logged", False)
    return _save(record)


def cancel(move_id: str, topo: Topology) -> dict[str, Any]:
    """Stop the move: CancelMessageMoveTask for a native one; passed-over messages released."""
    record = get(move_id)
    if record is None:
        raise KeyError(move_id)
    if record["state"] in FINISHED:
        return record
    dlq = actions.owned_state(record["source"], topo)
    if record["mode"] == "native" and dlq is not None:
        try:
            record["moved"] = actions.cancel_message_move(dlq, record["handle"], topo)
        except Exception as exc:  # finished meanwhile, say: the record says what SQS said
            record["errors"] = [*record["errors"], error_text(exc)[0]][-5:]
    _finish(record, "cancelled", dlq, topo)
    return _save(record)


def describe(record: dict[str, Any]) -> str:
    """One line for the admin's Recent actions and the command's output (English, as logs are)."""
    what = []
    if record["task"]:
        what.append(f"task {record['task']}")
    if record["exception"]:
        what.append(f"exception {record['exception']!r}")
    selection = f" matching {' and '.join(what)}" if what else ""
    rate = f" at most {record['rate']:g}/s" if record["rate"] else ""
    verb = {
        "running": "Moving",
        "done": "Moved",
        "cancelled": "Cancelled move:",
        "failed": "Failed move:",
    }
    text = (
        f"{verb[record['state']]} {record['moved']} messages{selection} from "
        f"{record['source']} back to {record['destination']}{rate}"
    )
    if record["mode"] == "native":
        text += f" (StartMessageMoveTask {record['handle']})"
    extra = []
    succeeded = len(record.get("succeeded") or {})
    if succeeded:
        extra.append(f"{succeeded} left with a stored SUCCESS result")
    if record["skipped"]:
        extra.append(f"{record['skipped']} passed over")
    if record["failed"]:
        extra.append(f"{record['failed']} not sent")
    if record["not_deleted"]:
        extra.append(f"{record['not_deleted']} sent but not deleted")
    return text + (f"; {', '.join(extra)}" if extra else "") + "."
