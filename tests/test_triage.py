"""Tests of sqs_broker.triage and the moves it steers: a staged incident on the moto server.

The dead-letter queue holds tasks that succeeded anyway (run longer than the
visibility timeout, redelivered, dead-lettered) and tasks that failed, with
their results stored in django-celery-results, as a worker stores them.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sqs_broker import actions, moves, triage
from sqs_broker.topology import Topology
from tests.support.env import base_env, make_app
from tests.support.queues import drain, queue_with_dlq

FAILURE = {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}


def _names(messages: list[dict]) -> list[str]:
    from sqs_broker.envelopes import message_summary

    return sorted(message_summary(m)["task_id"] for m in messages)


@pytest.fixture
def incident(sqs, unique):
    """A DLQ with 4 succeeded ``t.slow``, 3 failed ``t.fail`` and 1 ``t.lost`` without result."""
    from django_celery_results.models import TaskResult

    source_url, dlq_url = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    ids: dict[str, list[str]] = {"ok": [], "failed": [], "unknown": []}
    for i in range(4):
        task_id = app.send_task("t.slow", queue="celery-dlq", task_id=f"{unique}-ok-{i}").id
        TaskResult.objects.create(
            task_id=task_id, status="SUCCESS", result="42", task_name="t.slow"
        )
        ids["ok"].append(task_id)
    for i in range(3):
        task_id = app.send_task("t.fail", queue="celery-dlq", task_id=f"{unique}-bad-{i}").id
        TaskResult.objects.create(
            task_id=task_id, status="FAILURE", result=json.dumps(FAILURE), task_name="t.fail"
        )
        ids["failed"].append(task_id)
    ids["unknown"].append(app.send_task("t.lost", queue="celery-dlq", task_id=f"{unique}-x").id)
    topo = Topology.of(app)
    source = actions.owned_state(f"{unique}-celery", topo)
    dlq = actions.dead_letter_state(source, topo)
    return topo, source, dlq, source_url, dlq_url, ids


def _run(record, app):
    for _ in range(50):
        record = moves.step(record["id"], app)
        if record["state"] != "running":
            return record
    raise AssertionError(f"move never finished: {record}")


@pytest.mark.django_db
def test_breakdown__groups_by_task_exception_and_stored_state(sqs, incident):
    """Each dead letter sampled once and grouped, with counts and what each move would take."""
    app, _source, dlq, _source_url, dlq_url, _ids = incident
    found = triage.breakdown(dlq, app)
    groups = {(g["task"], g["state"], g["exception"]): g["count"] for g in found["groups"]}
    assert groups == {
        ("t.slow", "SUCCESS", None): 4,
        ("t.fail", "FAILURE", "ValueError: boom"): 3,
        ("t.lost", None, None): 1,
    }
    assert (found["sampled"], found["complete"], found["succeeded"]) == (8, True, 4)
    assert found["would_move"] == {"default": 4, "include_succeeded": 8}
    assert found["states"] == {"SUCCESS": 4, "FAILURE": 3, "none": 1}
    assert found["receives"] == 2 and found["releases"] == 1  # 8 messages, then the empty one
    # Released at once, each received exactly once by the sample.
    after = drain(sqs, dlq_url, visibility_timeout=30)
    assert len(after) == 8
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in after} == {"2"}
    assert triage.last(dlq.ref.name)["would_move"] == found["would_move"]


@pytest.mark.django_db
def test_breakdown__a_bounded_sample_estimates_the_rest(sqs, incident):
    """A sample smaller than the queue says so and scales its preview to the queue's depth."""
    app, _source, dlq, *_ = incident
    found = triage.breakdown(dlq, app, limit=4)
    assert (found["sampled"], found["complete"], found["approximate"]) == (4, False, 8)
    assert found["would_move_estimate"]["include_succeeded"] == 8
    with pytest.raises(ValueError, match="limit must be from 1 to 100"):
        triage.breakdown(dlq, app, limit=101)


@pytest.mark.django_db
def test_move__by_default_leaves_succeeded_tasks(sqs, incident):
    """The default move brings back only what did not succeed; the succeeded stay, counted."""
    app, source, dlq, source_url, dlq_url, ids = incident
    record = moves.start(dlq, source, app)
    assert record["mode"] == "copy" and record["include_succeeded"] is False
    record = _run(record, app)
    assert (record["state"], record["moved"]) == ("done", 4)
    assert sorted(record["succeeded"].values()) == sorted(ids["ok"])
    assert _names(drain(sqs, source_url, visibility_timeout=30)) == sorted(
        ids["failed"] + ids["unknown"]
    )
    assert _names(drain(sqs, dlq_url, visibility_timeout=30)) == sorted(ids["ok"])
    assert "4 left with a stored SUCCESS result" in moves.describe(record)
    assert "passed over" not in moves.describe(record)


@pytest.mark.django_db
def test_move__include_succeeded_moves_every_message(sqs, incident):
    """With include_succeeded the succeeded tasks move too (SQS's native move where it exists)."""
    app, source, dlq, source_url, dlq_url, _ids = incident
    record = _run(moves.start(dlq, source, app, include_succeeded=True), app)
    assert (record["state"], record["moved"], record["succeeded"]) == ("done", 8, {})
    assert len(drain(sqs, source_url, visibility_timeout=30)) == 8
    assert drain(sqs, dlq_url) == []


@pytest.mark.django_db
def test_move__task_filter_still_leaves_succeeded(sqs, incident):
    """A task filter and the default together: only the named task's unsucceeded messages move."""
    app, source, dlq, source_url, _dlq_url, ids = incident
    record = _run(moves.start(dlq, source, app, task="t.slow"), app)
    assert (record["moved"], len(record["succeeded"])) == (0, 4)
    record = _run(moves.start(dlq, source, app, task="t.fail"), app)
    assert record["moved"] == 3
    assert _names(drain(sqs, source_url, visibility_timeout=30)) == sorted(ids["failed"])


@pytest.mark.django_db
def test_delete_succeeded__deletes_only_succeeded(sqs, incident):
    """Only the messages whose stored result is SUCCESS are deleted; the rest are visible again."""
    app, _source, dlq, _source_url, dlq_url, ids = incident
    done = triage.delete_succeeded(dlq, app)
    assert (done["examined"], done["deleted"], done["errors"]) == (8, 4, [])
    assert sorted(done["task_ids"]) == sorted(ids["ok"])
    assert _names(drain(sqs, dlq_url, visibility_timeout=30)) == sorted(
        ids["failed"] + ids["unknown"]
    )
    assert triage.describe_deleted(done).startswith(
        f"Deleted 4 dead letters with a stored SUCCESS result from {dlq.ref.name} (8 examined)"
    )


@pytest.mark.django_db
def test_delete_succeeded__unreadable_results_delete_nothing(sqs, incident, monkeypatch):
    """When the result store fails, nothing is deleted and the error is raised, not hidden."""
    from sqs_broker import results

    app, _source, dlq, _source_url, dlq_url, _ids = incident

    def broken(*args, **kwargs):
        raise ConnectionError("result store down")

    monkeypatch.setattr(results, "lookup", broken)
    with pytest.raises(LookupError, match="result store down"):
        triage.delete_succeeded(dlq, app)
    assert len(drain(sqs, dlq_url, visibility_timeout=30)) == 8


@pytest.mark.django_db
def test_where_is__the_last_sample_locates_a_task(sqs, incident):
    """After a breakdown, a task id maps to its queue and receive count at the time."""
    app, _source, dlq, *_rest, ids = incident
    assert triage.where_is(ids["failed"][0]) is None
    triage.breakdown(dlq, app, source="celery")
    seen = triage.where_is(ids["failed"][0])
    assert seen is not None
    assert (seen["queue"], seen["source"], seen["receive_count"]) == (dlq.ref.name, "celery", 1)
    triage.delete_succeeded(dlq, app)
    assert triage.where_is(ids["ok"][0]) is None  # deleted: no longer said to be there
    assert triage.where_is(ids["failed"][0]) is not None


@pytest.mark.django_db
def test_gather__a_sampled_dead_letter_queue_of_succeeded_tasks_is_w032(sqs, incident):
    """After a breakdown, every face's data names the cause: W032 on the DLQ, with the fix."""
    from sqs_broker import stats

    app, _source, dlq, *_rest = incident
    before = stats.gather(app, online=False)
    assert "sqs_broker.W032" not in {f["id"] for f in before["findings"]}
    triage.breakdown(dlq, app)
    (found,) = [f for f in stats.gather(app, online=False)["findings"] if f["id"].endswith("W032")]
    assert found["queue"] == dlq.ref.name
    assert found["message"].startswith(f"4 of 8 dead letters sampled in {dlq.ref.name}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_incident__real_worker_every_cause_is_named(sqs, unique, start_worker, tmp_path):
    """The staged incident on a real worker: 5 s tasks on a queue whose timeout is 2 s.

    Each task runs twice (SQS hands its message out again while it runs) and is
    dead-lettered at the third receive although it succeeded. The data every face
    reads then names the causes: W030 (run time over the timeout) and W031
    (redelivered, never failing) from telemetry, W032 once the DLQ was sampled.
    """
    import time

    from sqs_broker import stats

    source_url, dlq_url = queue_with_dlq(
        sqs, f"{unique}-celery", f"{unique}-celery-dlq", max_receive_count=2, VisibilityTimeout="2"
    )
    env = base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_WAIT_TIME_SECONDS="1",
        SQS_POLLING_INTERVAL="0.1",
        SQS_BROKER_TELEMETRY="true",
        SQS_BROKER_TELEMETRY_INTERVAL="0.5",
        # The incident is the one a lease prevents: without it, runs outlast the timeout.
        SQS_VISIBILITY_LEASE="0",
    )
    start_worker(env, pool="prefork", extra=("--concurrency=5",))
    app = make_app(env)
    journal = tmp_path / "runs.txt"
    for i in range(5):
        app.send_task("project.demo.tasks.journal", args=(str(journal), f"t{i}", 5.0))

    def dead_lettered() -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    deadline = time.monotonic() + 90
    found: dict[str, dict] = {}
    while time.monotonic() < deadline:
        data = stats.gather(app, online=False)
        found = {f["id"]: f for f in data["findings"] if f["queue"] == f"{unique}-celery"}
        if {"sqs_broker.W030", "sqs_broker.W031"} <= set(found) and dead_lettered() >= 2:
            break
        time.sleep(1)
    runs = journal.read_text().split() if journal.exists() else []
    assert "sqs_broker.W030" in found, (found, runs)
    assert "ran up to 5." in found["sqs_broker.W030"]["message"]
    assert "VisibilityTimeout=" in found["sqs_broker.W030"]["hint"]
    assert "sqs_broker.W031" in found, (found, runs)
    # sqs_check names the same causes from the same telemetry.
    out = StringIO()
    try:
        call_command("sqs_check", app=app, stdout=out, stderr=StringIO())
    except CommandError as exc:
        assert exc.returncode == 1, out.getvalue()  # an error finding: still a full report
    assert f"sqs_broker.W030 [{unique}-celery]: Task project.demo.tasks.journal" in out.getvalue()
    assert f"sqs_broker.W031 [{unique}-celery]" in out.getvalue()
    assert dead_lettered() >= 2, runs
    time.sleep(6)  # the second runs finish and store SUCCESS again
    topo = Topology.of(app)
    dlq = actions.owned_state(f"{unique}-celery-dlq", topo)
    sample = triage.breakdown(dlq, topo, source=f"{unique}-celery")
    assert sample["states"].get("SUCCESS", 0) == sample["sampled"] >= 2, sample
    assert sample["would_move"]["default"] == 0
    data = stats.gather(app, online=False)
    (w032,) = [f for f in data["findings"] if f["id"] == "sqs_broker.W032"]
    assert w032["queue"] == f"{unique}-celery-dlq"
    assert f"manage.py sqs_move {unique}-celery --delete-succeeded" in w032["hint"]
    assert data["health"]["redelivered_tasks"][0]["task"] == "project.demo.tasks.journal"
