"""sqs_broker.findings.causes: causes named from measured figures (W030, W031, W032)."""

from __future__ import annotations

import pytest

from sqs_broker import findings
from sqs_broker.findings.causes import (
    Measured,
    dead_letters_succeeded,
    lease_of,
    redelivered_while_succeeding,
    run_time_reaches_timeout,
)
from tests.support.env import base_env, make_app

QUEUE = {
    "name": "celery",
    "url": "https://sqs.us-east-1.amazonaws.com/123456789012/celery",
    "visibility_timeout": 5,
    "dlq": {"name": "celery-dlq", "visible": 20, "max_receive_count": 2, "error": None},
}


def _task(**figures):
    row = {"name": "project.tasks.slow", "queue": "celery", "received": 20, "redelivered": 9}
    row.update(succeeded=11, failed=0, retried=0, runtime_max=6.03)
    row.update(figures)
    return row


def test_run_time__reaching_the_visibility_timeout_is_w030_with_the_command():
    """The incident's 6.03 s task on a 5 s queue: W030 naming both, with the fix as a command."""
    (found,) = run_time_reaches_timeout(Measured([QUEUE], [_task()]))
    assert (found.id, found.queue) == ("sqs_broker.W030", "celery")
    assert "ran up to 6.03 s on celery" in found.message
    assert "visibility timeout (5 s)" in found.message
    assert found.hint.startswith(
        f"aws sqs set-queue-attributes --queue-url {QUEUE['url']} --attributes VisibilityTimeout=13"
    )


@pytest.mark.parametrize(("longest", "raised"), [(4.4, False), (4.5, True), (None, False)])
def test_run_time__below_ninety_percent_is_quiet(longest, raised):
    """Under 90 % of the timeout nothing is said; a task that never finished says nothing."""
    found = run_time_reaches_timeout(Measured([QUEUE], [_task(runtime_max=longest)]))
    assert bool(found) is raised


def test_run_time__a_lease_keeps_long_runs_from_being_handed_on():
    """With visibility_lease set, the workers extend a running task's message: no W030."""
    assert lease_of({"visibility_lease": 20}) == 20.0
    assert lease_of({"visibility_lease": 0}) is None and lease_of({}) is None
    assert lease_of({"visibility_lease": True}) is None
    assert run_time_reaches_timeout(Measured([QUEUE], [_task(runtime_max=600)], lease=20)) == []
    (found,) = run_time_reaches_timeout(Measured([QUEUE], [_task(runtime_max=600)]))
    assert "visibility timeout" in found.message


def test_redelivered__often_while_rarely_failing_is_w031():
    """45 % redelivered and 0 % failed is W031; a failing task or a few receives are not."""
    (found,) = redelivered_while_succeeding(Measured([QUEUE], [_task()]))
    assert found.id == "sqs_broker.W031"
    assert "redelivered on 45 % of its receives (9 of 20) while failing 0 %" in found.message
    assert redelivered_while_succeeding(Measured([QUEUE], [_task(failed=5)])) == []
    assert redelivered_while_succeeding(Measured([QUEUE], [_task(received=9)])) == []
    assert redelivered_while_succeeding(Measured([QUEUE], [_task(redelivered=3)])) == []


def test_dead_letters__mostly_succeeded_is_w032_with_the_commands():
    """7 of 10 sampled dead letters succeeded: W032 on the DLQ, with the two commands."""
    sample = {"sampled": 10, "succeeded": 7}
    (found,) = dead_letters_succeeded(Measured([QUEUE], [], dead_letters={"celery-dlq": sample}))
    assert (found.id, found.queue) == ("sqs_broker.W032", "celery-dlq")
    assert found.message.startswith("7 of 10 dead letters sampled in celery-dlq")
    assert "manage.py sqs_move celery (it leaves" in found.hint
    assert "manage.py sqs_move celery --delete-succeeded" in found.hint
    few = {"celery-dlq": {"sampled": 10, "succeeded": 4}}
    assert dead_letters_succeeded(Measured([QUEUE], [], dead_letters=few)) == []


def test_measured__runs_every_cause_through_the_registry():
    """findings.measured() runs the registered checks and reads the lease from the app."""
    app = make_app(base_env(), broker_transport_options={"visibility_lease": 30})
    ids = [f.id for f in findings.measured(app, [QUEUE], [_task()], None)]
    assert ids == ["sqs_broker.W031"]  # 6.03 s is far below the 30 s lease
    app = make_app(base_env(SQS_VISIBILITY_LEASE="0"))
    found = findings.measured(
        app, [QUEUE], [_task()], {"celery-dlq": {"sampled": 4, "succeeded": 3}}
    )
    assert [f.id for f in found] == ["sqs_broker.W030", "sqs_broker.W031", "sqs_broker.W032"]
