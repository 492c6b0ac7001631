"""Tests of manage.py sqs_sample and the beat task: samples, pruning, exit codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from sqs_broker.localsqs import free_port
from sqs_broker.models import QueueSample
from sqs_broker.tasks import sample_queues
from tests.support.env import base_env, make_app


@pytest.fixture
def app(unique):
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        yield celery


def _run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sqs_sample", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_sqs_sample__once_writes_depths(sqs, unique, app):
    """--once stores one row per queue with the depths SQS reports."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.create_queue(QueueName=f"{unique}-other")
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=300)
    out, err = _run("--once")
    assert out == "Sampled 2 queues; pruned 0 old samples.\n"
    assert err == ""
    row = QueueSample.objects.get(queue=f"{unique}-celery")
    assert (row.visible, row.in_flight, row.delayed) == (2, 1, 0)
    assert QueueSample.objects.filter(queue=f"{unique}-other").count() == 1


@pytest.mark.django_db
def test_sqs_sample__prunes_past_retention(sqs, unique, app):
    """Samples older than SQS_BROKER_RETENTION_DAYS are deleted; newer ones stay."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    now = datetime.now(UTC)
    old = QueueSample.objects.create(
        queue="old", sampled_at=now - timedelta(days=3), visible=1, in_flight=0, delayed=0
    )
    recent = QueueSample.objects.create(
        queue="recent", sampled_at=now - timedelta(hours=1), visible=1, in_flight=0, delayed=0
    )
    with override_settings(SQS_BROKER_RETENTION_DAYS=2):
        out, _ = _run()
    assert out == "Sampled 1 queue; pruned 1 old sample.\n"
    assert not QueueSample.objects.filter(pk=old.pk).exists()
    assert QueueSample.objects.filter(pk=recent.pk).exists()


@pytest.mark.django_db
def test_sqs_sample__unreachable_exits_2(unique):
    """No queue readable: the error per queue on stderr and exit status 2."""
    down = f"http://127.0.0.1:{free_port()}"
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=down))
    err = StringIO()
    with (
        override_settings(SQS_BROKER_CELERY_APP=celery, SQS_BROKER_CONNECT_TIMEOUT=1),
        pytest.raises(CommandError) as raised,
    ):
        call_command("sqs_sample", "--once", stdout=StringIO(), stderr=err)
    assert raised.value.returncode == 2
    assert f"{unique}-celery:" in err.getvalue()
    assert QueueSample.objects.count() == 0


@pytest.mark.django_db
def test_sqs_sample__queue_not_created_yet(sqs, unique):
    """A declared queue Celery has not created yet is reported, not a failure."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    celery = make_app(
        base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"),
        task_routes={"x.y": {"queue": "later"}},
    )
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        out, err = _run("--once")
    assert out == (
        "Sampled 1 queue; pruned 0 old samples.\n"
        f"{unique}-later: does not exist yet (Celery creates it on first use).\n"
    )
    assert err == ""


@pytest.mark.django_db
@pytest.mark.parametrize("interval", ["0", "1e-300", "nan", "1e9"])
def test_sqs_sample__bad_interval(app, interval):
    """--interval must be from 0.1 s to a day: a usage error (64) naming it, nothing sampled."""
    with pytest.raises(CommandError) as refused:
        _run("--interval", interval)
    assert str(refused.value) == (
        f"Error: argument --interval: must be a number of seconds from 0.1 to 86400; got {interval}"
    )
    assert refused.value.returncode == 64
    assert not QueueSample.objects.exists()


@pytest.mark.django_db
def test_sample_queues_task__writes_samples(sqs, unique, app):
    """The beat task samples like the command does."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    result = sample_queues.apply().get()
    assert result == {"written": 1, "pruned": 0, "failed": [], "missing": []}
    assert QueueSample.objects.filter(queue=f"{unique}-celery").count() == 1


@pytest.mark.django_db(transaction=True)
def test_sqs_sample__interval_until_interrupted(sqs, unique):
    """--interval N samples every N seconds; Ctrl-C (SIGINT) stops it cleanly."""
    import select
    import signal
    import subprocess
    import sys
    import time

    from tests.support import ROOT
    from tests.support.env import database_url

    sqs.create_queue(QueueName=f"{unique}-celery")
    env = {
        **base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": database_url(),
    }
    env.pop("PYTHONUNBUFFERED", None)  # a pipe is block-buffered: the command flushes each pass
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sqs_sample", "--interval", "0.3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while QueueSample.objects.filter(queue=f"{unique}-celery").count() < 3:
        assert time.monotonic() < deadline, process.communicate(timeout=5)
        time.sleep(0.2)
    # Each pass is on the pipe already, not only when the buffer fills or the command ends.
    ready, _, _ = select.select([process.stdout], [], [], 10)
    assert ready, "no line on stdout after three passes"
    first = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) is not None
    # Through the same text stream: readline() may hold later lines in its buffer.
    out, err = first + process.stdout.read(), process.stderr.read()
    assert process.returncode == 0, err
    assert out.count("Sampled 1 queue;") >= 3
    assert out.endswith("Stopped.\n")


def test_sample_queues_task__scheduled_in_example_project(settings):
    """The example project's beat schedule runs the registered sampling task every minute."""
    from project.celery import app as project_app

    project_app.loader.import_default_modules()
    assert "sqs_broker.sample_queues" in project_app.tasks
    entry = settings.CELERY_BEAT_SCHEDULE["sqs-broker-sample"]
    assert entry == {"task": "sqs_broker.sample_queues", "schedule": 60.0}
    assert project_app.conf.beat_schedule["sqs-broker-sample"]["task"] == entry["task"]
