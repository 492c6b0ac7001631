"""Dead letters triaged by outcome: what a dead-letter queue holds, grouped, before anything moves.

:func:`breakdown` samples a dead-letter queue (at most :data:`SAMPLE_LIMIT`
messages, each received once and made visible again at once) and groups the
messages by task, stored exception and stored result state (read through
:mod:`sqs_broker.results`: django-celery-results or the app's result
backend). It says how many messages each move would take: by default a move
leaves the messages whose task already SUCCEEDED (they ran, and ran again
would do the work twice); ``include_succeeded`` takes them too.

What a sample costs: one ReceiveMessage per 10 messages (and the empty one
that ends it), one ChangeMessageVisibilityBatch per 10, one result lookup
(one query with django-celery-results, else one backend call per task), and
each sampled message's ``ApproximateReceiveCount`` goes up by one, as with a
peek. A dead-letter queue without a RedrivePolicy of its own is not changed
by that; the messages go back with a fresh count either way.

The last breakdown of each queue is kept in the shared cache
(:data:`KEEP_SECONDS`): the measured findings (:mod:`sqs_broker.findings.causes`)
and the task page (where a task's message was last seen) read it instead of
receiving again. :func:`delete_succeeded` deletes the succeeded dead letters,
the separate action the move leaves them for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypedDict, cast

from sqs_broker import actions, cache, envelopes, results
from sqs_broker.redact import scrub
from sqs_broker.sqs import QueueState, error_text
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    from celery import Celery

#: Messages one breakdown samples at most (the result lookup reads 100 ids at a time).
SAMPLE_LIMIT = 100
#: Seconds a sampled message is hidden at most: it is released as soon as the sample ends.
SAMPLE_HOLD = 10
#: Seconds the last breakdown of a queue is kept for the findings and the task page.
KEEP_SECONDS = 6 * 3600
#: The stored state that a move leaves behind by default.
SUCCESS = "SUCCESS"
#: Task ids listed per group.
IDS_SHOWN = 5
#: Sightings kept for the task page, across every dead-letter queue (the latest win).
SIGHTINGS = 5000


class Group(TypedDict):
    """Dead letters of one task, with one stored exception and state, and how many."""

    task: str | None
    exception: str | None
    #: The stored result's state (SUCCESS, FAILURE, ...), ``None`` when none is stored.
    state: str | None
    count: int
    task_ids: list[str]
    #: Whether a move without ``include_succeeded`` takes these messages.
    moves_by_default: bool


class Seen(TypedDict):
    """Where a task's message was when sampled."""

    queue: str
    #: The queue it dead-letters for (the move back's destination), when known.
    source: str | None
    message_id: str
    receive_count: int
    taken_at: float


class Breakdown(TypedDict):
    """One sample of a dead-letter queue, grouped; JSON-ready."""

    queue: str
    #: ApproximateNumberOfMessages when the sample began (``None`` if SQS did not say).
    approximate: int | None
    sampled: int
    #: Every visible message was sampled (the queue gave nothing new before the limit).
    complete: bool
    groups: list[Group]
    #: Sampled messages per stored state ("none" for no stored result).
    states: dict[str, int]
    succeeded: int
    #: Messages each move would take: of the sample, and estimated for the whole queue.
    would_move: dict[str, int]
    would_move_estimate: dict[str, int | None]
    #: Why stored results could not be read (then no message counts as succeeded).
    results_error: str | None
    receives: int
    releases: int
    taken_at: float
    #: task id -> where its message was (for the task page).
    located: dict[str, Seen]


def results_stored(app: Celery) -> bool:
    """Whether a result store can say a task succeeded (django-celery-results or a backend)."""
    from django.apps import apps

    if apps.is_installed("django_celery_results"):
        return True
    from celery.backends.base import DisabledBackend

    return not isinstance(app.backend, DisabledBackend)


def classify(
    messages: Iterable[dict[str, Any]], topo: Topology
) -> tuple[list[tuple[dict[str, Any], dict[str, Any] | None]], str | None]:
    """Each message's summary with its stored result (or ``None``), and the lookup's error."""
    summaries = [(m, envelopes.message_summary(m)) for m in messages]
    error = None
    found: dict[str, Any] = {}
    ids = [s["task_id"] for _m, s in summaries if s["task_id"]]
    try:
        for start in range(0, len(ids), results.MAX_IDS):
            found.update(results.lookup(ids[start : start + results.MAX_IDS], topo.app))
    except Exception as exc:  # said on the page: nothing then counts as succeeded
        error = scrub(f"{type(exc).__name__}: {exc}")
    return [({**s, "message": m}, found.get(s["task_id"] or "")) for m, s in summaries], error


def _key(name: str) -> str:
    return cache.key("triage", name)


def last(name: str) -> Breakdown | None:
    """The last breakdown of ``name`` kept in the cache, or ``None``."""
    found = cache.get(_key(name))
    return cast(Breakdown, found) if isinstance(found, dict) else None


def group(
    name: str,
    classified: list[tuple[dict[str, Any], dict[str, Any] | None]],
    approximate: int | None,
    complete: bool,
    results_error: str | None,
    source: str | None = None,
) -> Breakdown:
    """The breakdown of classified messages (see :func:`classify`)."""
    groups: dict[tuple[str | None, str | None, str | None], Group] = {}
    states: dict[str, int] = {}
    located: dict[str, Seen] = {}
    now = time.time()
    for summary, row in classified:
        state = row["state"] if row else None
        exception = row["exception"] if row else None
        key = (summary["task"], exception, state)
        entry = groups.setdefault(
            key,
            {
                "task": summary["task"],
                "exception": exception,
                "state": state,
                "count": 0,
                "task_ids": [],
                "moves_by_default": state != SUCCESS,
            },
        )
        entry["count"] += 1
        if summary["task_id"] and len(entry["task_ids"]) < IDS_SHOWN:
            entry["task_ids"].append(summary["task_id"])
        states[state or "none"] = states.get(state or "none", 0) + 1
        if summary["task_id"]:
            located[summary["task_id"]] = {
                "queue": name,
                "source": source,
                "message_id": str(summary["message_id"]),
                "receive_count": summary["receive_count"],
                "taken_at": now,
            }
    sampled = len(classified)
    succeeded = states.get(SUCCESS, 0)
    would_move = {"default": sampled - succeeded, "include_succeeded": sampled}
    if complete:
        estimate: dict[str, int | None] = dict(would_move)
    elif approximate is not None and sampled:
        estimate = {
            k: round(v * max(approximate, sampled) / sampled) for k, v in would_move.items()
        }
    else:
        estimate = dict.fromkeys(would_move)
    ordered = sorted(
        groups.values(), key=lambda g: (-g["count"], g["task"] or "", g["state"] or "")
    )
    return {
        "queue": name,
        "approximate": approximate,
        "sampled": sampled,
        "complete": complete,
        "groups": ordered,
        "states": states,
        "succeeded": succeeded,
        "would_move": would_move,
        "would_move_estimate": estimate,
        "results_error": results_error,
        "receives": 0,
        "releases": 0,
        "taken_at": now,
        "located": located,
    }


def breakdown(
    dlq: QueueState,
    topo: Topology,
    limit: int = SAMPLE_LIMIT,
    source: str | None = None,
) -> Breakdown:
    """Sample ``dlq`` (at most ``limit`` messages) and group what it holds; kept as :func:`last`.

    ``source`` is the queue ``dlq`` dead-letters for, remembered with each
    task's sighting (see :func:`where_is`). SQS errors propagate: the caller
    says the sample failed.
    """
    if not 1 <= limit <= SAMPLE_LIMIT:
        raise ValueError(f"limit must be from 1 to {SAMPLE_LIMIT} messages.")
    approximate = dlq.int("ApproximateNumberOfMessages")
    sample = actions.sample_messages(dlq, topo, limit=limit, hold=SAMPLE_HOLD)
    classified, error = classify(sample.messages, topo)
    found = group(dlq.ref.name, classified, approximate, sample.complete, error, source)
    found["receives"], found["releases"] = sample.receives, sample.releases
    # Sightings of this queue replace its earlier ones; the others' are kept, newest first.
    seen = {k: v for k, v in _sightings().items() if v["queue"] != dlq.ref.name}
    seen.update(found["located"])
    newest = sorted(seen.items(), key=lambda item: -item[1]["taken_at"])[:SIGHTINGS]
    cache.set_many(
        {_key(dlq.ref.name): found, cache.key("triage-sightings"): dict(newest)}, KEEP_SECONDS
    )
    return found


def _sightings() -> dict[str, Seen]:
    found = cache.get(cache.key("triage-sightings"))
    return cast(dict[str, Seen], found) if isinstance(found, dict) else {}


def where_is(task_id: str) -> Seen | None:
    """Where ``task_id``'s message was when a dead-letter queue holding it was last sampled.

    A sighting, not a promise: the message may have moved or been deleted
    since (``taken_at`` says when it was seen).
    """
    return _sightings().get(task_id)


class Deleted(TypedDict):
    """What :func:`delete_succeeded` did."""

    queue: str
    examined: int
    deleted: int
    task_ids: list[str]
    errors: list[str]


def delete_succeeded(dlq: QueueState, topo: Topology, limit: int = SAMPLE_LIMIT) -> Deleted:
    """Delete the dead letters of ``dlq`` whose stored result is SUCCESS (at most ``limit`` read).

    The others are made visible again at once. A message is deleted only when
    the result store answered SUCCESS for its task id: a failed lookup deletes
    nothing and is raised.
    """
    done: Deleted = {
        "queue": dlq.ref.name,
        "examined": 0,
        "deleted": 0,
        "task_ids": [],
        "errors": [],
    }

    def delete(messages: list[dict[str, Any]]) -> None:
        classified, error = classify(messages, topo)
        if error:
            raise LookupError(f"Stored results could not be read: {error}")
        succeeded = [s for s, row in classified if row and row["state"] == SUCCESS]
        done["examined"] = len(messages)
        if succeeded:
            count, errors = actions.delete_messages(dlq, [s["message"] for s in succeeded], topo)
            done["deleted"] = count
            done["errors"] = errors
            done["task_ids"] = [s["task_id"] for s in succeeded if s["message"].get("_deleted")]

    try:
        actions.sample_messages(dlq, topo, limit=limit, hold=SAMPLE_HOLD, keep=delete)
    except LookupError:
        raise
    except Exception as exc:  # what was deleted before the error stays counted
        done["errors"].append(error_text(exc)[0])
    cache.delete(_key(dlq.ref.name))
    if done["task_ids"]:
        gone = set(done["task_ids"])
        kept = {k: v for k, v in _sightings().items() if k not in gone}
        cache.set_many({cache.key("triage-sightings"): kept}, KEEP_SECONDS)
    return done


def describe_deleted(done: Deleted) -> str:
    """One line for the audit log and LogEntry (English, as logs are)."""
    text = (
        f"Deleted {done['deleted']} dead letters with a stored SUCCESS result from "
        f"{done['queue']} ({done['examined']} examined)"
    )
    if done["errors"]:
        text += f"; {len(done['errors'])} errors: {done['errors'][0]}"
    return text + "."


def shown(dlq: QueueState, topo: Topology, source: str | None = None) -> dict[str, Any]:
    """A page's ``breakdown`` (a fresh sample), or its ``breakdown_error`` said in its place."""
    if dlq.error:
        return {"breakdown": None, "breakdown_error": dlq.error}
    try:
        return {"breakdown": breakdown(dlq, topo, source=source), "breakdown_error": None}
    except Exception as exc:  # the page still offers the move; the sample's failure is said
        return {"breakdown": None, "breakdown_error": error_text(exc)[0]}
