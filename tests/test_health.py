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
