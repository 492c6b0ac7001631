"""The one data function behind every face: :func:`gather`.

The admin dashboard, ``/sqs/stats.json``, ``/sqs/metrics`` and the
``sqs_sample`` history all read queue state from here, so each number has
one home. :func:`gather` returns a JSON-ready :class:`~sqs_broker.schema.Stats`
(queues, findings, errors, workers, tasks), typed in :mod:`sqs_broker.schema`.

SQS is asked through :mod:`sqs_broker.sqs` (bounded pool, TTL cache shared
through Django's cache framework, see :mod:`sqs_broker.cache`); the online
findings are cached there too, for ``SQS_BROKER_ONLINE_FINDINGS_TTL``. The
whole SQS pass runs in a background thread that the page waits on for at
most ``SQS_BROKER_GATHER_TIMEOUT`` seconds: a slow or dead endpoint costs a
bounded wait and per-queue errors, never a hung page. Concurrent requests
for the same app share one pass, so a reload storm does not multiply calls.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from django.utils import translation
from django.utils.encoding import force_str
from django.utils.translation import gettext as _

from sqs_broker import backoff, cache, findings, health, history, payloads, sqs
from sqs_broker.cache import Local
from sqs_broker.conf import app_settings
from sqs_broker.payloads import bucket as payload_bucket
from sqs_broker.redact import displayable_config, scrub_data
from sqs_broker.schema import (
    BackoffRow,
    DeadLetterRow,
    FindingRow,
    PayloadQueueRow,
    PayloadsRow,
    QueueDetail,
    QueueRow,
    Stats,
)
from sqs_broker.telemetry import read as telemetry_read
from sqs_broker.topology import Topology, held_queues, is_quarantine, quarantine_name

if TYPE_CHECKING:
    from celery import Celery


# --- one pass over SQS ---------------------------------------------------------


@dataclass
class Pass:
    """What one pass over SQS found: queue states, dead-letter states, errors."""

    states: list[sqs.QueueState]
    #: Every state of the pass by queue name: the app's queues and their dead-letter queues.
    dead_letters: dict[str, sqs.QueueState] = field(default_factory=dict)
    online: list[findings.Finding] | None = None
    errors: list[str] = field(default_factory=list)
    #: CloudWatch's oldest-message ages, when asked (see :func:`sqs.cloudwatch_wanted`).
    ages: sqs.Ages | None = None
    #: The large-payload bucket's listing, when a bucket is configured.
    stored: payload_bucket.Stored | None = None

    @property
    def owned(self) -> set[str]:
        """Queues the app may change: declared or predefined ones, and their dead-letter queues.

        A queue found only by listing the prefix (another service's ``apple-payments``
        under the prefix ``app``) is shown read-only: no purge, move or peek.
        """
        mine = [s for s in self.states if s.ref.source in ("declared", "predefined")]
        names = {s.ref.name for s in mine}
        for state in mine:
            policy = sqs.redrive_policy(state)
            if policy is not None:
                names.add(policy["name"])
        return names


def _sqs_pass(topo: Topology, with_online: bool, language: str | None = None) -> Pass:
    # The pass runs in a pool thread: findings are worded in the caller's language.
    with translation.override(language):
        return _sqs_pass_in_language(topo, with_online)


def _sqs_pass_in_language(topo: Topology, with_online: bool) -> Pass:
    errors: list[str] = []
    try:
        refs = sqs.inventory(topo)
    except Exception as exc:  # discovery failed: still show declared and predefined queues
        text, _code = sqs.error_text(exc)
        errors.append(_("Listing queues failed: %(error)s") % {"error": text})
        refs = sqs.inventory(topo, discover=False)
    states = sqs.fetch(refs, topo)
    known = {state.ref.name: state for state in states}
    wanted: dict[str, sqs.QueueRef] = {}
    for state in states:
        policy = sqs.redrive_policy(state)
        if policy and policy["name"] not in known:
            wanted.setdefault(policy["name"], sqs.dead_letter_ref(policy["name"], topo))
    # Quarantine queues (where the transport moves poison) are listed with the app's queues
    # when they exist: a listing by prefix finds them (their names extend the
    # queues'); otherwise they are asked in the same batch as the dead-letter queues.
    options = topo.options
    listed = not options.get("predefined_queues") and bool(
        options.get("queue_name_prefix") or app_settings.DISCOVER_BY_PREFIX
    )
    quarantines = {
        name: sqs.QueueRef(name, "declared", None, None)
        for name in (quarantine_name(s.ref.name) for s in states if not is_quarantine(s.ref.name))
        if not listed and name not in known and name not in wanted
    }
    dead_letters = dict(known)
    found_quarantines = []
    # The dead-letter queues in one more concurrent batch (a second, short round-trip).
    for state in sqs.fetch([*wanted.values(), *quarantines.values()], topo):
        if state.ref.name not in quarantines:
            dead_letters[state.ref.name] = state
        elif state.url is not None and state.error is None:
            found_quarantines.append(state)
    online = None
    if with_online:
        online = _online_findings(topo, states, errors, dead_letters.values())
    ages = None
    if sqs.cloudwatch_wanted(topo):
        names = {s.ref.name for s in found_quarantines if s.exists}
        names.update(n for n, s in dead_letters.items() if s.exists)
        ages = sqs.oldest_ages(names, topo)
    # Bounded and cached like the attributes; None (no call) without a bucket.
    stored = payload_bucket.stored(topo)
    return Pass([*states, *found_quarantines], dead_letters, online, errors, ages, stored)


#: How long a failed online pass may fall back on the last findings, past their TTL.
ONLINE_STALE_GRACE = 600


def _online_findings(
    topo: Topology,
    states: list[sqs.QueueState],
    errors: list[str],
    dead_letters: Iterable[sqs.QueueState] = (),
) -> list[findings.Finding] | None:
    """The online findings, from the shared cache when younger than their TTL."""
    ttl = app_settings.ONLINE_FINDINGS_TTL
    key = cache.key("online", *topo.key, translation.get_language())
    cached = cache.get(key)
    if cached is not None and time.time() - cached[0] < ttl:
        return cast(list[findings.Finding], cached[1])
    try:
        # The pass read the dead-letter queues already: E022 need not ask again.
        found = list(findings.online(topo, states=states, known=dead_letters))
    except Exception as exc:  # the page still shows the queues and offline findings
        text, _code = sqs.error_text(exc)
        errors.append(_("Online checks failed: %(error)s") % {"error": text})
        return cast(list[findings.Finding], cached[1]) if cached else None
    # Kept past the TTL only as the fallback above; readers judge the age.
    cache.set_many({key: (time.time(), found)}, ttl + ONLINE_STALE_GRACE if ttl > 0 else 0)
    return found


def _shut_down(pools: dict[str, ThreadPoolExecutor]) -> None:
    for pool in pools.values():
        # A pass past its deadline may still run: let it finish on its own thread.
        pool.shutdown(wait=False, cancel_futures=True)


#: The pool the passes run on, made on first use; shut down by :func:`sqs_broker.cache.reset`.
_pool: Local[str, ThreadPoolExecutor] = Local("gather pool", on_reset=_shut_down)
#: Passes running, by configuration, online or not, and language: requests share them.
_inflight: Local[tuple[Any, ...], Future[Pass]] = Local("passes in flight")


def _submit(topo: Topology, with_online: bool) -> Future[Pass]:
    language = translation.get_language()
    key = (*topo.key, with_online, language)
    with _inflight.lock:
        running = _inflight.entries.get(key)
        if running is not None and not running.done():
            return running
        with _pool.lock:
            pool = _pool.entries.get("pool")
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sqs-gather")
                _pool.entries["pool"] = pool
        future = pool.submit(_sqs_pass, topo, with_online, language)
        _inflight.entries[key] = future
        return future


def sqs_pass(topo: Topology, with_online: bool = False) -> Pass:
    """One pass over SQS, waiting at most ``SQS_BROKER_GATHER_TIMEOUT`` seconds.

    Past the deadline the pass keeps running in the background (and fills the
    attribute cache for the next load); this call returns the declared and
    predefined queues, each with an error that says SQS did not answer in time.
    """
    budget = app_settings.GATHER_TIMEOUT
    future = _submit(topo, with_online)
    try:
        return future.result(timeout=budget)
    except FutureTimeout:
        message = _("SQS did not answer within %(seconds)s s; the page will retry on reload.") % {
            "seconds": f"{budget:g}"
        }
        return _unanswered(topo, message, "Timeout")
    except Exception as exc:  # a bug in a pass must not turn into a 500 with a traceback
        return _unanswered(topo, sqs.error_text(exc)[0], "Error")


def _unanswered(topo: Topology, message: str, code: str) -> Pass:
    """The declared and predefined queues, each failed with ``message``."""
    states = [
        sqs.QueueState(ref, ref.url, error=message, error_code=code, fetched_at=time.time())
        for ref in sqs.inventory(topo, discover=False)
    ]
    return Pass(states, {}, None, [message])


# --- rows, gather(), queue_detail(), sample() ------------------------------------


def queue_row(
    state: sqs.QueueState,
    dead_letters: dict[str, sqs.QueueState],
    topo: Topology,
    owned: Collection[str] | None = None,
) -> QueueRow:
    """One queue as the JSON shows it; ``read_only`` when it is not in ``owned``."""
    spec = topo.predefined.get(state.ref.name) or {}
    policy = sqs.redrive_policy(state)
    dlq: DeadLetterRow | None = None
    if policy is not None:
        dlq_state = dead_letters.get(policy["name"])
        dlq = {
            "name": policy["name"],
            "visible": dlq_state.int("ApproximateNumberOfMessages") if dlq_state else None,
            "max_receive_count": policy["max_receive_count"],
            "error": dlq_state.error if dlq_state else None,
        }
    fifo_attribute = state.attributes.get("FifoQueue")
    return {
        "name": state.ref.name,
        "url": state.url,
        "visible": state.int("ApproximateNumberOfMessages"),
        "in_flight": state.int("ApproximateNumberOfMessagesNotVisible"),
        "delayed": state.int("ApproximateNumberOfMessagesDelayed"),
        "visibility_timeout": state.int("VisibilityTimeout"),
        "receive_wait_time_seconds": state.int("ReceiveMessageWaitTimeSeconds"),
        "fifo": fifo_attribute == "true" if fifo_attribute is not None else state.ref.fifo,
        "quarantine": is_quarantine(state.ref.name),
        "kind": topo.kind(state.ref.name),
        "dlq": dlq,
        "backoff_policy": cast(list[BackoffRow], backoff.as_rows(spec.get("backoff_policy"))),
        "backoff_tasks": list(spec.get("backoff_tasks") or []),
        "error": state.error,
        "read_only": owned is not None and state.ref.name not in owned,
        "oldest_age": None,
        "oldest_age_source": None,
        "consumers": None,
        "backlog_per_worker": None,
    }


def finding_row(finding: findings.Finding) -> FindingRow:
    """A finding's fields as text (messages may be lazy translations)."""
    return {
        "id": finding.id,
        "level": finding.level,
        "message": force_str(finding.message),
        "hint": force_str(finding.hint),
        "queue": finding.queue,
    }


def gather(
    app: Celery | Topology | None = None,
    *,
    window: int | None = None,
    online: bool = True,
    totals: bool = False,
) -> Stats:
    """Everything the dashboard, the JSON and the metrics show, secrets masked.

    ``window`` (seconds) selects the telemetry window; ``online=False`` skips
    the online findings (the metrics endpoint does not need them);
    ``totals=True`` adds ``task_totals``, the all-time task counters and
    histograms the metrics export (one more grouped query).
    """
    topo = Topology.of(app)
    found = sqs_pass(topo, with_online=online)
    owned = found.owned
    queues = [queue_row(state, found.dead_letters, topo, owned) for state in found.states]
    errors = list(found.errors)
    telemetry = telemetry_data(queues, window or DEFAULT_WINDOW, errors)
    fill_ages(queues, found.ages)
    fill_consumers(queues, telemetry["workers"])
    task_totals = task_totals_data(errors) if totals else []
    causes = findings.measured(topo, queues, telemetry["tasks"], dead_letter_samples(queues))
    finding_rows = [
        finding_row(f)
        for f in findings.unsilenced([*findings.offline(topo), *(found.online or []), *causes])
    ]
    data: Stats = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": displayable_config(topo.app),
        "queues": queues,
        "findings": finding_rows,
        "errors": errors,
        "telemetry_window": telemetry["telemetry_window"],
        "workers": telemetry["workers"],
        "tasks": telemetry["tasks"],
        "unconsumed_queues": telemetry["unconsumed_queues"],
        "cloudwatch_error": found.ages.error if found.ages else None,
        "task_totals": task_totals,
        # Remote control's mailboxes and reply queues hold no work: no consumer, no backlog.
        "health": health.summary(
            [q for q in queues if q["kind"] == "task"],
            finding_rows,
            telemetry["workers"],
            telemetry["unconsumed_queues"],
            telemetry["tasks"],
        ),
        "payloads": payloads_data(found.stored, telemetry["tasks"]),
    }
    return cast(Stats, scrub_data(data))


def payloads_data(
    stored: payload_bucket.Stored | None,
    tasks: Sequence[Mapping[str, Any]],
    now: float | None = None,
) -> PayloadsRow | None:
    """Large messages per queue; ``None`` when no bucket is configured (nothing to show).

    Offloaded messages and bytes are what the workers counted over the telemetry
    window (``tasks``); stored objects come from the bucket's bounded listing
    (:func:`sqs_broker.payloads.bucket.stored`), which the pass made.
    """
    where = payloads.settings()
    if where is None:
        return None
    now = time.time() if now is None else now
    rows: dict[str, PayloadQueueRow] = {}

    def row(queue: str) -> PayloadQueueRow:
        return rows.setdefault(queue, {
            "queue": queue, "offloaded": 0, "offloaded_bytes": 0,
            "stored_objects": 0, "stored_bytes": 0, "stored_oldest_age": None,
        })  # fmt: skip

    for task in tasks:
        if task.get("offloaded"):
            found = row(str(task["queue"]))
            found["offloaded"] += int(task["offloaded"])
            found["offloaded_bytes"] += int(task.get("offloaded_bytes") or 0)
    if stored is not None:
        for queue, kept in stored.by_queue.items():
            found = row(queue)
            found["stored_objects"], found["stored_bytes"] = kept.objects, kept.bytes
            if kept.oldest is not None:
                found["stored_oldest_age"] = round(max(0.0, now - kept.oldest), 1)
        error = stored.error
    else:  # the pass did not finish in time
        error = _("The bucket was not listed in time; the page will retry on reload.")
    listed_at = stored.listed_at if stored is not None else now
    return {
        "bucket": where.bucket,
        "prefix": where.prefix,
        "queues": [rows[name] for name in sorted(rows)],
        "stored_objects": sum(r["stored_objects"] for r in rows.values()),
        "stored_bytes": sum(r["stored_bytes"] for r in rows.values()),
        "capped": bool(stored and stored.capped),
        "listed_at": datetime.fromtimestamp(listed_at, UTC).isoformat(timespec="seconds"),
        "error": error,
    }


@dataclass(frozen=True)
class Causes:
    """The measured causes (W030-W032) and what they were judged on."""

    found: list[findings.Finding]
    #: Task rows (task and queue) the telemetry window held: none, nothing was judged.
    tasks: int
    #: Why the telemetry could not be read (tables not migrated, say), else ``None``.
    telemetry_error: str | None


def measured_causes(app: Celery | Topology | None = None, window: int | None = None) -> Causes:
    """W030-W032 as :func:`gather` names them, for ``sqs_check``: one SQS pass, the telemetry
    of the last ``window`` seconds (default :data:`DEFAULT_WINDOW`), the dead-letter samples."""
    topo = Topology.of(app)
    found = sqs_pass(topo)
    queues = [queue_row(state, found.dead_letters, topo, found.owned) for state in found.states]
    errors: list[str] = []
    tasks = telemetry_data(queues, window or DEFAULT_WINDOW, errors)["tasks"]
    causes = findings.measured(topo, queues, tasks, dead_letter_samples(queues))
    return Causes(causes, len(tasks), errors[0] if errors else None)


def dead_letter_samples(queues: Sequence[QueueRow]) -> dict[str, Any]:
    """The last breakdown of each dead-letter queue, where one was sampled (no SQS call).

    Read from the cache under :func:`sqs_broker.triage.last`'s key: importing
    triage here would close a loop (triage -> actions -> stats).
    """
    names = sorted({q["dlq"]["name"] for q in queues if q["dlq"]})
    keys = {cache.key("triage", name): name for name in names}
    return {keys[k]: v for k, v in cache.get_many(keys).items() if isinstance(v, dict)}


def fill_ages(
    queues: Sequence[QueueRow], ages: sqs.Ages | None, now: datetime | None = None
) -> None:
    """Set each row's ``oldest_age`` and ``oldest_age_source``.

    CloudWatch's figure where it gave one; else 0 for a queue the pass saw
    empty; else the estimate of :func:`sqs_broker.history.history_ages`. No figure at all
    (no samples yet, or the queue failed) stays ``None``.
    """
    watched = ages.seconds if ages else {}
    estimate: dict[str, float] = {}
    busy = [q["name"] for q in queues if q["name"] not in watched and _holds_messages(q)]
    if busy:
        try:
            estimate = history.history_ages(busy, now)
        except Exception:  # no sample table yet: the figure stays unknown, the page stays up
            estimate = {}
    for queue in queues:
        name = queue["name"]
        if name in watched:
            queue["oldest_age"], queue["oldest_age_source"] = round(watched[name], 3), "cloudwatch"
        elif queue.get("error") is None and not _holds_messages(queue):
            queue["oldest_age"], queue["oldest_age_source"] = 0.0, "attributes"
        elif name in estimate:
            queue["oldest_age"], queue["oldest_age_source"] = estimate[name], "history"


def _holds_messages(queue: QueueRow) -> bool:
    return bool((queue.get("visible") or 0) + (queue.get("in_flight") or 0))


def fill_consumers(queues: Sequence[QueueRow], workers: Sequence[Mapping[str, Any]]) -> None:
    """Set each row's live ``consumers`` and ``backlog_per_worker`` (visible ÷ max(1, consumers)).

    Dividing by 1 when no worker consumes the queue keeps the signal finite
    for autoscalers: the whole backlog for the first worker to start. A
    dead-letter or quarantine queue (:func:`held_queues`) is no backlog: none.
    """
    held = held_queues(queues)
    counts: dict[str, int] = {}
    for worker in workers:
        if worker.get("alive"):
            for name in set(worker.get("queues") or ()):
                counts[name] = counts.get(name, 0) + 1
    for queue in queues:
        consumers = counts.get(queue["name"], 0)
        queue["consumers"] = consumers
        visible = queue.get("visible")
        if visible is not None and queue["name"] not in held:
            queue["backlog_per_worker"] = round(visible / max(1, consumers), 3)


def queue_detail(name: str, app: Celery | Topology | None = None) -> QueueDetail | None:
    """``{"queue": row, "findings": [...]}`` for one queue's page, from one pass; secrets masked.

    ``name`` is one of the app's queues or one of their dead-letter queues;
    any other name gives ``None``. The pass is the one :func:`gather` makes
    with ``online=False`` (shared while it runs, attributes TTL-cached), and
    the row and findings are built as :func:`gather` builds them.
    """
    topo = Topology.of(app)
    found = sqs_pass(topo, with_online=False)
    # A pass that timed out has states but no dead-letter map.
    state = next((s for s in found.states if s.ref.name == name), None)
    state = state or found.dead_letters.get(name)
    if state is None:
        return None
    row = queue_row(state, found.dead_letters, topo, found.owned)
    fill_ages([row], found.ages)
    detail: QueueDetail = {
        "queue": row,
        "findings": [
            finding_row(f) for f in findings.unsilenced(findings.offline(topo)) if f.queue == name
        ],
        "dead_letter_of": sorted(
            s.ref.name
            for s in found.states
            if (policy := sqs.redrive_policy(s)) is not None and policy["name"] == name
        ),
    }
    return cast(QueueDetail, scrub_data(detail))


#: Telemetry windows the dashboard and ``stats.json`` offer, in seconds.
WINDOWS = (300, 3600, 86400)
#: Seconds of task telemetry when the caller names no window.
DEFAULT_WINDOW = 300


def parse_window(value: str | None) -> int:
    """``?window=`` in seconds: one of :data:`WINDOWS`, or a clear ``ValueError``."""
    if value in (None, ""):
        return DEFAULT_WINDOW
    try:
        window = int(value)
    except ValueError:
        window = -1
    if window not in WINDOWS:
        choices = ", ".join(str(w) for w in WINDOWS)
        raise ValueError(f"window must be one of {choices} (seconds); got {value[:20]!r}.")
    return window


def telemetry_data(queues: Sequence[QueueRow], window: int, errors: list[str]) -> dict[str, Any]:
    """``workers``, ``tasks`` (:func:`sqs_broker.telemetry.read.snapshot`), ``unconsumed_queues``.

    A database error (tables not migrated, say) becomes an entry of ``errors``,
    not a failed page.
    """
    try:
        found = telemetry_read.snapshot(window)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        errors.append(_("Telemetry could not be read: %(error)s") % {"error": error})
        found = {"workers": [], "tasks": []}
    return {
        "telemetry_window": window,
        **found,
        "unconsumed_queues": telemetry_read.unconsumed(
            [q for q in queues if q["kind"] == "task"], found["workers"]
        ),
    }


def task_totals_data(errors: list[str]) -> list[dict[str, Any]]:
    """:func:`sqs_broker.telemetry.read.totals`, or ``[]`` with the error in ``errors``."""
    try:
        return telemetry_read.totals()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        errors.append(_("Telemetry could not be read: %(error)s") % {"error": error})
        return []


def sample(
    app: Celery | Topology | None = None, now: datetime | None = None
) -> history.SampleResult:
    """One pass over SQS, stored as samples by :func:`sqs_broker.history.record`; prune.

    Dead-letter queues are sampled too.
    """
    found = sqs_pass(Topology.of(app), with_online=False)
    states = {**found.dead_letters, **{s.ref.name: s for s in found.states}}
    return history.record(states, now or datetime.now(UTC))
