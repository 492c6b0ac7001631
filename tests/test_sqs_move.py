"""Tests of manage.py sqs_move: selective moves with progress, confirmation, native listing."""

from __future__ import annotations

import signal
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
    """--limit 0 is not "no limit", and a rate must be a finite number above 0: exit 64."""
    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    app.send_task("t.a", queue="celery-dlq")
    with (
        override_settings(SQS_BROKER_CELERY_APP=app),
        pytest.raises(CommandError, match=option) as refused,
    ):
        call_command("sqs_move", f"{unique}-celery", option, value, "--yes", stdout=StringIO())
    assert refused.value.returncode == 64
    assert _depth(sqs, dlq) == 1 and _depth(sqs, source) == 0


def _succeeded_and_failed(sqs, unique, succeeded: int = 2, failed: int = 3):
    """A DLQ with ``succeeded`` tasks whose stored result is SUCCESS and ``failed`` FAILURE ones."""
    from django_celery_results.models import TaskResult

    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    for i in range(succeeded + failed):
        name, status = ("t.slow", "SUCCESS") if i < succeeded else ("t.fail", "FAILURE")
        task_id = app.send_task(name, queue="celery-dlq", task_id=f"{unique}-{i}").id
        result = "1" if status == "SUCCESS" else '{"exc_type": "KeyError", "exc_message": ["k"]}'
        TaskResult.objects.create(task_id=task_id, status=status, result=result, task_name=name)
    return app, source, dlq


@pytest.mark.django_db
def test_sqs_move__dry_run_prints_the_breakdown_and_moves_nothing(sqs, unique):
    """--dry-run groups the dead letters and says what each choice would move; nothing moves."""
    app, source, dlq = _succeeded_and_failed(sqs, unique)
    out = StringIO()
    with override_settings(SQS_BROKER_CELERY_APP=app):
        call_command("sqs_move", f"{unique}-celery", "--dry-run", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"{unique}-celery-dlq: about 5 messages; sampled 5 (all of them)")
    assert any(line.split()[:3] == ["3", "FAILURE", "t.fail"] for line in lines)
    assert any(line.split()[:3] == ["2", "SUCCESS", "t.slow"] for line in lines)
    assert lines[-1] == (
        f"A move back to {unique}-celery would take 3 of the 5 sampled, leaving 2 with a "
        "stored SUCCESS result; with --include-succeeded it would take 5."
    )
    assert _depth(sqs, dlq) == 5 and _depth(sqs, source) == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("extra", "moved"), [((), 3), (("--include-succeeded",), 5)])
def test_sqs_move__leaves_succeeded_unless_included(sqs, unique, caplog, extra, moved):
    """The default move takes only the failed tasks; --include-succeeded takes them all."""
    app, source, dlq = _succeeded_and_failed(sqs, unique)
    out = StringIO()
    with (
        override_settings(SQS_BROKER_CELERY_APP=app),
        caplog.at_level("INFO", logger="sqs_broker.audit"),
    ):
        call_command("sqs_move", f"{unique}-celery", "--yes", *extra, stdout=out)
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert f"Moved {moved} messages from {unique}-celery-dlq" in record.getMessage()
    assert ("2 left with a stored SUCCESS result" in record.getMessage()) is (moved == 3)
    assert _depth(sqs, source) == moved and _depth(sqs, dlq) == 5 - moved


@pytest.mark.django_db
def test_sqs_move__delete_succeeded_is_confirmed_and_audited(sqs, unique, caplog):
    """--delete-succeeded asks for the DLQ's name, deletes only SUCCESS ones, logs the line."""
    app, source, dlq = _succeeded_and_failed(sqs, unique)
    with override_settings(SQS_BROKER_CELERY_APP=app):
        with pytest.raises(CommandError, match="does not match"):
            call_command(
                "sqs_move",
                f"{unique}-celery",
                "--delete-succeeded",
                stdin=StringIO(f"{unique}-celery\n"),
                stdout=StringIO(),
            )
        assert _depth(sqs, dlq) == 5
        out = StringIO()
        with caplog.at_level("INFO", logger="sqs_broker.audit"):
            call_command(
                "sqs_move",
                f"{unique}-celery",
                "--delete-succeeded",
                stdin=StringIO(f"{unique}-celery-dlq\n"),
                stdout=out,
            )
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert "Deleted 2 dead letters with a stored SUCCESS result" in record.getMessage()
    assert _depth(sqs, dlq) == 3 and _depth(sqs, source) == 0


def test_sqs_move__modes_do_not_combine(sqs, unique):
    """--dry-run with --delete-succeeded is a usage error (exit 2) before anything is read."""
    queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with (
        override_settings(SQS_BROKER_CELERY_APP=app),
        pytest.raises(CommandError, match="--dry-run and --delete-succeeded cannot") as refused,
    ):
        call_command(
            "sqs_move", f"{unique}-celery", "--dry-run", "--delete-succeeded", stdout=StringIO()
        )
    assert refused.value.returncode == 64


class _Interrupting:
    """An SQS client that sends this process SIGINT (Ctrl-C) around the n-th call of a method."""

    def __init__(self, client, plan: dict) -> None:
        self._client, self._plan = client, plan

    def __getattr__(self, name):
        found = getattr(self._client, name)
        if name != self._plan["method"]:
            return found

        def call(*args, **kwargs):
            self._plan["calls"] += 1
            hit = self._plan["calls"] == self._plan["nth"]
            if hit and self._plan["when"] == "before":
                signal.raise_signal(signal.SIGINT)
            answer = found(*args, **kwargs)
            if hit and self._plan["when"] == "after":
                signal.raise_signal(signal.SIGINT)
            return answer

        return call


#: Every boundary of a copy move's step where Ctrl-C can land: (method, before/after, nth call).
BOUNDARIES = [
    ("receive_message", "before", 1),
    ("receive_message", "after", 2),
    ("send_message_batch", "before", 2),
    ("send_message_batch", "after", 2),
    ("delete_message_batch", "before", 2),
    ("delete_message_batch", "after", 2),
    ("delete_message_batch", "after", 3),
    ("change_message_visibility_batch", "after", 1),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "when", "nth"), BOUNDARIES)
def test_sqs_move__ctrl_c_at_any_boundary_loses_and_duplicates_nothing(
    sqs, unique, caplog, monkeypatch, method, when, nth
):
    """Ctrl-C anywhere in a move: each message in exactly one queue, the audit count is true."""
    from sqs_broker import actions
    from tests.support.queues import drain

    app, source, dlq = _succeeded_and_failed(sqs, unique, succeeded=4, failed=21)
    plan = {"method": method, "when": when, "nth": nth, "calls": 0}
    real = actions._action_client
    monkeypatch.setattr(actions, "_action_client", lambda *a: _Interrupting(real(*a), plan))
    out = StringIO()
    with (
        override_settings(SQS_BROKER_CELERY_APP=app),
        caplog.at_level("INFO", logger="sqs_broker.audit"),
    ):
        try:
            call_command("sqs_move", f"{unique}-celery", "--yes", stdout=out)
        except CommandError as ended:
            assert ended.returncode == 1 and "cancelled" in str(ended)
        except KeyboardInterrupt:
            pytest.fail("Ctrl-C escaped the command mid-move")
    assert plan["calls"] >= nth, "the interruption never happened"
    moved = {m["Body"] for m in drain(sqs, source, visibility_timeout=30)}
    left = {m["Body"] for m in drain(sqs, dlq, visibility_timeout=30)}
    assert not moved & left, "a message is in both queues"
    assert len(moved) + len(left) == 25
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert f" {len(moved)} messages from {unique}-celery-dlq" in record.getMessage()
    if "Interrupted" in out.getvalue():
        assert record.getMessage().split(": ", 1)[1].startswith("Cancelled move:")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("delay", [0.0, 0.7, 1.6])
def test_sqs_move__real_ctrl_c_mid_move(sqs, unique, delay):
    """SIGINT to a running ``manage.py sqs_move``: it stops, nothing doubled, the line is true."""
    import re
    import subprocess
    import sys
    import time

    from tests.support import ROOT
    from tests.support.env import database_url
    from tests.support.queues import drain

    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    for i in range(40):
        app.send_task("t.fail", queue="celery-dlq", task_id=f"{unique}-{i}")
    env = base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="project.settings",
        PYTHONUNBUFFERED="1",
    )
    argv = [sys.executable, "manage.py", "sqs_move", f"{unique}-celery", "--yes", "--rate", "2"]
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:  # the first progress line: the move is under way
        lines.append(line)
        if line.startswith("  running:"):
            break
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    output = "".join(lines) + rest
    assert process.returncode == 1, output
    assert "Interrupted: stopping after the step under way." in output
    moved = {m["Body"] for m in drain(sqs, source, visibility_timeout=30)}
    left = {m["Body"] for m in drain(sqs, dlq, visibility_timeout=30)}
    assert not moved & left and len(moved) + len(left) == 40, output
    said = re.findall(r"Cancelled move: (\d+) messages from", output.split("Interrupted")[1])
    assert said == [str(len(moved))] * 2, output  # the summary line and the audit line
    assert 0 < len(moved) < 40, output
    audit = [line for line in output.splitlines() if "sqs_broker.audit" in line]
    assert len(audit) == 1 and f"Cancelled move: {len(moved)} messages" in audit[0], output
