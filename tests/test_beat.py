"""Celery beat of the example project when its queue vanishes (deleted, or a local SQS restarted).

What it exercises is :meth:`sqs_broker.transport.Channel._put`: kombu keeps a
queue's URL for the channel's life, so beat's long-lived producer failed on
every tick after the queue vanished (a traceback of ``SchedulingError ...
NonExistentQueue`` each time) until a worker declared the queue again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from sqs_broker.localsqs import LOCAL_ENV, LocalSQS, free_port
from tests.support import ROOT
from tests.support.env import base_env

pytestmark = pytest.mark.worker

#: The example's settings with a tick every second instead of every minute.
BEAT_SETTINGS = """
from project.settings import *  # noqa: F403
CELERY_BEAT_SCHEDULE = {
    "tick": {"task": "project.demo.tasks.add", "schedule": 1.0, "args": (1, 2)},
}
"""


def _messages(endpoint: str, name: str) -> int:
    """Visible messages of ``name`` on ``endpoint``, 0 while the queue does not exist."""
    client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", **_keys())
    try:
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
    except client.exceptions.QueueDoesNotExist:
        return 0
    attributes = client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": LOCAL_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_ENV["AWS_SECRET_ACCESS_KEY"],
    }


def _until(what, timeout: float, beat: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert beat.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


def test_beat__declares_a_vanished_queue_again(tmp_path: Path, unique: str) -> None:
    """The queue deleted under a running beat: the next tick declares it again; no traceback.

    Deleted rather than the local SQS restarted: a tick while SQS is down fails to
    connect and kombu reconnects with an empty cache, hiding what a restart between
    two ticks (beat's minute in the example) shows.
    """
    (tmp_path / "beat_settings.py").write_text(BEAT_SETTINGS)
    local = LocalSQS(port=free_port()).start()
    log = tmp_path / "beat.log"
    env = base_env(
        **LOCAL_ENV,
        SQS_ENDPOINT_URL=local.endpoint_url,
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        DJANGO_SECRET_KEY="k" * 50,
        DJANGO_SETTINGS_MODULE="beat_settings",
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        PYTHONPATH=str(tmp_path),
    )
    command = [sys.executable, "-m", "celery", "-A", "project", "beat", "--loglevel=INFO"]
    command += ["-s", str(tmp_path / "schedule")]
    queue = f"{unique}-celery"
    with log.open("wb") as out:
        beat = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _until(lambda: _messages(local.endpoint_url, queue) >= 1, 60, beat, log)
        client = boto3.client(
            "sqs", endpoint_url=local.endpoint_url, region_name="us-east-1", **_keys()
        )
        client.delete_queue(QueueUrl=client.get_queue_url(QueueName=queue)["QueueUrl"])
        assert _messages(local.endpoint_url, queue) == 0
        _until(lambda: _messages(local.endpoint_url, queue) >= 1, 30, beat, log)
    finally:
        beat.send_signal(signal.SIGTERM)
        try:
            beat.wait(timeout=30)
        finally:
            if beat.poll() is None:
                beat.kill()
            local.stop()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]
    assert ". broker -> sqs-broker://" in output, output[:3000]  # beat's banner
    assert "Message Error" not in output and "NonExistentQueue" not in output, output[-3000:]
    assert f"Queue {queue} no longer existed when publishing: declared it again." in output, output
