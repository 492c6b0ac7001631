"""Tests of manage.py sqs_move: selective moves with progress, confirmation, native listing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.support.env import base_env, make_app
from tests.support.movesqs import MoveEndpoint
from tests.support.queues import queue_with_dlq


def _depth(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


@pytest.mark.django_db
def test_sqs_move__by_task_with_progress(sqs, unique, caplog):
    """--task moves only that task, prints progress and the summary; unconfirmed: nothing."""
    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    for name in ("t.a", "t.b", "t.a"):
        app.send_task(name, queue="celery-dlq")
    with override_settings(SQS_BROKER_CELERY_APP=app):
        with pytest.raises(CommandError, match="does not match"):
            call_command("sqs_move", f"{unique}-celery", stdin=StringIO(""), stdout=StringIO())
        assert _depth(sqs, dlq) == 3
        out = StringIO()
        with caplog.at_level("INFO", logger="sqs_broker.audit"):
            call_command("sqs_move", f"{unique}-celery", "--task", "t.a", "--yes", stdout=out)
    text = out.getvalue()
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert f"Moved 2 messages matching task t.a from {unique}-celery-dlq" in record.getMessage()
    assert "done: 2 moved, 1 passed over" in text
    assert f"Moved 2 messages matching task t.a from {unique}-celery-dlq" in text
    assert _depth(sqs, source) == 2 and _depth(sqs, dlq) == 1


def test_sqs_move__lists_and_cancels_native_tasks(sqs, sqs_endpoint, unique):
    """--list prints ListMessageMoveTasks; --cancel sends CancelMessageMoveTask with the handle."""
    queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    with MoveEndpoint(sqs_endpoint) as fake:
        fake.moved, fake.to_move = 3, 7
        app = make_app(
            base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=fake.endpoint_url)
        )
        with override_settings(SQS_BROKER_CELERY_APP=app):
            out = StringIO()
            call_command("sqs_move", f"{unique}-celery", "--list", stdout=out)
            assert "handle-1  RUNNING  3/7 moved" in out.getvalue()
            call_command("sqs_move", f"{unique}-celery", "--cancel", "handle-1", stdout=out)
    assert fake.calls[-1] == ("CancelMessageMoveTask", {"TaskHandle": "handle-1"})
    assert "Cancelled handle-1: 3 messages moved." in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("option", "value"),
    [("--limit", "0"), ("--limit", "-5"), ("--rate", "0"), ("--rate", "nan"), ("--rate", "inf")],
)
def test_sqs_move__bad_limit_or_rate_moves_nothing(sqs, unique, option, value):
    """--limit 0 is not "no limit", and a rate must be a finite number above 0: exit 2."""
    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    app.send_task("t.a", queue="celery-dlq")
    with (
        override_settings(SQS_BROKER_CELERY_APP=app),
        pytest.raises(CommandError, match=option) as refused,
    ):
        call_command("sqs_move", f"{unique}-celery", option, value, "--yes", stdout=StringIO())
    assert refused.value.returncode == 2
    assert _depth(sqs, dlq) == 1 and _depth(sqs, source) == 0
