"""Worker-side recording without Celery events: heartbeats and per-minute task counters.

SQS carries no Celery events, so workers record what they see and write it through the ORM:

* Every process that runs tasks holds a :class:`Recorder`: counters kept in
  memory, keyed by task name, queue and minute. Signal handlers only add to
  them under a lock; they never touch the database, so a task never waits on
  it. A daemon thread flushes the counters once per
  ``SQS_BROKER_TELEMETRY_INTERVAL`` in one short transaction.
* Where the signals fire decides who counts what. ``task_received`` fires in
  the worker's main process, which also knows the message's
  ``ApproximateReceiveCount`` (redeliveries) and how many tasks are active.
  ``task_prerun``/``task_postrun`` fire where the task runs: the main process
  for the solo and threads pools, each child for prefork. So the main process
  records received/redelivered and writes the heartbeat, and every process
  that runs tasks records outcomes and runtimes, children from a thread
  started on ``worker_process_init``.
* The main process's recorder belongs to :class:`TelemetryStep`, a worker
  bootstep (Celery swallows exceptions in signal handlers; a bootstep also
  sees the worker's warm shutdown, which alone marks the heartbeat stopped).
* The heartbeat carries the consumer's progress (from the event loop, through
  :mod:`sqs_broker.transport.liveness`): a worker whose heartbeats arrive but whose
  consumer is silent shows as ``"stalled"``, a change of it written at once.

Writes are additive (``F()`` increments), so several processes and several
workers can write the same rows at once; rows are touched in a fixed order
so PostgreSQL cannot deadlock two flushes, and "database is locked" from
SQLite is retried. A flush that still fails keeps its counts for the next one.

Workers only: :mod:`.store` writes; :mod:`.read` (the faces' side) is never imported here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import signals
from django.utils import timezone

from sqs_broker import payloads
from sqs_broker.celery_types import StartStopStep
from sqs_broker.conf import app_settings
from sqs_broker.telemetry.base import (
    FLUSH_ATTEMPTS,
    LOCK_WAIT,
    MAX_PENDING_KEYS,
    POISON_TASK,
    PRUNE_EVERY,
    STOP_ATTEMPTS,
    CounterKey,
    Counts,
    WorkerInfo,
    minute_of,
    observation,
    versions,
)
from sqs_broker.telemetry.store import start_worker_heartbeat, with_retries, write
from sqs_broker.topology import DEFAULT_QUEUE, Topology
from sqs_broker.transport import liveness

if TYPE_CHECKING:
    from sqs_broker.transport.liveness import Liveness, Tracker

logger = logging.getLogger(__name__)

#: Seconds past a queue's allowance the heartbeat thread looks again: late enough
#: that the queue is overdue when it looks, soon enough that the stall shows at once.
DUE_SLACK = 0.05


class Recorder:
    """One process's in-memory counters and the thread that flushes them.

    ``worker`` is set only in a worker's main process, which writes the
    heartbeat; children add to it through ``processed``/``failed`` deltas.
    ``liveness``, the tracker the consumer reports its progress to, is read
    for each heartbeat (the main process only).
    """

    def __init__(
        self,
        hostname: str,
        interval: float,
        worker: WorkerInfo | None = None,
        liveness: Tracker | None = None,
    ) -> None:
        self.pid = os.getpid()
        self.hostname = hostname
        self.interval = interval
        self.worker = worker
        self._lock = threading.Lock()
        self._counts: dict[CounterKey, Counts] = {}
        self._processed = 0
        self._failed = 0
        self._started: dict[str, float] = {}
        self.liveness = liveness
        self._stop = threading.Event()
        # Wakes the flush thread early: on stop, and when a stalled consumer progresses.
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self._last_prune = float("-inf")  # the first flush of a worker prunes
        #: Tasks running now in this process (the bootstep sets it in the main process).
        self.active: Callable[[], int] = lambda: 0
        #: Whether a task holds the event loop itself (the solo pool runs it there):
        #: the consumer cannot report progress then, and is not stalled for it.
        self.holding_loop: Callable[[], bool] = lambda: False

    # --- recording (signal handlers; memory only) ---------------------------

    def _add(self, task: str, queue: str, **deltas: float) -> None:
        key = (task, queue, minute_of(timezone.now()))
        with self._lock:
            counts = self._counts.get(key)
            if counts is None:
                counts = self._counts[key] = Counts()
            for name, value in deltas.items():
                if name == "runtime_max":
                    counts.runtime_max = max(counts.runtime_max, value)
                else:
                    setattr(counts, name, getattr(counts, name) + value)

    def received(
        self, task: str, queue: str, receive_count: int, offloaded: int | None = None
    ) -> None:
        """A delivery of ``task`` (a redelivery when SQS received it before; ``offloaded``:
        the bytes of its body stored in S3, ``None`` when it came inline)."""
        deltas = {"received": 1, "redelivered": 1 if receive_count > 1 else 0}
        if offloaded is not None:
            deltas.update(offloaded=1, offloaded_bytes=offloaded)
        self._add(task, queue, **deltas)

    def waited(self, task: str, queue: str, seconds: float) -> None:
        """The task's message waited ``seconds`` from SQS's SentTimestamp to this start."""
        # Clocks of SQS and the worker differ by a little: a negative wait is zero.
        self._add(task, queue, **observation("wait", max(0.0, seconds)))

    def poisoned(self, queue: str, task: str | None = None) -> None:
        """A message of ``queue`` that no task could be made of, moved out of the way.

        Counted under the task it names (an unregistered one, say), else
        under :data:`POISON_TASK`.
        """
        self._add(task or POISON_TASK, queue, poisoned=1)

    def revoked(self, task: str, queue: str) -> None:
        """Celery's revoke path discarded a delivery of ``task`` unrun (revoked or expired)."""
        self._add(task, queue, revoked=1)

    def started(self, task_id: str) -> None:
        """The task began running here: its run time starts now."""
        with self._lock:
            self._started[task_id] = time.monotonic()

    def finished(self, task_id: str, task: str, queue: str, state: str | None) -> None:
        """The task ended in ``state`` (SUCCESS, FAILURE, RETRY...): count it and its run time."""
        with self._lock:
            began = self._started.pop(task_id, None)
        runtime = time.monotonic() - began if began is not None else 0.0
        outcome = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}.get(state or "")
        deltas: dict[str, float] = {**observation("runtime", runtime), "runtime_max": runtime}
        if outcome is not None:
            deltas[outcome] = 1
        self._add(task, queue, **deltas)
        with self._lock:
            self._processed += 1
            if outcome == "failed":
                self._failed += 1

    # --- flushing (timer thread) ---------------------------------------------

    def start(self) -> None:
        """Start the flush thread (once); the main process's first writes the heartbeat."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sqs_broker-telemetry", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.worker is not None:
            # Here, not in the bootstep's start(): a locked database must not
            # delay the worker's start.
            worker = self.worker
            try:
                with_retries(
                    self._flush_lock,
                    FLUSH_ATTEMPTS,
                    lambda: start_worker_heartbeat(
                        self.hostname, worker, lock_wait=LOCK_WAIT, progress=self._progress()
                    ),
                )
            except Exception as exc:
                logger.warning("telemetry: first heartbeat failed: %s", exc)
        if self.liveness is not None:
            self.liveness.listen(self._wake.set)
        try:
            self._beat()
        finally:
            if self.liveness is not None:
                self.liveness.unlisten(self._wake.set)

    def _beat(self) -> None:
        """Flush every interval, and at once when the consumer stalls or recovers."""
        next_flush = time.monotonic() + self.interval
        stalled = False
        while not self._stop.is_set():
            wait = next_flush - time.monotonic()
            if self.liveness is not None:
                due = self._reading(self.liveness).due_in
                if due is not None:
                    wait = min(wait, due + DUE_SLACK)
            self._wake.wait(max(0.0, wait))
            self._wake.clear()
            if self._stop.is_set():
                return
            changed = False
            if self.liveness is not None:
                now_stalled = bool(self._reading(self.liveness).stalled)
                changed, stalled = now_stalled != stalled, now_stalled
            now = time.monotonic()
            if changed or now >= next_flush:  # a failed flush (a locked table): again within 1 s
                next_flush = now + (self.interval if self.flush() else min(self.interval, 1.0))

    def _progress(self) -> dict[str, object] | None:
        """The consumer's progress for the heartbeat; None where no heartbeat is written."""
        if self.liveness is None or self.worker is None:
            return None
        return self._reading(self.liveness).as_heartbeat()

    def _reading(self, tracker: Tracker) -> Liveness:
        """``tracker``'s reading; every queue counts as progressing while a task holds the loop."""
        if self.holding_loop():
            tracker.progressed_all()
        return tracker.snapshot()

    def stop(self, stopped: bool = True) -> None:
        """Stop the thread and write what is left; ``stopped`` marks the worker stopped.

        Runs on the shutdown path, so it tries only :data:`STOP_ATTEMPTS` times.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 5)
        self.flush(stopped=stopped, attempts=STOP_ATTEMPTS)

    def _take(self) -> tuple[dict[CounterKey, Counts], int, int]:
        with self._lock:
            counts, self._counts = self._counts, {}
            processed, failed = self._processed, self._failed
            self._processed = self._failed = 0
        return counts, processed, failed

    def _give_back(self, counts: dict[CounterKey, Counts], processed: int, failed: int) -> None:
        with self._lock:
            for key, value in counts.items():
                current = self._counts.get(key)
                if current is None:
                    self._counts[key] = value
                else:
                    current.merge(value)
            self._processed += processed
            self._failed += failed
            if len(self._counts) > MAX_PENDING_KEYS:
                # The database has been unwritable for long: keep the newest minutes.
                keep = sorted(self._counts, key=lambda k: k[2])[-MAX_PENDING_KEYS:]
                dropped = len(self._counts) - len(keep)
                self._counts = {k: self._counts[k] for k in keep}
                logger.warning("telemetry: dropped %d unwritten counter rows", dropped)

    def flush(self, stopped: bool = False, attempts: int = FLUSH_ATTEMPTS) -> bool:
        """Write the counters (and the heartbeat) in one transaction; True when written.

        Each attempt waits at most :data:`LOCK_WAIT` for a locked table, and
        holds the flush lock (which a prefork fork waits for) only while it
        runs, never while it sleeps before the next: a locked database must
        not hold back the pool's forks, and so the tasks.
        """
        counts, processed, failed = self._take()
        prune = self._prune_due()
        if not (counts or processed or failed or self.worker or prune):
            return True  # an idle prefork child: no connection, no empty transaction
        try:
            held = with_retries(
                self._flush_lock,
                attempts,
                lambda: write(
                    counts,
                    self.hostname,
                    processed,
                    failed,
                    self.worker,
                    self.active(),
                    stopped,
                    prune=prune,
                    lock_wait=LOCK_WAIT,
                    progress=self._progress(),
                ),
            )
        except Exception as exc:
            self._give_back(counts, processed, failed)
            logger.warning("telemetry: flush failed, kept for the next one: %s", exc)
            return False
        if not held:
            # The heartbeat row is not there yet (a child flushed before
            # the main process wrote it): keep the worker totals.
            self._give_back({}, processed, failed)
        return True

    def _prune_due(self) -> bool:
        if self.worker is None:
            return False
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY:
            return False
        self._last_prune = now
        return True


_recorder: Recorder | None = None
_queue_names: dict[str, str] = {}


def recorder() -> Recorder | None:
    """This process's recorder, or None outside a worker (or with telemetry off)."""
    current = _recorder
    if current is None or current.pid != os.getpid():
        return None
    return current


def queue_label(routing_key: str | None) -> str:
    """The SQS queue name the dashboard shows for a delivery's routing key."""
    key = routing_key or ""
    name = _queue_names.get(key)
    if name is None:
        topo = Topology.of()
        name = key if key in topo.predefined else topo.canonical_name(key or DEFAULT_QUEUE)
        _queue_names[key] = name
    return name


def _sqs_message(request: Any) -> dict[str, Any]:
    """The SQS message (kombu's ``delivery_info["sqs_message"]``) behind a worker request."""
    info = getattr(getattr(request, "message", None), "delivery_info", None) or {}
    return info.get("sqs_message") or {}


def receive_count(request: Any) -> int:
    """``ApproximateReceiveCount`` of the SQS message behind a worker request; 1 if unknown."""
    try:
        return int(
            (_sqs_message(request).get("Attributes") or {}).get("ApproximateReceiveCount", 1)
        )
    except (TypeError, ValueError):
        return 1


def sent_timestamp(request: Any) -> float | None:
    """SQS's ``SentTimestamp`` of the message behind a worker request, in Unix seconds.

    kombu asks SQS for it on receive when the transport option
    ``fetch_message_attributes`` names it (sqs_broker.settings does); ``None`` otherwise.
    """
    raw = (_sqs_message(request).get("Attributes") or {}).get("SentTimestamp")
    try:
        return int(raw) / 1000 if raw is not None else None
    except (TypeError, ValueError):
        return None


def offloaded_size(request: Any) -> int | None:
    """The stored size of the offloaded message behind a worker request; ``None`` if inline."""
    return payloads.stored_size(_sqs_message(request).get("MessageAttributes"))


def _routing_key(request: Any) -> str | None:
    info = getattr(request, "delivery_info", None) or {}
    return info.get("routing_key")


def on_task_received(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    """``task_received``, in the worker's main process: count the delivery."""
    current = recorder()
    if current is None or request is None:
        return
    count = receive_count(request)
    current.received(
        request.name, queue_label(_routing_key(request)), count, offloaded_size(request)
    )
    info = getattr(request, "delivery_info", None)
    if isinstance(info, dict):
        # Celery hands the task only a few delivery_info keys; this one travels
        # with them (to prefork children too), so a task can read its
        # self.request.delivery_info["sqs_receive_count"].
        info["sqs_receive_count"] = count
        sent = sent_timestamp(request)
        if sent is not None:
            # Read at the task's start for its queue wait, without another SQS call.
            info["sqs_sent_timestamp"] = sent


def on_task_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """``task_prerun``, where the task runs: start its clock and count its queue wait."""
    current = recorder()
    if current is None or not task_id:
        return
    current.started(task_id)
    request = getattr(task, "request", None)
    if request is None or getattr(request, "is_eager", False):
        return
    sent = (getattr(request, "delivery_info", None) or {}).get("sqs_sent_timestamp")
    if isinstance(sent, int | float):
        current.waited(task.name, queue_label(_routing_key(request)), time.time() - sent)


def on_task_postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any
) -> None:
    """``task_postrun``, where the task runs: count its outcome (eager calls are not counted)."""
    current = recorder()
    if current is None or task is None or not task_id:
        return
    request = task.request
    if getattr(request, "is_eager", False):
        return
    current.finished(task_id, task.name, queue_label(_routing_key(request)), state)


def on_task_revoked(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    """``task_revoked``, in the worker's main process: count the discarded delivery."""
    current = recorder()
    if current is None or request is None:
        return
    name = getattr(sender, "name", None) or getattr(request, "task", None) or "?"
    current.revoked(str(name), queue_label(_routing_key(request)))


def on_worker_process_init(sender: Any = None, **kwargs: Any) -> None:
    """A prefork child: count its own tasks and flush them from its own thread."""
    global _recorder
    if recorder() is not None:
        return  # the solo pool sends this in the main process, which has its recorder
    parent = _recorder
    hostname = str(sender or (parent.hostname if parent else ""))
    if not hostname:
        return
    interval = parent.interval if parent else app_settings.TELEMETRY_INTERVAL
    _recorder = Recorder(hostname, interval)
    _recorder.start()


def on_worker_process_shutdown(**kwargs: Any) -> None:
    """A prefork child exits: flush what it still holds, without marking the worker stopped."""
    current = recorder()
    if current is not None and current.worker is None:
        current.stop(stopped=False)


def pool_name(worker: Any) -> str:
    """The ``--pool`` name of a worker's pool class (``prefork``, ``threads``, ``solo``...)."""
    from celery.concurrency import ALIASES

    cls = worker.pool_cls if isinstance(worker.pool_cls, type) else type(worker.pool_cls)
    path = f"{cls.__module__}:{cls.__qualname__}"
    names: dict[str, str] = {}
    for alias, target in ALIASES.items():
        names.setdefault(target, alias)  # "prefork" comes before its synonym "processes"
    return names.get(path, cls.__module__.rsplit(".", 1)[-1])


def consumed_queues(app: Any) -> list[str]:
    """The SQS names of the queues this worker consumes (``-Q``, or the defaults)."""
    names = list(app.amqp.queues.consume_from or app.amqp.queues)
    return sorted({queue_label(name) for name in names})


class _Runner:
    def __init__(self, current: Recorder) -> None:
        self.recorder = current

    def start(self) -> None:
        self.recorder.start()

    def stop(self, stopped: bool = False) -> None:
        self.recorder.stop(stopped=stopped)


def warm_shutdown() -> bool:
    """Whether this worker is stopping because it was asked to, warmly (SIGTERM, Ctrl-C once).

    Celery stops the bootsteps the same way after an unrecoverable error,
    and a cold shutdown (SIGQUIT) terminates them like a crash: neither may
    mark the worker stopped, or a worker that died would leave the dashboard
    after the window instead of showing as lost.
    """
    from celery.worker import state

    # Identity, as Celery tests them: exit status 0 is a warm stop, not False.
    stopping = state.should_stop is not None and state.should_stop is not False
    terminating = state.should_terminate is not None and state.should_terminate is not False
    return stopping and not terminating


class TelemetryStep(StartStopStep):
    """Worker bootstep: the main process's recorder, its heartbeat and warm-shutdown mark."""

    label = "sqs_broker telemetry"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        global _recorder
        super().__init__(parent, **kwargs)
        from celery.worker import state

        interval = app_settings.TELEMETRY_INTERVAL
        pool = pool_name(parent)
        info = WorkerInfo(
            hostname=parent.hostname,
            pid=os.getpid(),
            pool=pool,
            # The solo pool runs one task at a time whatever --concurrency says.
            concurrency=1 if pool == "solo" else int(parent.concurrency or 1),
            queues=consumed_queues(parent.app),
            started_at=timezone.now(),
            interval=interval,
            versions=versions(),
        )
        # Made before the pool: prefork children inherit the hostname and interval.
        _recorder = Recorder(parent.hostname, interval, worker=info, liveness=liveness.tracker)
        _recorder.active = lambda: len(state.active_requests)
        if pool == "solo":
            # The solo pool runs each task inside the event loop, which reports no
            # progress meanwhile: a long task is work, not a stalled consumer.
            _recorder.holding_loop = lambda: bool(state.active_requests)

    def create(self, parent: Any) -> _Runner | None:
        current = recorder()
        return _Runner(current) if current is not None else None

    def stop(self, parent: Any) -> None:
        """The worker stops: flush, and mark it stopped only on a warm shutdown."""
        if self.obj is not None:
            self.obj.stop(stopped=warm_shutdown())

    def terminate(self, parent: Any) -> None:
        """A cold shutdown: flush what is left, and leave the worker to show as lost."""
        if self.obj is not None:
            self.obj.stop(stopped=False)


def _before_fork() -> None:
    # A prefork child must not inherit an open SQLite connection: SQLite's
    # per-process lock bookkeeping would be copied with it, and the child's
    # own writes would then wait on a lock "its" copy seems to hold, until
    # "database is locked". A flush closes its connection before releasing
    # this lock, so holding it across fork() means no connection is open.
    current = recorder()
    if current is not None:
        current._flush_lock.acquire()


def _after_fork_in_parent() -> None:
    current = recorder()
    if current is not None:
        current._flush_lock.release()


def _after_fork_in_child() -> None:
    current = _recorder  # the parent's, until worker_process_init replaces it
    if current is not None and current._flush_lock.locked():
        current._flush_lock.release()


_connected = False


def install(app: Any) -> None:
    """Record telemetry in ``app``'s workers; safe to call more than once."""
    global _connected
    app.steps["worker"].add(TelemetryStep)
    if _connected:
        return
    signals.task_received.connect(on_task_received, weak=False)
    signals.task_prerun.connect(on_task_prerun, weak=False)
    signals.task_postrun.connect(on_task_postrun, weak=False)
    signals.task_revoked.connect(on_task_revoked, weak=False)
    signals.worker_process_init.connect(on_worker_process_init, weak=False)
    signals.worker_process_shutdown.connect(on_worker_process_shutdown, weak=False)
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
    _connected = True
