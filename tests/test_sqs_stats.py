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

from tests.conftest import ROOT, base_env, make_app


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


def test_sqs_stats__interval_until_interrupted(unique, tmp_path):
    """--interval prints one JSON line per pass and stops cleanly on Ctrl-C (SIGINT)."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", DJANGO_SETTINGS_MODULE="project.settings")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/db.sqlite3"
    env.pop("PYTHONUNBUFFERED", None)  # a pipe is block-buffered: the command flushes each line
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "sqs_stats", "--offline", "--interval", "0.5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
