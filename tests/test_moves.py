"""Tests of sqs_broker.moves: selective, rate-limited, observable dead-letter moves.

The copy path runs on the moto server; the native path (StartMessageMoveTask,
which moto answers with a 500) on tests.support.movesqs, which answers the three move
calls itself and forwards the rest to moto.
"""

from __future__ import annotations

import json
import time

import pytest

from sqs_broker import actions, moves
from sqs_broker.topology import Topology
from tests.support.env import base_env, make_app
from tests.support.movesqs import MoveEndpoint
from tests.support.queues import drain, queue_with_dlq


def _task_names(messages: list[dict]) -> list[str]:
    from sqs_broker.envelopes import message_summary

    return sorted(message_summary(m)["task"] or "?" for m in messages)


@pytest.fixture
def dead(sqs, unique):
    """The app, its queue and a dead-letter queue holding 3 ``t.a`` and 2 ``t.b`` tasks."""
    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    ids = {}
    for i in range(5):
        name = "t.a" if i < 3 else "t.b"
        ids[f"{name}-{i}"] = celery.send_task(name, queue="celery-dlq", task_id=f"{unique}-{i}").id
    return Topology.of(celery), source, dlq, ids


def _states(app, unique):
    source = actions.owned_state(f"{unique}-celery", app)
    dlq = actions.dead_letter_state(source, app)
    return source, dlq


def _run(record, app, seconds: float = 3.0):
    for _ in range(50):
        record = moves.step(record["id"], app, seconds=seconds)
        if record["state"] != "running":
            return record
    raise AssertionError(f"move never finished: {record}")


@pytest.mark.django_db
def test_step__moves_only_the_named_task(sqs, unique, dead):
    """A task filter moves its messages; the others stay and are visible again at the end."""
    app, source_url, dlq_url, _ids = dead
    source, dlq = _states(app, unique)
    record = _run(moves.start(dlq, source, app, task="t.*a"), app)
    assert record["state"] == "done"
    assert record["mode"] == "copy"
    assert (record["moved"], record["skipped"], record["failed"]) == (3, 2, 0)
    assert _task_names(drain(sqs, source_url, visibility_timeout=30)) == ["t.a"] * 3
    # Released at once, not after the 300 s hold.
    assert _task_names(drain(sqs, dlq_url, visibility_timeout=30)) == ["t.b"] * 2
    text = moves.describe(record)
    assert text.startswith(f"Moved 3 messages matching task t.*a from {unique}-celery-dlq")
    assert "2 passed over" in text


@pytest.mark.django_db
def test_step__exception_filter_reads_stored_results(sqs, unique, dead):
    """Only tasks whose stored exception matches move; a task without a result stays."""
    from django_celery_results.models import TaskResult

    app, source_url, dlq_url, ids = dead
    failure = {"exc_type": "TimeoutError", "exc_message": ["upstream slow"], "exc_module": "x"}
    for key in ("t.a-0", "t.b-3"):
        TaskResult.objects.create(
            task_id=ids[key], status="FAILURE", result=json.dumps(failure), task_name=key[:3]
        )
    other = {"exc_type": "ValueError", "exc_message": ["bad"], "exc_module": "builtins"}
    TaskResult.objects.create(task_id=ids["t.a-1"], status="FAILURE", result=json.dumps(other))
    source, dlq = _states(app, unique)
    record = _run(moves.start(dlq, source, app, exception="timeouterror"), app)
    assert (record["state"], record["moved"], record["skipped"]) == ("done", 2, 3)
    assert _task_names(drain(sqs, source_url, visibility_timeout=30)) == ["t.a", "t.b"]
    assert len(drain(sqs, dlq_url, visibility_timeout=30)) == 3


@pytest.mark.django_db
def test_step__rate_progress_and_cancel(sqs, unique, dead):
    """At 2 messages/s (batches of 2) a 1.2 s step moves 2 or 4, not all 5; cancel stops there."""
    app, source_url, dlq_url, _ids = dead
    source, dlq = _states(app, unique)
    record = moves.start(dlq, source, app, rate=2)
    assert record["mode"] == "copy"  # moto has no StartMessageMoveTask
    assert record["to_move"] == 5
    started = time.monotonic()
    record = moves.step(record["id"], app, seconds=1.2)
    assert 0.9 < time.monotonic() - started < 3  # the rate made it wait, the deadline ended it
    assert record["state"] == "running"
    assert record["moved"] in (2, 4)
    assert moves.get(record["id"])["moved"] == record["moved"]  # progress is stored
    record = moves.cancel(record["id"], app)
    assert record["state"] == "cancelled"
    assert moves.step(record["id"], app)["state"] == "cancelled"  # a cancelled move stays so
    assert len(drain(sqs, source_url, visibility_timeout=30)) == record["moved"]
    assert len(drain(sqs, dlq_url, visibility_timeout=30)) == 5 - record["moved"]


def test_start__bad_rate_is_refused(sqs, unique, dead):
    """A rate of zero or below is a clear error, before anything moves."""
    app, *_ = dead
    source, dlq = _states(app, unique)
    with pytest.raises(ValueError, match="rate must be a positive"):
        moves.start(dlq, source, app, rate=0)


@pytest.mark.django_db
def test_native__start_progress_and_cancel_are_sqs_calls(sqs, sqs_endpoint, unique):
    """No filter, succeeded included: StartMessageMoveTask, ListMessageMoveTasks and Cancel."""
    queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    with MoveEndpoint(sqs_endpoint) as fake:
        app = Topology.of(
            make_app(
                base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=fake.endpoint_url)
            )
        )
        source, dlq = _states(app, unique)
        assert moves.start(dlq, source, app)["mode"] == "copy"  # it would leave succeeded ones
        record = moves.start(dlq, source, app, rate=50.7, include_succeeded=True)
        assert record["mode"] == "native" and record["handle"] == "handle-1"
        action, body = fake.calls[0]
        assert action == "StartMessageMoveTask"
        assert body == {
            "SourceArn": dlq.attributes["QueueArn"],
            "DestinationArn": source.attributes["QueueArn"],
            "MaxNumberOfMessagesPerSecond": 50,
        }
        fake.moved, fake.to_move = 4, 10
        record = moves.step(record["id"], app)
        assert fake.calls[-1] == (
            "ListMessageMoveTasks",
            {"SourceArn": dlq.attributes["QueueArn"], "MaxResults": 10},
        )
        assert (record["state"], record["moved"], record["to_move"]) == ("running", 4, 10)
        record = moves.cancel(record["id"], app)
        assert fake.calls[-1] == ("CancelMessageMoveTask", {"TaskHandle": "handle-1"})
        assert record["state"] == "cancelled"
        assert "(StartMessageMoveTask handle-1)" in moves.describe(record)
        fake.status, fake.moved = "COMPLETED", 10
        done = moves.step(moves.start(dlq, source, app, include_succeeded=True)["id"], app)
        assert (done["state"], done["moved"]) == ("done", 10)
        # No rate: SQS's own default, nothing sent for it.
        assert "MaxNumberOfMessagesPerSecond" not in fake.calls[-2][1]


@pytest.mark.django_db
def test_cancel__during_a_step_stands(sqs, unique, dead):
    """A cancel that arrives while a step runs is not undone when that step saves."""
    import threading

    app, _source_url, dlq_url, _ids = dead
    source, dlq = _states(app, unique)
    record = moves.start(dlq, source, app, rate=2)
    stepping = threading.Thread(target=moves.step, args=(record["id"], app, 1.5))
    stepping.start()
    time.sleep(0.4)
    assert moves.cancel(record["id"], app)["state"] == "cancelled"
    stepping.join()
    assert moves.get(record["id"])["state"] == "cancelled"
    assert moves.step(record["id"], app)["state"] == "cancelled"


@pytest.mark.django_db
def test_move_record__kept_in_the_shared_cache(sqs, unique, dead, settings):
    """With SQS_BROKER_CACHE shared and a per-process default, every process sees a move.

    Another web process has its own default cache: dropping this one's (as a
    restart would) must not lose the move, which lives in SQS_BROKER_CACHE.
    """
    from django.core.cache import caches

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "own"},
        "shared": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"shared-{unique}",
        },
    }
    settings.SQS_BROKER_CACHE = "shared"
    app, *_ = dead
    source, dlq = _states(app, unique)
    record = moves.start(dlq, source, app, task="t.a")
    caches["default"].clear()
    assert moves.get(record["id"]) == record
    assert moves.step(record["id"], app)["id"] == record["id"]
