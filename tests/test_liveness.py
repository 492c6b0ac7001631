"""The consumer's liveness (sqs_broker.transport.liveness): progress per queue, stalls, recovery."""

from __future__ import annotations

import threading
import time

import pytest

from sqs_broker.transport import liveness

pytestmark = pytest.mark.pure


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
