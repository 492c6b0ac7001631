"""Tests of sqs_broker.health: the summary the dashboard shows first."""

from __future__ import annotations

from sqs_broker import health


def _queue(name: str, in_flight: int = 0, dlq_visible: int | None = None, visible: int = 0):
    dlq = None
    if dlq_visible is not None:
        dlq = {"name": f"{name}-dlq", "visible": dlq_visible, "max_receive_count": 5, "error": None}
    return {
        "name": name,
        "visible": visible,
        "in_flight": in_flight,
        "delayed": 0,
        "dlq": dlq,
    }


def _worker(queues: list[str], active: int = 0, state: str = "alive"):
    return {"queues": queues, "active": active, "state": state, "alive": state == "alive"}


def test_summary__all_clear_is_ok():
    """No dead letters, workers, findings or in-flight messages: level ok, every figure 0."""
    found = health.summary([_queue("celery", dlq_visible=0)], [], [], [])
    assert found["level"] == "ok"
    assert found["dead_letters"] == 0 and found["dead_letter_queues"] == []
    assert found["unheld_in_flight"] == []


def test_summary__dead_letters_are_an_error():
    """Messages in a dead-letter queue make the level error and are counted by queue."""
    queues = [_queue("celery", dlq_visible=9), _queue("mail", dlq_visible=0)]
    found = health.summary(queues, [], [], [])
    assert found["level"] == "error"
    assert found["dead_letters"] == 9
    assert found["dead_letter_queues"] == ["celery-dlq"]


def test_summary__quarantined_messages_are_dead_letters():
    """Poison messages in a quarantine queue count with the dead letters, by queue."""
    quarantine = {**_queue("celery-quarantine", visible=2), "quarantine": True}
    found = health.summary([_queue("celery", visible=4), quarantine], [], [], [])
    assert (found["level"], found["dead_letters"]) == ("error", 2)
    assert found["dead_letter_queues"] == ["celery-quarantine"]


def test_summary__warnings_without_errors():
    """A lost worker, an unconsumed queue and a warning finding give the level warning."""
    findings = [{"id": "W1", "level": "warning", "message": "", "hint": "", "queue": None}]
    found = health.summary([_queue("celery")], findings, [_worker([], state="lost")], ["mail"])
    assert found["level"] == "warning"
    assert found["lost_workers"] == 1
    assert found["unconsumed_queues"] == ["mail"]
    assert found["warning_findings"] == 1 and found["error_findings"] == 0


def test_summary__stalled_workers_are_a_warning():
    """A stalled worker (heartbeats, no progress) is counted apart from lost ones: warning."""
    workers = [_worker(["celery"], state="stalled"), _worker(["celery"])]
    found = health.summary([_queue("celery")], [], workers, [])
    assert (found["level"], found["stalled_workers"], found["lost_workers"]) == ("warning", 1, 0)
    assert health.summary([_queue("celery")], [], [_worker(["celery"])], [])["level"] == "ok"


def test_unheld_in_flight__idle_workers_mean_hidden_failures():
    """In flight while every live consumer is idle: listed; a busy consumer or none: not."""
    queues = [_queue("celery", in_flight=25), _queue("busy", in_flight=3), _queue("lone", 4)]
    workers = [
        _worker(["celery"], active=0),
        _worker(["celery"], active=0),
        _worker(["busy"], active=2),
        _worker(["lone"], active=5, state="lost"),
    ]
    assert health.unheld_in_flight(queues, workers) == [{"queue": "celery", "in_flight": 25}]
    found = health.summary(queues, [], workers, [])
    assert found["level"] == "warning"


def _task(name: str = "t.slow", **figures):
    row = {"name": name, "queue": "celery", "received": 20, "redelivered": 0}
    row.update(succeeded=20, failed=0, retried=0)
    row.update(figures)
    return row


def test_summary__all_clear_says_so():
    """Nothing needs anyone: all_clear is true, every list empty."""
    found = health.summary([_queue("celery", dlq_visible=0)], [], [_worker(["celery"])], [])
    assert found["all_clear"] is True
    assert found["waiting_queues"] == found["failing_tasks"] == found["redelivered_tasks"] == []
    assert found["stalled_workers"] == 0 and found["unhealthy_workers"] == []


def test_summary__oldest_message_against_the_alerts_threshold():
    """A work queue whose oldest message passed sqs_alerts' 600 s waits; a DLQ never does."""
    from sqs_broker.alerts import Thresholds

    old = {**_queue("celery", visible=40, dlq_visible=0), "oldest_age": 900.0}
    young = {**_queue("mail", visible=1), "oldest_age": 30.0}
    dead = {**_queue("celery-dlq", visible=3), "oldest_age": 9000.0}
    found = health.summary([old, young, dead], [], [], [])
    assert [q["queue"] for q in found["waiting_queues"]] == ["celery"]
    assert (found["level"], found["all_clear"], found["oldest_age_threshold"]) == (
        "warning",
        False,
        600.0,
    )
    stricter = health.summary([old, young], [], [], [], thresholds=Thresholds(oldest_age=10))
    assert [q["queue"] for q in stricter["waiting_queues"]] == ["celery", "mail"]


def test_summary__failure_and_redelivery_rates():
    """Over 10 % failed in 20+ runs is failing; 20 % redelivered in 10+ receives is redelivered."""
    tasks = [
        _task("t.fail", succeeded=15, failed=5),
        _task("t.slow", redelivered=9),
        _task("t.few", succeeded=3, failed=3, received=6, redelivered=6),
    ]
    found = health.summary([_queue("celery")], [], [], [], tasks)
    assert found["failing_tasks"] == [
        {"task": "t.fail", "queue": "celery", "rate": 0.25, "count": 20}
    ]
    assert found["redelivered_tasks"] == [
        {"task": "t.slow", "queue": "celery", "rate": 0.45, "count": 20}
    ]
    assert found["level"] == "warning"


def test_summary__stalled_then_lost_workers_with_what_they_held():
    """Stalled workers come first; each lost one says how many tasks it held when last seen."""
    workers = [
        {**_worker(["celery"], active=1, state="lost"), "hostname": "b", "last_seen": "x"},
        {**_worker(["celery"], state="stalled"), "hostname": "a", "last_seen": "y"},
        {**_worker(["celery"], state="alive"), "hostname": "c"},
    ]
    found = health.summary([_queue("celery")], [], workers, [])
    assert (found["stalled_workers"], found["lost_workers"]) == (1, 1)
    assert [(w["hostname"], w["state"], w["held"]) for w in found["unhealthy_workers"]] == [
        ("a", "stalled", 0),
        ("b", "lost", 1),
    ]
