"""Telemetry: in-memory counters, one flush per interval, heartbeats, snapshot, real workers."""

from __future__ import annotations

import random
import re
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from sqs_broker.dashboard.panels import panels as dashboard_panels
from sqs_broker.models import HourlyTaskCounter, TaskCounter, WorkerHeartbeat
from sqs_broker.telemetry import base, read, recorder, store
from tests.support.env import base_env, make_app
from tests.support.users import user_with

INTERVAL = 0.5


def _info(hostname: str = "w@test", interval: float = 10.0) -> base.WorkerInfo:
    return base.WorkerInfo(
        hostname=hostname,
        pid=123,
        pool="solo",
        concurrency=1,
        queues=["q1"],
        started_at=timezone.now(),
        interval=interval,
        versions=base.versions(),
    )


def _beat(
    hostname: str, seen_ago: float, interval: float = 10.0, stopped: bool = False, **fields
) -> WorkerHeartbeat:
    now = timezone.now()
    seen = now - timedelta(seconds=seen_ago)
    return WorkerHeartbeat.objects.create(
        **{
            "hostname": hostname,
            "pid": 1,
            "pool": "prefork",
            "concurrency": 2,
            "queues": ["q1"],
            "started_at": seen - timedelta(minutes=5),
            "last_seen": seen,
            "stopped_at": seen if stopped else None,
            "interval": interval,
            **fields,
        }
    )


def _counted(**filters: str) -> dict[str, float]:
    """Every counter summed over its minutes (a test may cross a minute boundary)."""
    rows = list(TaskCounter.objects.filter(**filters))
    assert rows, f"no TaskCounter row for {filters}"
    totals: dict[str, float] = {
        name: sum(getattr(r, name) for r in rows) for name in base.COUNTS_COLUMNS
    }
    totals["runtime_max"] = max(r.runtime_max for r in rows)
    return totals


# --- recording and flushing -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_recorder__many_tasks_cost_no_query_until_one_flush() -> None:
    """Recording does no query; the flush writes each (task, queue, minute) once."""
    rec = recorder.Recorder("w@test", 10.0)
    with CaptureQueriesContext(connection) as recording:
        for i in range(200):
            rec.received("app.add", "q1", receive_count=2 if i % 4 == 0 else 1)
            rec.started(f"id{i}")
            rec.finished(f"id{i}", "app.add", "q1", "FAILURE" if i % 10 == 0 else "SUCCESS")
    assert len(recording.captured_queries) == 0

    with CaptureQueriesContext(connection) as flushing:
        assert rec.flush() is True
    # One transaction: begin (and PostgreSQL's lock timeout); per minute row and per
    # hour row an update (0 rows), savepoint, insert, release; the heartbeat's update
    # (none yet); commit. One minute and one hour, or two of either if the clock
    # crossed one: not the 200 tasks.
    rows = TaskCounter.objects.count() + HourlyTaskCounter.objects.count()
    timeout = 1 if connection.vendor == "postgresql" else 0
    assert len(flushing.captured_queries) == 1 + timeout + 4 * rows + 2, flushing.captured_queries
    assert set(TaskCounter.objects.values_list("task", "queue")) == {("app.add", "q1")}
    row = _counted()
    assert (row["received"], row["succeeded"], row["failed"], row["redelivered"]) == (
        200,
        180,
        20,
        50,
    )
    assert row["runtime_max"] >= 0 and row["runtime_sum"] >= row["runtime_max"]


def test_handlers__queue_wait_from_sent_timestamp(monkeypatch) -> None:
    """The received handler carries SentTimestamp to the task; its start records the wait."""
    from types import SimpleNamespace

    rec = recorder.Recorder("w@test", 10.0)
    monkeypatch.setattr(recorder, "_recorder", rec)
    monkeypatch.setattr(recorder, "queue_label", lambda key: f"sqs-{key}")
    sent_ms = int((time.time() - 7.0) * 1000)
    attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": str(sent_ms)}
    delivery_info = {"routing_key": "q1"}
    request = SimpleNamespace(
        name="app.add",
        delivery_info=delivery_info,
        message=SimpleNamespace(delivery_info={"sqs_message": {"Attributes": attributes}}),
    )
    recorder.on_task_received(request=request)
    assert delivery_info["sqs_sent_timestamp"] == sent_ms / 1000
    task = SimpleNamespace(
        name="app.add", request=SimpleNamespace(delivery_info=delivery_info, is_eager=False)
    )
    recorder.on_task_prerun(task_id="id1", task=task)
    ((key, counts),) = rec._take()[0].items()
    assert key[:2] == ("app.add", "sqs-q1")
    assert counts.wait_count == 1 and 6.5 < counts.wait_sum < 10
    assert (counts.wait_le_5, counts.wait_le_15) == (0, 1)


def test_handlers__no_sent_timestamp_no_wait(monkeypatch) -> None:
    """Without SentTimestamp (another transport's message) no wait is recorded."""
    from types import SimpleNamespace

    rec = recorder.Recorder("w@test", 10.0)
    monkeypatch.setattr(recorder, "_recorder", rec)
    task = SimpleNamespace(name="t", request=SimpleNamespace(delivery_info={}, is_eager=False))
    recorder.on_task_prerun(task_id="id1", task=task)
    assert rec._take()[0] == {}


def test_counts__columns_match_the_model() -> None:
    """Counts, COUNTS_COLUMNS and the TaskCounter columns name the same counters."""
    from dataclasses import fields

    names = {f.name for f in fields(base.Counts)}
    assert names == set(base.COUNTS_COLUMNS)
    model = {f.name for f in TaskCounter._meta.get_fields()}
    assert names <= model


@pytest.mark.django_db(transaction=True)
def test_write__adds_to_rows_other_processes_wrote() -> None:
    """Two flushes into the same minute add up; runtime_max keeps the larger."""
    minute = base.minute_of(timezone.now())
    key = ("app.add", "q1", minute)
    store.write({key: base.Counts(received=2, succeeded=2, runtime_sum=1.0, runtime_max=0.7)}, "h")
    store.write({key: base.Counts(received=1, failed=1, runtime_sum=0.2, runtime_max=0.2)}, "h")
    row = TaskCounter.objects.get()
    assert (row.received, row.succeeded, row.failed) == (3, 2, 1)
    assert row.runtime_sum == pytest.approx(1.2)
    assert row.runtime_max == pytest.approx(0.7)


@pytest.mark.django_db(transaction=True)
def test_flush__child_totals_wait_for_the_heartbeat_row() -> None:
    """A child's processed/failed are kept until the main process wrote the heartbeat."""
    child = recorder.Recorder("w@test", 10.0)
    child.started("a")
    child.finished("a", "app.add", "q1", "FAILURE")
    assert child.flush() is True
    assert _counted()["failed"] == 1

    main = recorder.Recorder("w@test", 10.0, worker=_info())
    store.start_worker_heartbeat("w@test", main.worker)
    assert child.flush() is True
    beat = WorkerHeartbeat.objects.get(hostname="w@test")
    assert (beat.processed, beat.failed) == (1, 1)
    assert _counted()["failed"] == 1  # counters were not written twice


@pytest.mark.django_db(transaction=True)
def test_flush__retries_while_sqlite_is_locked_and_keeps_counts_when_it_stays_locked() -> None:
    """'database is locked' is retried; a flush that still fails keeps its counts."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite locking")
    connection.close()
    options = connection.settings_dict.setdefault("OPTIONS", {})
    saved = options.get("timeout")
    options["timeout"] = 0.05
    holder = sqlite3.connect(
        connection.settings_dict["NAME"], timeout=5, isolation_level=None, check_same_thread=False
    )
    rec = recorder.Recorder("w@test", 10.0)
    try:
        rec.received("app.add", "q1", 1)
        holder.execute("BEGIN IMMEDIATE")
        assert rec.flush() is False  # locked through every attempt
        assert TaskCounter.objects.count() == 0
        holder.execute("COMMIT")

        rec.received("app.add", "q1", 1)
        holder.execute("BEGIN IMMEDIATE")
        threading.Timer(0.3, holder.execute, args=("COMMIT",)).start()
        assert rec.flush() is True  # a retry got through once the lock was gone
        assert _counted()["received"] == 2
    finally:
        holder.close()
        connection.close()
        if saved is None:
            options.pop("timeout", None)
        else:
            options["timeout"] = saved


@pytest.mark.django_db(transaction=True)
def test_flush__heartbeat_and_stop_mark() -> None:
    """The main recorder writes the heartbeat, then marks it stopped on a warm shutdown."""
    info = _info(interval=INTERVAL)
    rec = recorder.Recorder(info.hostname, INTERVAL, worker=info)
    rec.active = lambda: 3
    store.start_worker_heartbeat(info.hostname, info)
    rec.started("a")
    rec.finished("a", "app.add", "q1", "SUCCESS")
    assert rec.flush()
    beat = WorkerHeartbeat.objects.get()
    assert (beat.processed, beat.failed, beat.active, beat.stopped_at) == (1, 0, 3, None)
    assert beat.versions["celery"] and beat.interval == INTERVAL

    rec.stop(stopped=True)
    beat.refresh_from_db()
    assert beat.stopped_at is not None and beat.active == 0


class _StopSpy:
    def __init__(self) -> None:
        self.calls: list[bool] = []

    def stop(self, stopped: bool = False) -> None:
        self.calls.append(stopped)


@pytest.mark.parametrize(
    ("should_stop", "should_terminate", "how", "marked"),
    [
        (0, None, "stop", True),  # SIGTERM: warm
        (1, None, "stop", True),  # Ctrl-C once: warm, exit status 1
        (None, None, "stop", False),  # an unrecoverable error: Celery stops the steps too
        (None, 0, "terminate", False),  # SIGQUIT: cold
        (0, 0, "terminate", False),  # warm, then cold
    ],
    ids=["sigterm", "sigint", "unrecoverable", "cold", "warm-then-cold"],
)
def test_telemetry_step__only_a_warm_shutdown_marks_stopped(
    monkeypatch, should_stop, should_terminate, how, marked
) -> None:
    """The bootstep marks the worker stopped on a warm shutdown only; a crash shows as lost."""
    from celery.worker import state

    monkeypatch.setattr(state, "should_stop", should_stop)
    monkeypatch.setattr(state, "should_terminate", should_terminate)
    step = recorder.TelemetryStep.__new__(recorder.TelemetryStep)
    step.obj = spy = _StopSpy()
    getattr(step, how)(parent=None)
    assert spy.calls == [marked]


def test_recorder__a_task_holding_the_loop_is_not_a_stall() -> None:
    """While a task runs inside the event loop (solo pool), every queue counts as progressing."""
    from sqs_broker.transport.liveness import Tracker

    clock = [100.0]
    tracker = Tracker(lambda: clock[0])
    tracker.expect("app-celery", 5.0)
    rec = recorder.Recorder("w@solo", 10.0, worker=_info(), liveness=tracker)
    clock[0] += 6
    assert rec._reading(tracker).stalled == ("app-celery",)
    rec.holding_loop = lambda: True
    assert rec._reading(tracker).stalled == ()
    rec.holding_loop = lambda: False
    clock[0] += 6
    assert rec._reading(tracker).stalled == ("app-celery",)


@pytest.mark.parametrize(
    ("pool", "holds"), [("solo", True), ("prefork", False), ("threads", False)]
)
def test_telemetry_step__the_solo_pool_holds_the_loop(monkeypatch, pool, holds) -> None:
    """The bootstep gives the recorder the worker's tracker; a solo worker's task holds the loop."""
    from types import SimpleNamespace

    from celery.concurrency import get_implementation
    from celery.worker import state

    from sqs_broker.transport import liveness

    monkeypatch.setattr(recorder, "_recorder", None)
    parent = SimpleNamespace(
        hostname="w@step",
        pool_cls=get_implementation(pool),
        concurrency=2,
        app=make_app(base_env()),
    )
    recorder.TelemetryStep(parent)
    current = recorder._recorder
    assert current is not None and current.liveness is liveness.tracker
    monkeypatch.setattr(state, "active_requests", set())
    assert current.holding_loop() is False
    monkeypatch.setattr(state, "active_requests", {"a running task"})
    assert current.holding_loop() is holds


@pytest.mark.django_db(transaction=True)
def test_prune_old__drops_rows_past_retention(settings) -> None:
    """Counters (minutes and hours) and heartbeats older than SQS_BROKER_RETENTION_DAYS go."""
    settings.SQS_BROKER_RETENTION_DAYS = 1
    now = timezone.now()
    for moment in (now, now - timedelta(days=2)):
        store.write({("t", "q", base.minute_of(moment)): base.Counts(received=1)}, "w@h")
    _beat("old@h", seen_ago=3 * 86400)
    _beat("new@h", seen_ago=1)
    assert store.prune_old(now) == (2, 1)  # a minute row and an hour row
    assert list(WorkerHeartbeat.objects.values_list("hostname", flat=True)) == ["new@h"]
    minutes = set(TaskCounter.objects.values_list("minute", flat=True))
    assert minutes == {base.minute_of(now), base.BASELINE_MINUTE}
    assert list(HourlyTaskCounter.objects.values_list("hour", flat=True)) == [base.hour_of(now)]


@pytest.mark.django_db
def test_prune_old__whole_hours_bounded_and_totals_exact(settings, monkeypatch) -> None:
    """Each run folds whole hours (at least one); baseline + hours always equal every write.

    The metrics read the totals from the baseline and the hour rows only, so a
    prune that folded part of an hour, or left an hour row behind its folded
    minutes, would count twice or lose counts.
    """
    from sqs_broker import models

    monkeypatch.setattr(models, "PRUNE_LIMIT", 7)
    settings.SQS_BROKER_RETENTION_DAYS = 1
    now = datetime(2026, 11, 30, 12, 34, 56, tzinfo=UTC)
    rng = random.Random(3)
    written = base.Counts()
    # 30 hours back from now; the oldest hour holds 20 minutes, more than a run's limit.
    moments = [now - timedelta(hours=30, minutes=m) for m in range(20)]
    moments += [now - timedelta(minutes=rng.randrange(0, 30 * 60)) for _ in range(120)]
    for moment in moments:
        c = base.Counts(received=rng.randrange(1, 5), failed=rng.randrange(0, 2))
        c.merge(base.Counts(**base.observation("runtime", rng.random())))
        store.write({("app.t", "q", base.minute_of(moment)): c}, "w@h")
        written.merge(c)

    def exact() -> None:
        (row,) = read.totals()
        assert (row["received"], row["failed"]) == (written.received, written.failed)
        assert row["runtime_count"] == written.runtime_count
        assert row["runtime_sum"] == pytest.approx(written.runtime_sum)

    cutoff_hour = base.hour_of(now - timedelta(days=1))
    exact()
    runs = 0
    while True:
        before = set(
            TaskCounter.objects.exclude(minute=base.BASELINE_MINUTE).values_list(
                "minute", flat=True
            )
        )
        deleted, _ = store.prune_old(now)
        exact()
        after = set(
            TaskCounter.objects.exclude(minute=base.BASELINE_MINUTE).values_list(
                "minute", flat=True
            )
        )
        gone = before - after
        hours_left = set(HourlyTaskCounter.objects.values_list("hour", flat=True))
        # Whole hours: no minute of a folded hour stays, and no hour row stays without its minutes.
        assert not {base.hour_of(m) for m in gone} & {base.hour_of(m) for m in after}
        assert hours_left == {base.hour_of(m) for m in after}
        if not deleted:
            break
        runs += 1
        # Bounded: at most the limit's rows (one key: a row a minute), or one hour that holds more.
        assert len(gone) <= 7 or len({base.hour_of(m) for m in gone}) == 1, sorted(gone)
    assert runs > 1  # the limit split the work over several runs
    assert min(after) >= cutoff_hour
    assert store.prune_old(now)[0] == 0


@pytest.mark.django_db
def test_prune_old__totals_never_go_down(settings) -> None:
    """Pruned minutes fold into the baseline row: totals and histograms keep their sums."""
    settings.SQS_BROKER_RETENTION_DAYS = 1
    now = timezone.now()
    old = base.Counts(failed=2, succeeded=3)
    for seconds in (0.05, 2.0, 4000.0):
        old.merge(base.Counts(**base.observation("runtime", seconds)))
    old.merge(base.Counts(**base.observation("wait", 0.3)))
    old.runtime_max = 4000.0
    store.write({("t", "q", base.minute_of(now - timedelta(days=3))): old}, "w@h")
    store.write({("t", "q", base.minute_of(now - timedelta(days=2))): base.Counts(failed=1)}, "w@h")
    store.write(
        {("t", "q", base.minute_of(now)): base.Counts(**base.observation("runtime", 0.2))}, "w@h"
    )
    before = read.totals()
    assert store.prune_old(now)[0] == 2 + 2  # two minute rows, two hour rows
    after = read.totals()
    assert after == before
    (row,) = after
    assert (row["failed"], row["succeeded"]) == (3, 3)
    assert row["runtime_count"] == 4 and row["runtime_buckets"][0] == (0.1, 1)
    assert dict(row["runtime_buckets"])[5.0] == 3 and row["runtime_buckets"][-1] == (None, 4)
    assert row["wait_buckets"][:2] == [(0.1, 0), (0.5, 1)]
    assert store.prune_old(now)[0] == 0  # the baseline row itself is never pruned
    assert read.totals() == before
    # No window reaches the baseline: the last hour shows the recent minute only.
    (task,) = read.snapshot(3600)["tasks"]
    assert task["failed"] == 0


# --- reading ------------------------------------------------------------------


@pytest.mark.django_db
def test_snapshot__worker_states() -> None:
    """Alive, lost after 3 of the worker's own intervals, stopped; old stopped ones left out."""
    _beat("alive@h", seen_ago=1, interval=10)
    _beat("lost@h", seen_ago=3.5, interval=1)
    _beat("slow@h", seen_ago=20, interval=10)
    _beat("stopped@h", seen_ago=30, stopped=True)
    _beat("gone@h", seen_ago=600, stopped=True)
    _beat("lost-long-ago@h", seen_ago=2 * 86400)
    workers = {w["hostname"]: w for w in read.snapshot(300)["workers"]}
    assert {h: w["state"] for h, w in workers.items()} == {
        "alive@h": "alive",
        "lost@h": "lost",
        "slow@h": "alive",
        "stopped@h": "stopped",
    }
    assert workers["alive@h"]["alive"] is True and workers["lost@h"]["alive"] is False
    assert {"last_seen", "queues", "processed", "failed", "active"} <= set(workers["alive@h"])


def _progress(seen: datetime, *ages: float, stall_after: float = 25.0) -> dict:
    """A heartbeat's progress: queue q<i> last progressed ``ages[i]`` seconds before ``seen``."""
    at = seen.timestamp()
    return {"queues": {f"q{i}": at - age for i, age in enumerate(ages)}, "stall_after": stall_after}


def test_worker_state__stalled_judged_at_the_heartbeat() -> None:
    """Stalled when a queue was silent past stall_after at the heartbeat; lost and stopped win."""
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    seen = now - timedelta(seconds=2)
    state = read.worker_state
    assert state(seen, None, 10.0, now, _progress(seen, 3.0, 30.0)) == "stalled"
    assert read.stalled_queues(_progress(seen, 3.0, 30.0), seen) == ["q1"]
    assert state(seen, None, 10.0, now, _progress(seen, 3.0, 20.0)) == "alive"
    # Judged at the heartbeat, not now: the reader's clock and the time since do not matter.
    later = now + timedelta(seconds=25)
    assert state(seen, None, 10.0, later, _progress(seen, 3.0)) == "alive"
    assert state(seen, None, 1.0, later, _progress(seen, 60.0)) == "lost"
    assert state(seen, seen, 10.0, now, _progress(seen, 60.0)) == "stopped"


@pytest.mark.parametrize(
    "progress",
    [None, {}, {"queues": {}}, {"queues": {"q": 1.0}}, {"queues": {"q": "x"}, "stall_after": 5},
     {"queues": ["q"], "stall_after": 5}, {"queues": {"q": 1.0}, "stall_after": 0},
     {"queues": {"q": 1.0}, "stall_after": "5"}, "garbage"],
)  # fmt: skip
def test_worker_state__no_usable_progress_is_not_judged(progress) -> None:
    """Without (usable) progress reports, a fresh heartbeat is alive: the consumer is not judged."""
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert read.worker_state(now, None, 10.0, now, progress) == "alive"
    assert read.stalled_queues(progress, now) == []


@pytest.mark.django_db
def test_snapshot__stalled_worker_shows_its_consumer() -> None:
    """A stalled worker: state, not alive, its stalled queues, last progress and allowance."""
    seen = timezone.now() - timedelta(seconds=1)
    stalled = _beat("stalled@h", seen_ago=1, progress=_progress(seen, 2.0, 40.0))
    _beat("consuming@h", seen_ago=1, progress=_progress(seen, 0.5))
    _beat("unjudged@h", seen_ago=1)
    workers = {w["hostname"]: w for w in read.snapshot(300)["workers"]}
    row = workers["stalled@h"]
    assert (row["state"], row["alive"], row["stalled_queues"], row["stall_after"]) == (
        "stalled",
        False,
        ["q1"],
        25.0,
    )
    oldest = stalled.last_seen.timestamp() - 40.0
    assert datetime.fromisoformat(row["last_progress"]).timestamp() == pytest.approx(oldest)
    assert row["seconds_since_progress"] == pytest.approx(41.0, abs=1.0)
    assert (workers["consuming@h"]["state"], workers["consuming@h"]["stalled_queues"]) == (
        "alive",
        [],
    )
    unjudged = workers["unjudged@h"]
    assert (unjudged["state"], unjudged["last_progress"], unjudged["stall_after"]) == (
        "alive",
        None,
        None,
    )


@pytest.mark.django_db(transaction=True)
def test_flush__heartbeat_carries_the_consumer_progress() -> None:
    """The main recorder writes its tracker's reading with each heartbeat."""
    from sqs_broker.transport.liveness import Tracker

    tracker = Tracker()
    info = _info()
    rec = recorder.Recorder(info.hostname, 10.0, worker=info, liveness=tracker)
    store.start_worker_heartbeat(info.hostname, info)
    assert rec.flush()
    assert WorkerHeartbeat.objects.get().progress == {}
    tracker.expect("app-celery", 25.0)
    tracker.progressed("app-celery")
    assert rec.flush()
    progress = WorkerHeartbeat.objects.get().progress
    assert set(progress) == {"queues", "stall_after"} and progress["stall_after"] == 25.0
    assert progress["queues"]["app-celery"] == pytest.approx(time.time(), abs=5)
    assert read.snapshot(300)["workers"][0]["state"] == "alive"


@pytest.mark.django_db(transaction=True)
def test_recorder__stall_and_recovery_written_at_once() -> None:
    """With a 60 s interval, a stall and then the recovery reach the database within seconds."""
    from sqs_broker.transport.liveness import Tracker

    tracker = Tracker()
    tracker.expect("app-celery", 2.0)  # long enough for the poll below to see "alive" between
    info = _info(interval=60.0)
    rec = recorder.Recorder(info.hostname, 60.0, worker=info, liveness=tracker)

    def state() -> str | None:
        workers = read.snapshot(300)["workers"]
        return workers[0]["state"] if workers else None

    rec.start()
    try:
        _wait_for(lambda: state() == "stalled", timeout=20, what="the stall written")
        assert read.snapshot(300)["workers"][0]["stalled_queues"] == ["app-celery"]
        tracker.progressed("app-celery")
        _wait_for(lambda: state() == "alive", timeout=20, what="the recovery written")
        # The tracker keeps watching: silent again, stalled again.
        _wait_for(lambda: state() == "stalled", timeout=20, what="the second stall written")
    finally:
        rec.stop(stopped=True)
    assert state() == "stopped"


@pytest.mark.django_db
def test_snapshot__tasks_over_the_window_with_rates() -> None:
    """Sums over the window's minutes only; rates; a sparkline of whole minutes, not the current."""
    now = timezone.now()
    finished_before_this_hour = 0
    for ago, failed in ((0, 1), (2, 3), (30, 50)):
        minute = base.minute_of(now - timedelta(minutes=ago))
        counts = base.Counts(
            received=4,
            succeeded=4 - failed if failed < 4 else 0,
            failed=failed,
            redelivered=1,
            runtime_sum=2.0,
            runtime_max=0.5 + ago,
        )
        store.write({("app.flaky", "q1", minute): counts}, "w@h")
        if base.hour_of(minute) < base.hour_of(now):
            finished_before_this_hour += counts.succeeded + counts.failed
    (task,) = read.snapshot(300, now=now)["tasks"]
    assert (task["name"], task["queue"]) == ("app.flaky", "q1")
    assert (task["received"], task["succeeded"], task["failed"], task["redelivered"]) == (
        8,
        4,
        4,
        2,
    )
    assert task["failure_rate"] == 0.5
    assert task["redelivery_rate"] == 0.25
    assert task["runtime_avg"] == pytest.approx(4.0 / 8)
    assert task["runtime_max"] == pytest.approx(2.5)
    # The five minutes before the current one; the current minute is still being counted.
    assert task["series"] == [0, 0, 0, 4, 0]

    (day,) = read.snapshot(86400, now=now)["tasks"]
    assert day["failed"] == 54
    # Whole hours only: the one cut by the start of the window and the current one are left out.
    assert 23 <= len(day["series"]) <= 24
    assert sum(day["series"]) == finished_before_this_hour


@pytest.mark.django_db
def test_snapshot__long_window_from_hours_equals_the_minutes() -> None:
    """A day read from whole hours plus the first hour's minutes sums exactly what the minutes do.

    Minutes just before the window, in the same hour as its start, must not count:
    that hour's row holds them, so the first hour is read from the minutes.
    """
    now = datetime(2026, 11, 30, 12, 34, 56, tzinfo=UTC)
    since = now - timedelta(days=1)
    rng = random.Random(7)
    written: list[tuple[datetime, base.Counts]] = []
    edges = [since - timedelta(minutes=1), since, since + timedelta(minutes=25), now]
    moments = edges + [now - timedelta(minutes=rng.randrange(0, 26 * 60)) for _ in range(150)]
    for moment in moments:
        c = base.Counts(received=rng.randrange(1, 9), succeeded=rng.randrange(0, 5))
        c.merge(base.Counts(**base.observation("runtime", rng.random() * 3)))
        c.runtime_max = c.runtime_sum
        key = ("app.t", "q1", base.minute_of(moment))
        store.write({key: c}, "w@h")
        written.append((base.minute_of(moment), c))
    (task,) = read.snapshot(86400, now=now)["tasks"]

    inside = [c for minute, c in written if minute >= base.minute_of(since)]
    assert task["received"] == sum(c.received for c in inside)
    assert task["succeeded"] == sum(c.succeeded for c in inside)
    assert task["runtime_max"] == pytest.approx(max(c.runtime_max for c in inside), abs=1e-6)
    first_hour = base.hour_of(since) + timedelta(hours=1)
    hours = [first_hour + timedelta(hours=i) for i in range(23)]  # the current hour is left out
    expected = [
        sum(c.succeeded for minute, c in written if base.hour_of(minute) == hour) for hour in hours
    ]
    assert task["series"] == expected


@pytest.mark.django_db
def test_snapshot__two_queries_whatever_the_rows(django_assert_num_queries) -> None:
    """Heartbeats in one query; the window's sums and sparkline in one grouped query."""
    now = timezone.now()
    for i in range(4):
        _beat(f"w{i}@h", seen_ago=1, interval=10)
        for ago in range(3):
            key = (
                f"app.t{i}",
                "q2" if i % 2 else "q1",
                base.minute_of(now - timedelta(minutes=ago)),
            )
            store.write({key: base.Counts(received=1, succeeded=1)}, "w@h")
    with django_assert_num_queries(2):
        found = read.snapshot(3600, now=now)
    assert len(found["workers"]) == 4
    assert [(t["queue"], t["name"], t["succeeded"]) for t in found["tasks"]] == [
        ("q1", "app.t0", 3),
        ("q1", "app.t2", 3),
        ("q2", "app.t1", 3),
        ("q2", "app.t3", 3),
    ]
    # A long window: whole hours from the hour counters, the first hour's part from the
    # minutes (a window that starts on the hour has no such part: a fixed start here).
    with django_assert_num_queries(3):
        read.snapshot(86400, now=now.replace(minute=34, second=56))


def test_unconsumed__queues_with_messages_and_no_live_consumer() -> None:
    """Only queues that hold messages and that no alive worker lists are flagged."""
    queues = [
        {"name": "busy", "visible": 3},
        {"name": "empty", "visible": 0, "delayed": 0},
        {"name": "served", "visible": 9},
        {"name": "orphan-of-lost", "delayed": 1},
    ]
    workers = [
        {"alive": True, "queues": ["served"]},
        {"alive": False, "queues": ["orphan-of-lost", "busy"]},
    ]
    assert read.unconsumed(queues, workers) == ["busy", "orphan-of-lost"]


def test_unconsumed__dead_letter_and_quarantine_queues_never() -> None:
    """Queues holding messages for a person (dead-letter, quarantine) are not unconsumed."""
    queues = [
        {"name": "app-celery", "visible": 2, "dlq": {"name": "app-dead"}},
        {"name": "app-dead", "visible": 4},
        {"name": "app-celery-quarantine", "visible": 1},
    ]
    assert read.unconsumed(queues, []) == ["app-celery"]


# --- the faces: stats.json, metrics, dashboard -----------------------------------


@pytest.fixture
def viewer(client, unique):
    """A staff client with view_dashboard, and an app with this test's own prefix."""
    from django.test import override_settings

    client.force_login(user_with("view_dashboard", username=f"viewer-{unique}"))
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=app):
        yield client


def _seed(sqs, unique: str) -> str:
    """A waiting message in the queue only a lost worker read, two heartbeats, two minutes."""
    queue = f"{unique}-celery"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="waiting")
    now = timezone.now()
    _beat(f"alive-{unique}@h", 1, queues=[f"{unique}-other"], processed=12, failed=3, active=1)
    _beat(f"lost-{unique}@h", 120, queues=[queue])
    flaky = "project.demo.tasks.flaky"
    # Written as a worker's flush writes them: the minute rows and their hours.
    store.write(
        {
            (flaky, queue, base.minute_of(now)): base.Counts(
                received=4, failed=4, redelivered=3, runtime_sum=0.4, runtime_max=0.2
            ),
            (flaky, queue, base.minute_of(now - timedelta(minutes=30))): base.Counts(
                received=10, failed=10
            ),
        },
        "w@h",
    )
    return queue


@pytest.mark.django_db
def test_stats_json__workers_tasks_and_unconsumed_queue(viewer, sqs, unique) -> None:
    """stats.json?window=300 carries workers, the window's tasks and the queue nobody reads."""
    queue = _seed(sqs, unique)

    data = viewer.get("/sqs/stats.json?window=300").json()
    states = {w["hostname"]: w["state"] for w in data["workers"]}
    assert states == {f"alive-{unique}@h": "alive", f"lost-{unique}@h": "lost"}
    alive = next(w for w in data["workers"] if w["alive"])
    assert {"hostname", "last_seen", "alive", "queues", "processed", "failed", "active"} <= set(
        alive
    )
    assert (alive["processed"], alive["failed"], alive["active"]) == (12, 3, 1)
    (task,) = data["tasks"]
    assert (task["name"], task["queue"], task["failed"], task["redelivered"]) == (
        "project.demo.tasks.flaky",
        queue,
        4,
        3,
    )
    assert task["runtime_avg"] == pytest.approx(0.1) and task["runtime_max"] == pytest.approx(0.2)
    assert data["unconsumed_queues"] == [queue]  # only the lost worker listed it

    hour = viewer.get("/sqs/stats.json?window=3600").json()
    assert hour["tasks"][0]["failed"] == 14


@pytest.mark.django_db
def test_metrics__worker_and_task_series(viewer, sqs, unique) -> None:
    """/sqs/metrics exposes heartbeats, the window's task counts and unconsumed queues."""
    queue = _seed(sqs, unique)
    text = viewer.get("/sqs/metrics").content.decode()
    host = f"alive-{unique}@h"
    assert f'sqs_broker_worker_alive{{hostname="{host}"}} 1.0' in text
    assert f'sqs_broker_worker_alive{{hostname="lost-{unique}@h"}} 0.0' in text
    assert f'sqs_broker_worker_lost{{hostname="lost-{unique}@h"}} 1.0' in text
    assert f'sqs_broker_worker_info{{hostname="{host}",pool="prefork"' in text
    assert f'sqs_broker_worker_tasks_processed_total{{hostname="{host}"}} 12.0' in text
    assert f'sqs_broker_worker_tasks_failed_total{{hostname="{host}"}} 3.0' in text
    assert f'sqs_broker_worker_active_tasks{{hostname="{host}"}} 1.0' in text
    flaky = f'queue="{queue}",task="project.demo.tasks.flaky"'
    # Counters over all kept minutes (the two of _seed), not the window's.
    assert f'sqs_broker_tasks_total{{outcome="failed",{flaky}}} 14.0' in text
    assert f'sqs_broker_tasks_total{{outcome="redelivered",{flaky}}} 3.0' in text
    assert f'sqs_broker_queue_unconsumed{{dead_letter="false",queue="{queue}"}} 1.0' in text
    assert f'sqs_broker_queue_consumers{{dead_letter="false",queue="{queue}"}} 0.0' in text


@pytest.mark.django_db
def test_quarantine_queue__held_on_every_face(viewer, sqs, unique) -> None:
    """A quarantine queue holding poison is a dead letter on every face, never unconsumed."""
    from sqs_broker import alerts

    work, held = f"{unique}-celery", f"{unique}-celery-quarantine"
    sqs.create_queue(QueueName=work)
    url = sqs.create_queue(QueueName=held)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    _beat(f"alive-{unique}@h", 1, queues=[work])

    data = viewer.get("/sqs/stats.json").json()
    assert data["unconsumed_queues"] == []
    row = next(q for q in data["queues"] if q["name"] == held)
    assert (row["quarantine"], row["visible"], row.get("backlog_per_worker")) == (True, 1, None)
    assert data["health"]["unconsumed_queues"] == []
    assert data["health"]["dead_letter_queues"] == [held]

    text = viewer.get("/sqs/metrics").content.decode()
    assert f'sqs_broker_queue_unconsumed{{dead_letter="true",queue="{held}"}} 0.0' in text
    assert f'queue="{held}",state="visible"}} 1.0' in text
    assert f'dead_letter="false",queue="{held}"' not in text
    assert f'sqs_broker_queue_backlog_per_worker{{dead_letter="true",queue="{held}"}}' not in text

    fired = {(a.alert, a.subject) for a in alerts.evaluate(data).firing}
    assert fired == {("SqsBrokerDeadLetterMessages", held)}
    triggers = alerts.keda(data, "workers", "eu-west-1", target=5)["spec"]["triggers"]
    assert [t["metadata"]["queueURL"].rsplit("/", 1)[-1] for t in triggers] == [work]


@pytest.mark.django_db
def test_dashboard__worker_and_task_panels(viewer, sqs, unique) -> None:
    """The admin dashboard shows worker states, the task table with rates, and the flag."""
    queue = _seed(sqs, unique)
    page = viewer.get("/admin/sqs_broker/dashboard/?window=300").content.decode()
    assert f'data-hostname="alive-{unique}@h" data-state="alive"' in page
    assert f'data-hostname="lost-{unique}@h" data-state="lost"' in page
    assert "1 alive, 1 lost, 0 stopped" in page
    assert 'id="sqs-unconsumed"' in page and f"<code>{queue}</code>" in page
    assert 'data-task="project.demo.tasks.flaky"' in page
    assert "100.0 %" in page and "75.0 %" in page  # failure rate, redelivery rate
    assert 'class="sqs-spark"' in page


@pytest.mark.django_db
def test_faces__stalled_worker_everywhere(viewer, sqs, unique) -> None:
    """A stalled worker in stats.json, its health strip, the metrics and the dashboard."""
    _seed(sqs, unique)
    host = f"stalled-{unique}@h"
    seen = timezone.now() - timedelta(seconds=1)
    _beat(host, seen_ago=1, queues=[f"{unique}-celery"], progress=_progress(seen, 40.0))

    data = viewer.get("/sqs/stats.json?window=300").json()
    row = next(w for w in data["workers"] if w["hostname"] == host)
    assert (row["state"], row["alive"], row["stalled_queues"]) == ("stalled", False, ["q0"])
    assert data["health"]["stalled_workers"] == 1 and data["health"]["level"] == "warning"
    # A stalled worker consumes nothing: its queue counts as unconsumed.
    assert data["unconsumed_queues"] == [f"{unique}-celery"]

    text = viewer.get("/sqs/metrics").content.decode()
    assert f'sqs_broker_worker_stalled{{hostname="{host}"}} 1.0' in text
    assert f'sqs_broker_worker_alive{{hostname="{host}"}} 0.0' in text
    assert f'sqs_broker_worker_stalled{{hostname="alive-{unique}@h"}} 0.0' in text

    page = viewer.get("/admin/sqs_broker/dashboard/?window=300").content.decode()
    assert f'data-hostname="{host}" data-state="stalled"' in page
    assert "1 alive, 1 lost, 0 stopped." in page and "1 stalled: heartbeats arrive" in page
    cell = page[page.index(f'data-hostname="{host}"') :][:1200]
    # 40 s before a heartbeat written 1 s before the seed; the page comes a moment later.
    assert re.search(r"no progress for 4\d s \(allowed 25 s\):", cell), cell
    assert "<code>q0</code>" in cell
    strip = page[page.index('data-health="stalled_workers"') :][:300]
    assert "sqs-sev-warning" in strip and '<span class="figure">1</span>' in strip


@pytest.mark.django_db(transaction=True)
def test_recorder__poisoned_counted_under_its_own_name() -> None:
    """A poison message is counted for its queue under (undecodable), not as a task."""
    current = recorder.Recorder("w@poison", 10.0)
    current.poisoned("app-celery")
    current.poisoned("app-celery")
    assert current.flush()
    (task,) = read.snapshot(300)["tasks"]
    assert (task["name"], task["queue"], task["poisoned"], task["received"]) == (
        base.POISON_TASK,
        "app-celery",
        2,
        0,
    )
    panels = dashboard_panels({"tasks": [task]})
    expected = [{"queue": "app-celery", "task": None, "count": 2}]
    assert panels["tasks"] == [] and panels["poison"] == expected


@pytest.mark.django_db(transaction=True)
def test_recorder__poisoned_counted_under_the_task_it_names() -> None:
    """An unregistered task's poison is counted under its name, listed as poison by that name."""
    current = recorder.Recorder("w@poison", 10.0)
    current.poisoned("app-celery", "app.tasks.forgotten")
    current.poisoned("app-celery", None)
    assert current.flush()
    tasks = {t["name"]: t for t in read.snapshot(300)["tasks"]}
    assert {n: t["poisoned"] for n, t in tasks.items()} == {
        "app.tasks.forgotten": 1,
        base.POISON_TASK: 1,
    }
    panels = dashboard_panels({"tasks": list(tasks.values())})
    assert panels["tasks"] == []  # no run of either to show
    assert sorted(panels["poison"], key=str) == sorted(
        [
            {"queue": "app-celery", "task": "app.tasks.forgotten", "count": 1},
            {"queue": "app-celery", "task": None, "count": 1},
        ],
        key=str,
    )


@pytest.mark.django_db
def test_dashboard__poison_count_and_quarantine_queue_listed(viewer, sqs, unique) -> None:
    """The dashboard shows poison messages per queue and lists the quarantine queue, marked."""
    queue = _seed(sqs, unique)
    sqs.create_queue(QueueName=f"{queue}-quarantine")
    key = (base.POISON_TASK, queue, base.minute_of(timezone.now()))
    named = ("app.tasks.forgotten", queue, base.minute_of(timezone.now()))
    store.write({key: base.Counts(poisoned=3), named: base.Counts(poisoned=2)}, "w@h")
    page = viewer.get("/admin/sqs_broker/dashboard/?window=300").content.decode()
    assert 'id="sqs-poison"' in page and '<strong class="poisoned">3</strong>' in page
    assert (
        '(<code class="poison-task">app.tasks.forgotten</code>): <strong class="poisoned">2<'
        in page
    )
    assert 'data-task="app.tasks.forgotten"' not in page  # no run: not in the task table
    assert f'data-queue="{queue}-quarantine"' in page
    row = page[page.index(f'data-queue="{queue}-quarantine"') :][:1500]
    assert "quarantine</span>" in row
    data = viewer.get("/sqs/stats.json").json()
    flags = {q["name"]: q["quarantine"] for q in data["queues"]}
    assert flags[f"{queue}-quarantine"] is True and flags[queue] is False


@pytest.mark.django_db
def test_revoked__in_stats_json_and_metrics(viewer, sqs, unique) -> None:
    """Deliveries Celery's revoke path discarded show as revoked in stats.json and the metrics."""
    queue = _seed(sqs, unique)
    key = ("project.demo.tasks.add", queue, base.minute_of(timezone.now()))
    store.write({key: base.Counts(received=2, revoked=2)}, "w@h")
    tasks = {t["name"]: t for t in viewer.get("/sqs/stats.json").json()["tasks"]}
    assert tasks["project.demo.tasks.add"]["revoked"] == 2
    assert tasks["project.demo.tasks.flaky"]["revoked"] == 0
    text = viewer.get("/sqs/metrics").content.decode()
    labels = f'queue="{queue}",task="project.demo.tasks.add"'
    assert f'sqs_broker_tasks_total{{outcome="revoked",{labels}}} 2.0' in text
    assert 'outcome="revoked",queue="' + queue + '",task="project.demo.tasks.flaky"' not in text


# --- real workers -------------------------------------------------------------


def _env(unique: str, **extra: str) -> dict[str, str]:
    return base_env(
        **{
            "SQS_QUEUE_NAME_PREFIX": f"{unique}-",
            "SQS_WAIT_TIME_SECONDS": "1",
            "SQS_POLLING_INTERVAL": "0.1",
            "SQS_BROKER_TELEMETRY": "true",
            "SQS_BROKER_TELEMETRY_INTERVAL": str(INTERVAL),
            **extra,
        }
    )


def _wait_for(predicate, timeout: float = 45, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _totals(queue: str) -> dict[str, int]:
    rows = TaskCounter.objects.filter(queue=queue)
    return {
        name: sum(getattr(r, name) for r in rows)
        for name in (
            "received",
            "succeeded",
            "failed",
            "redelivered",
            "wait_count",
            "runtime_count",
        )
    }


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_worker__records_tasks_and_heartbeat(pool, start_worker, unique) -> None:
    """Each pool counts every task (prefork children too), beats, and marks a warm stop."""
    env = _env(unique)
    old = timezone.now() - timedelta(days=8)  # past the default 7 days of retention
    store.write({("gone", "q", base.minute_of(old)): base.Counts(received=1)}, "old@h")
    extra = ("--concurrency=2",) if pool != "solo" else ()
    worker = start_worker(env, pool=pool, extra=extra)
    app = make_app(env)
    queue = f"{unique}-celery"
    for i in range(6):
        app.send_task("project.demo.tasks.add", args=(i, i))
    app.send_task("project.demo.tasks.flaky", args=("boom",))  # fails once, then sits invisible

    totals = _wait_for(
        lambda: (t := _totals(queue))["succeeded"] == 6 and t["failed"] == t["received"] - 6 and t,
        what=f"counters of {queue}",
    )
    assert (totals["received"], totals["failed"], totals["redelivered"]) == (7, 1, 0)
    # kombu asked SQS for SentTimestamp with the receive: every start measured its queue wait.
    assert (totals["wait_count"], totals["runtime_count"]) == (7, 7)
    beat = _wait_for(
        lambda: WorkerHeartbeat.objects.filter(processed=7).first(), what="heartbeat totals"
    )
    assert (beat.pool, beat.failed, beat.queues) == (pool, 1, [queue])
    # Pruned by the worker, into the baseline row that keeps the totals.
    assert TaskCounter.objects.get(task="gone").minute == base.BASELINE_MINUTE
    assert beat.concurrency == (2 if pool != "solo" else 1)
    shown = {w["hostname"]: w for w in read.snapshot(300)["workers"]}[beat.hostname]
    assert shown["state"] == "alive"

    assert worker.stop(signal.SIGTERM) == 0
    beat.refresh_from_db()
    assert beat.stopped_at is not None
    assert read.snapshot(300)["workers"][0]["state"] == "stopped"
    assert _totals(queue)["succeeded"] == 6  # nothing counted twice by the final flush


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker__two_workers_write_at_once_and_a_killed_one_shows_lost(
    start_worker, unique
) -> None:
    """Two workers on one queue lose no count; a SIGKILLed worker turns lost after 3 intervals."""
    env = _env(unique)
    first = start_worker(env, pool="prefork", extra=("--concurrency=2",))
    start_worker(env, pool="threads", extra=("--concurrency=2",))
    app = make_app(env)
    queue = f"{unique}-celery"
    for i in range(40):
        app.send_task("project.demo.tasks.add", args=(i, 1))
    _wait_for(
        lambda: (t := _totals(queue))["succeeded"] == 40 and t["received"] == 40,
        what="40 receives and successes",
    )
    beats = _wait_for(
        lambda: (
            (b := list(WorkerHeartbeat.objects.all())) and sum(x.processed for x in b) == 40 and b
        ),
        what="heartbeat totals",
    )
    assert len(beats) == 2 and _totals(queue)["redelivered"] == 0

    killed = next(b.hostname for b in beats if b.pool == "prefork")

    def state() -> str:
        workers = {w["hostname"]: w for w in read.snapshot(300)["workers"]}
        return workers[killed]["state"]

    # Alive right before the kill (polled: a loaded machine may delay one beat).
    _wait_for(lambda: state() == "alive", timeout=10 * INTERVAL, what="a fresh heartbeat")
    first.stop(signal.SIGKILL)
    _wait_for(lambda: state() == "lost", timeout=10 * INTERVAL, what="lost state")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_worker__warm_shutdown_writes_what_no_timer_flushed(pool, start_worker, unique) -> None:
    """With a long interval nothing is flushed while running; a warm stop still writes it all."""
    env = _env(unique, SQS_BROKER_TELEMETRY_INTERVAL="300")
    worker = start_worker(env, pool=pool, extra=("--concurrency=2",))
    beat = _wait_for(WorkerHeartbeat.objects.first, what="the first heartbeat, written at start")
    assert beat.stopped_at is None and beat.interval == 300
    app = make_app(env, result_backend="django-db")
    results = [app.send_task("project.demo.tasks.add", args=(i, 1)) for i in range(5)]
    assert [r.get(timeout=60) for r in results] == [1, 2, 3, 4, 5]
    assert TaskCounter.objects.count() == 0  # still in the workers' memory

    assert worker.stop(signal.SIGTERM) == 0
    queue = f"{unique}-celery"
    assert _totals(queue) == {
        "received": 5,
        "succeeded": 5,
        "failed": 0,
        "redelivered": 0,
        "wait_count": 5,
        "runtime_count": 5,
    }
    beat.refresh_from_db()
    assert (beat.processed, beat.failed, beat.active) == (5, 0, 0)
    assert beat.stopped_at is not None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker__cold_shutdown_is_not_a_stop(start_worker, unique) -> None:
    """A worker ended by SIGQUIT (cold) keeps no stop mark: it shows alive, then lost."""
    env = _env(unique, CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT="0")
    worker = start_worker(env, pool="solo")
    beat = _wait_for(WorkerHeartbeat.objects.first, what="the first heartbeat")
    make_app(env).send_task("project.demo.tasks.add", args=(1, 1))
    _wait_for(lambda: _totals(f"{unique}-celery")["succeeded"] == 1, what="one task")
    worker.stop(signal.SIGQUIT)
    assert "Cold shutdown" in worker.output(), worker.output()[-2000:]
    beat.refresh_from_db()
    assert beat.stopped_at is None
    state = {w["hostname"]: w["state"] for w in read.snapshot(300)["workers"]}
    assert state[beat.hostname] in ("alive", "lost")


class _DatabaseLock:
    """Another process's lock on the telemetry tables: SQLite's whole file, PostgreSQL's tables."""

    def __init__(self) -> None:
        self.conn: object | None = None

    def acquire(self) -> None:
        s = connection.settings_dict
        if connection.vendor == "sqlite":
            conn = sqlite3.connect(s["TEST"].get("NAME") or s["NAME"], isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
        else:
            import psycopg

            conn = psycopg.connect(
                host=s.get("HOST") or "127.0.0.1",
                port=s.get("PORT") or 5432,
                user=s.get("USER") or "postgres",
                password=s.get("PASSWORD") or None,
                dbname=s["NAME"],
            )
            conn.execute(
                "LOCK TABLE sqs_broker_taskcounter, sqs_broker_workerheartbeat "
                "IN ACCESS EXCLUSIVE MODE"
            )
        self.conn = conn

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()  # type: ignore[attr-defined]
            self.conn.close()  # type: ignore[attr-defined]
            self.conn = None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker__locked_database_does_not_hold_tasks_back(start_worker, unique, tmp_path) -> None:
    """A prefork worker forking a child per task runs its tasks while telemetry is locked out."""
    # Results out of the database: only telemetry may touch it while it is locked.
    env = _env(unique, CELERY_RESULT_BACKEND="cache+memory://")
    start_worker(env, pool="prefork", extra=("--concurrency=2", "--max-tasks-per-child=1"))
    _wait_for(WorkerHeartbeat.objects.first, what="the first heartbeat")
    lock = _DatabaseLock()
    lock.acquire()
    try:
        time.sleep(2 * INTERVAL)  # flushes are now waiting on the lock
        journal = tmp_path / "journal"
        app = make_app(env)
        started = time.monotonic()
        for n in range(6):
            app.send_task("project.demo.tasks.journal", args=(str(journal), f"t{n}"))
        # Tasks held back by the lock would wait for its release, after this wait: the
        # bound only needs room for six forks and child exits (each child's last flush
        # gives up on the lock after its attempts) on a loaded machine.
        done = _wait_for(
            lambda: journal.exists() and len(journal.read_text().splitlines()) == 6,
            timeout=20,
            what="six tasks while the database is locked",
        )
        elapsed = time.monotonic() - started
    finally:
        lock.release()
    assert done and elapsed < 20


@pytest.mark.django_db
def test_dashboard__task_window_said_in_words(viewer, sqs, unique) -> None:
    """The task panel names its window as people say it, in the page's language."""
    _seed(sqs, unique)
    day = viewer.get("/admin/sqs_broker/dashboard/?window=86400").content.decode()
    assert "Over the last 1\xa0day, per task and queue" in day
    try:
        hour = viewer.get(
            "/admin/sqs_broker/dashboard/?window=3600", HTTP_ACCEPT_LANGUAGE="zh-hans"
        )
        assert "最近 1\xa0小时内" in hour.content.decode()
    finally:
        # LocaleMiddleware leaves the request's language active in this thread: the
        # next test (sqs_alerts check's English output, say) must not inherit it.
        translation.deactivate()
