"""The consumer's liveness (sqs_broker.transport.liveness): progress per queue, stalls, recovery;
and the whole path on real workers: the heartbeat, sqs_probe, a black hole."""

from __future__ import annotations

import io
import json
import signal
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError
from django.core.management import call_command

from sqs_broker.models import WorkerHeartbeat
from sqs_broker.transport import liveness
from tests.support.env import base_env
from tests.support.proxy import Proxy


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tracker__nothing_consumed_nothing_judged() -> None:
    """No queue expected: no progress, no allowance, nothing stalled or due."""
    reading = liveness.Tracker(Clock()).snapshot()
    assert (dict(reading.progress), reading.stall_after, reading.stalled, reading.due_in) == (
        {},
        0.0,
        (),
        None,
    )
    assert reading.oldest is None and reading.as_heartbeat() == {}


def test_tracker__expected_queue_stalls_after_its_allowance() -> None:
    """A queue is judged from the moment it is expected; silent past stall_after, it is stalled."""
    clock = Clock()
    tracker = liveness.Tracker(clock)
    tracker.expect("app-celery", 25.0)
    clock.now += 25.0
    reading = tracker.snapshot()
    assert reading.stalled == () and reading.due_in == pytest.approx(0.0)
    clock.now += 0.5
    reading = tracker.snapshot()
    assert reading.stalled == ("app-celery",) and reading.due_in is None


def test_tracker__progress_resets_the_silence() -> None:
    """Each progress report starts the allowance again; the reading gives it in wall-clock time."""
    clock = Clock()
    tracker = liveness.Tracker(clock)
    tracker.expect("a", 10.0)
    clock.now += 8.0
    tracker.progressed("a")
    clock.now += 8.0
    before = time.time()
    reading = tracker.snapshot()
    assert reading.stalled == () and reading.due_in == pytest.approx(2.0)
    # Progress was 8 s before the reading, on the wall clock too.
    assert reading.progress["a"] == pytest.approx(before - 8.0, abs=0.5)
    assert reading.as_heartbeat() == {
        "queues": {"a": round(reading.progress["a"], 3)},
        "stall_after": 10.0,
    }


def test_tracker__each_queue_judged_by_its_own_allowance() -> None:
    """Two queues: only the one past its own allowance stalls; the longest allowance is shown."""
    clock = Clock()
    tracker = liveness.Tracker(clock)
    tracker.expect("short", 5.0)
    tracker.expect("long", 30.0)
    clock.now += 6.0
    reading = tracker.snapshot()
    assert reading.stalled == ("short",)
    assert reading.stall_after == 30.0 and reading.due_in == pytest.approx(24.0)
    assert reading.oldest == min(reading.progress.values())


def test_tracker__forget_and_unexpected_progress() -> None:
    """A forgotten queue is no longer judged; progress of a queue not expected is ignored."""
    clock = Clock()
    tracker = liveness.Tracker(clock)
    tracker.expect("a", 5.0)
    tracker.progressed("never-expected")
    clock.now += 60.0
    assert tracker.snapshot().stalled == ("a",)
    tracker.forget("a")
    tracker.forget("a")  # twice is fine: consumption stops once per queue, but be lenient
    reading = tracker.snapshot()
    assert dict(reading.progress) == {} and reading.stalled == ()


def test_tracker__expect_again_keeps_progress_and_takes_the_new_allowance() -> None:
    """Expecting a consumed queue again changes its allowance, not its last progress."""
    clock = Clock()
    tracker = liveness.Tracker(clock)
    tracker.expect("a", 5.0)
    clock.now += 6.0
    tracker.expect("a", 10.0)
    reading = tracker.snapshot()
    assert reading.stalled == () and reading.stall_after == 10.0
    assert reading.due_in == pytest.approx(4.0)


def test_tracker__bad_allowance_named() -> None:
    """stall_after of zero, below zero or NaN is refused with the argument named."""
    tracker = liveness.Tracker(Clock())
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="stall_after"):
            tracker.expect("a", bad)


def test_tracker__listeners_hear_recovery_only() -> None:
    """A listener is called when a stalled queue progresses again, not on every progress."""
    clock = Clock()
    tracker = liveness.Tracker(clock)
    heard: list[int] = []
    tracker.listen(lambda: heard.append(1))
    tracker.expect("a", 5.0)
    clock.now += 1.0
    tracker.progressed("a")
    assert heard == []
    clock.now += 6.0
    tracker.progressed("a")
    assert heard == [1]
    tracker.progressed("a")
    assert heard == [1]


def test_tracker__unlisten_stops_the_calls() -> None:
    """An unregistered listener is not called again."""
    clock = Clock()
    tracker = liveness.Tracker(clock)
    heard: list[int] = []

    def listener() -> None:
        heard.append(1)

    tracker.listen(listener)
    tracker.listen(listener)  # registered once
    tracker.expect("a", 1.0)
    clock.now += 2.0
    tracker.progressed("a")
    assert heard == [1]
    tracker.unlisten(listener)
    clock.now += 2.0
    tracker.progressed("a")
    assert heard == [1]


def test_tracker__reports_from_many_threads_at_once() -> None:
    """Progress from several threads while another reads: no error, every queue still there."""
    tracker = liveness.Tracker()
    names = [f"q{i}" for i in range(8)]
    for name in names:
        tracker.expect(name, 60.0)
    stop = threading.Event()
    errors: list[BaseException] = []

    def report(name: str) -> None:
        try:
            while not stop.is_set():
                tracker.progressed(name)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=report, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    readings = [tracker.snapshot() for _ in range(2000)]
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(set(r.progress) == set(names) and r.stalled == () for r in readings)


def test_module__functions_share_the_workers_tracker() -> None:
    """expect/progressed/forget/snapshot are the module tracker's: what the transport calls."""
    name = "test-module-functions"
    try:
        liveness.expect(name, 30.0)
        liveness.progressed(name)
        assert name in liveness.snapshot().progress
        assert name in liveness.tracker.snapshot().progress
    finally:
        liveness.forget(name)
    assert name not in liveness.snapshot().progress


def test_module__imports_nothing_of_django_or_celery() -> None:
    """The worker-side module stays free of Django and Celery (the event loop calls it)."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(liveness.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "threading", "time", "collections", "dataclasses", "types"}


# --- real workers on the moto server --------------------------------------------


def _worker_env(unique: str, endpoint: str, **extra: str) -> dict[str, str]:
    return base_env(
        SQS_ENDPOINT_URL=endpoint,
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_BROKER_TELEMETRY="true",
        SQS_BROKER_TELEMETRY_INTERVAL="1",
        **extra,
    )


def _probe(hostname: str) -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("sqs_probe", "--worker", hostname, "--json", stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), json.loads(out.getvalue())
    return 0, json.loads(out.getvalue())


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _hostname() -> str:
    row = _wait(WorkerHeartbeat.objects.first, 60, "the worker's first heartbeat")
    return row.hostname


def test_proxy__black_hole_answers_nothing_until_restored(sqs_endpoint) -> None:
    """tests/proxy.py's black hole: no answer and no error while it lasts; answers after."""
    with Proxy.to(sqs_endpoint) as proxy:
        client = boto3.client(
            "sqs",
            endpoint_url=proxy.endpoint_url,
            region_name="us-east-1",
            config=Config(read_timeout=1, connect_timeout=1, retries={"max_attempts": 1}),
        )
        client.list_queues()
        proxy.black_hole()
        with pytest.raises(ReadTimeoutError):
            client.list_queues()
        proxy.restore()
        client.list_queues()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker__probe_answers_for_a_real_worker(start_worker, unique, sqs_endpoint) -> None:
    """A real worker: its heartbeat makes sqs_probe exit 0; stopped warmly, 1."""
    worker = start_worker(_worker_env(unique, sqs_endpoint))
    name = _hostname()
    code, result = _wait(lambda: (r := _probe(name))[0] == 0 and r, 30, "probe exit 0")
    # "alive" while the transport reports no progress, "consuming" once it does.
    assert result["status"] in ("alive", "consuming"), result
    assert worker.stop(signal.SIGTERM) == 0
    code, result = _probe(name)
    assert (code, result["status"]) == (1, "stopped")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker__heartbeat_shows_consumer_progress(start_worker, unique, sqs_endpoint) -> None:
    """A real idle worker in its long poll: its heartbeat carries progress; the probe says so."""
    start_worker(_worker_env(unique, sqs_endpoint))
    name = _hostname()
    code, result = _wait(
        lambda: (r := _probe(name))[1]["status"] == "consuming" and r, 20, "progress"
    )
    (row,) = result["workers"]
    assert code == 0 and row["stall_after"] > 20 and row["stalled_queues"] == []


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker__black_hole_stalls_then_recovers(start_worker, unique, sqs_endpoint) -> None:
    """40 s into a black hole the worker is stalled and sqs_probe exits 1; within 20 s after, 0."""
    with Proxy.to(sqs_endpoint) as proxy:
        start_worker(_worker_env(unique, proxy.endpoint_url))
        name = _hostname()
        _wait(lambda: _probe(name)[1]["status"] == "consuming", 20, "the consumer's progress")
        proxy.black_hole()
        try:
            time.sleep(40)
            code, result = _probe(name)
            assert (code, result["status"]) == (1, "stalled"), result
            assert result["workers"][0]["stalled_queues"]
        finally:
            proxy.restore()
        ended = time.monotonic()
        _wait(lambda: _probe(name)[0] == 0, 20, "sqs_probe exit 0 after the black hole")
        print(f"consuming again {time.monotonic() - ended:.1f} s after the black hole ended")
