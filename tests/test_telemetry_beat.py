"""Beat's heartbeat (sqs_broker.telemetry.beat): ticks are progress; stalled, lost, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from sqs_broker.models import WorkerHeartbeat
from sqs_broker.telemetry import base, beat, read, recorder
from sqs_broker.transport.liveness import Tracker
from tests.support import ROOT
from tests.support.env import base_env, database_url


class Scheduler:
    """A scheduler's shape as beat's service uses it: tick() returns the seconds to sleep."""

    max_interval = 1.0

    def __init__(self) -> None:
        self.ticks = 0
        self.closed = 0

    def tick(self) -> float:
        self.ticks += 1
        return 0.2

    def close(self) -> None:
        self.closed += 1


def _state(hostname: str) -> dict[str, Any] | None:
    rows = [w for w in read.snapshot(300)["workers"] if w["hostname"] == hostname]
    return rows[0] if rows else None


def _wait_for(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _recorder(name: str, interval: float = 60.0) -> recorder.Recorder:
    info = base.WorkerInfo(name, os.getpid(), "beat", 1, [], timezone.now(), interval, {})
    return recorder.Recorder(name, interval, worker=info, liveness=Tracker())


@pytest.mark.django_db(transaction=True)
def test_beat_liveness__a_late_tick_is_a_stall_written_at_once() -> None:
    """A tick later than its answer and margin: stalled at once; a tick recovers; close stops."""
    scheduler = Scheduler()
    rec = _recorder("beat@unit")
    wrapper = beat.BeatLiveness(scheduler, rec, margin=1.0)
    rec.start()
    try:
        assert scheduler.tick() == 0.2 and scheduler.ticks == 1  # wrapped, answer unchanged
        row = _wait_for(lambda: (s := _state("beat@unit")) and s, what="beat's first heartbeat")
        assert row["pool"] == "beat" and row["queues"] == []
        stalled = _wait_for(
            lambda: (s := _state("beat@unit")) and s["state"] == "stalled" and s,
            what="the stall written",
        )
        assert stalled["stalled_queues"] == [beat.BEAT_QUEUE] and stalled["stall_after"] == 1.2
        scheduler.tick()
        _wait_for(lambda: (s := _state("beat@unit")) and s["state"] == "alive", what="the recovery")
    finally:
        scheduler.close()
        scheduler.close()  # Celery closes twice on SIGTERM: once in its handler, once after
    assert scheduler.closed == 2 and wrapper.tracker.snapshot().progress == {}
    assert _state("beat@unit")["state"] == "stopped"


@pytest.mark.django_db(transaction=True)
def test_beat_liveness__closed_by_an_error_is_not_a_stop() -> None:
    """A scheduler closed while beat fails is not marked stopped: it shows as lost later."""
    scheduler = Scheduler()
    rec = _recorder("beat@failing", interval=0.2)
    beat.BeatLiveness(scheduler, rec, margin=5.0)
    rec.start()
    _wait_for(lambda: _state("beat@failing"), what="beat's first heartbeat")
    try:
        try:
            raise RuntimeError("the schedule could not be read")
        finally:
            scheduler.close()
    except RuntimeError:
        pass
    row = WorkerHeartbeat.objects.get(hostname="beat@failing")
    assert row.stopped_at is None
    later = timezone.now() + timedelta(seconds=1)
    assert read.worker_state(row.last_seen, row.stopped_at, row.interval, later) == "lost"


def test_beat_liveness__first_tick_expected_within_max_interval() -> None:
    """Before the first tick, beat may wait its max_interval plus the margin."""
    scheduler = Scheduler()
    scheduler.max_interval = 300.0
    rec = recorder.Recorder("beat@pure", 10.0, liveness=Tracker())
    wrapper = beat.BeatLiveness(scheduler, rec)
    reading = wrapper.tracker.snapshot()
    assert reading.stall_after == 300.0 + beat.TICK_MARGIN and reading.stalled == ()


def test_on_beat_init__failure_is_logged_and_beat_goes_on(caplog) -> None:
    """A heartbeat that cannot start is a warning, not a beat that does not schedule."""

    class Broken:
        @property
        def scheduler(self) -> Any:
            raise RuntimeError("no scheduler here")

    beat.on_beat_init(Broken())
    assert "beat's heartbeat could not start: no scheduler here" in caplog.text


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_beat__real_beat_heartbeat_ticks_lost_and_stopped(tmp_path: Path) -> None:
    """celery beat with telemetry: its ticks are its progress; lost when frozen; then stopped."""
    env = {
        **base_env(
            SQS_BROKER_TELEMETRY="true",
            SQS_BROKER_TELEMETRY_INTERVAL="0.5",
            SQS_QUEUE_NAME_PREFIX=f"beat{os.getpid()}-",
        ),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    env.setdefault("DJANGO_SECRET_KEY", "test-secret-key-" + "x" * 40)
    log = tmp_path / "beat.log"
    argv = [sys.executable, "-m", "celery", "-A", "project", "beat", "--loglevel=INFO"]
    argv += ["-s", str(tmp_path / "schedule")]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    name = beat.hostname()
    try:
        # Before the first tick beat may wait its max_interval (300 s) and the margin; after
        # it, the wait it returned (the project's schedule runs a task every 60 s) and the margin.
        row = _wait_for(
            lambda: (
                (s := _state(name)) and (s["stall_after"] or 999) <= 60 + beat.TICK_MARGIN and s
            ),
            what="beat's first tick in its heartbeat",
        )
        assert (row["state"], row["pool"], row["stalled_queues"]) == ("alive", "beat", [])
        first = WorkerHeartbeat.objects.get(hostname=name).progress["queues"][beat.BEAT_QUEUE]
        process.send_signal(signal.SIGSTOP)
        try:
            _wait_for(lambda: _state(name)["state"] == "lost", what="a frozen beat lost")
        finally:
            process.send_signal(signal.SIGCONT)
        _wait_for(lambda: _state(name)["state"] == "alive", what="beat alive again")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
        assert _state(name)["state"] == "stopped"
        assert WorkerHeartbeat.objects.get(hostname=name).progress["queues"][beat.BEAT_QUEUE] >= (
            first
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        print(f"--- beat log ---\n{log.read_text()[-4000:]}")
