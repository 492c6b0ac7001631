"""Tests of ``manage.py sqs_stats``: gather() as JSON, once or every N seconds."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.support import ROOT
from tests.support.env import base_env, make_app


@pytest.mark.django_db
def test_sqs_stats__json_of_gather(sqs, unique):
    """One shot prints gather()'s result: the queue with its depth, age and backlog."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    out = io.StringIO()
    with override_settings(SQS_BROKER_CELERY_APP=app):
        call_command("sqs_stats", "--offline", stdout=out)
        with pytest.raises(CommandError, match="window must be one of"):
            call_command("sqs_stats", "--window", "7", stdout=io.StringIO())
    data = json.loads(out.getvalue())
    (row,) = data["queues"]
    assert (row["name"], row["visible"], row["backlog_per_worker"]) == (f"{unique}-celery", 1, 1.0)
    assert {"findings", "workers", "tasks", "generated_at"} <= set(data)


def _every(seconds: float, unique: str, tmp_path) -> subprocess.Popen[str]:
    """``sqs_stats --offline --interval seconds`` writing into a pipe, as a user's shell runs it."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", DJANGO_SETTINGS_MODULE="project.settings")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/db.sqlite3"
    env.pop("PYTHONUNBUFFERED", None)  # a pipe is block-buffered: the command flushes each line
    return subprocess.Popen(
        [sys.executable, "manage.py", "sqs_stats", "--offline", "--interval", str(seconds)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.usefixtures("sqs_endpoint")
def test_sqs_stats__interval_until_interrupted(unique, tmp_path):
    """--interval prints one JSON line per pass and stops cleanly on Ctrl-C (SIGINT)."""
    proc = _every(0.5, unique, tmp_path)
    lines = []
    deadline = time.monotonic() + 60
    while len(lines) < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert len(lines) == 2, err
    assert all("queues" in line for line in lines)
    assert proc.returncode == 0, err


@pytest.mark.usefixtures("sqs_endpoint")
def test_sqs_stats__interval_ends_quietly_when_the_reader_is_gone(unique, tmp_path):
    """``| head -1``: the pipe closes, the command ends with status 0 and no traceback."""
    proc = _every(0.2, unique, tmp_path)
    assert json.loads(proc.stdout.readline())["queues"] is not None
    proc.stdout.close()  # what head does after its line
    assert proc.wait(timeout=30) == 0
    err = proc.stderr.read()
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("interval", ["0", "-1", "inf", "nan"])
def test_sqs_stats__interval_must_be_a_finite_positive_number(interval):
    """An interval that is not a finite number of seconds above 0: exit 2, naming --interval."""
    with pytest.raises(CommandError, match="--interval") as refused:
        call_command("sqs_stats", "--offline", "--interval", interval, stdout=io.StringIO())
    assert refused.value.returncode == 2
