"""End to end: a real `celery -A project worker` consumes from the local SQS."""

from __future__ import annotations

import pytest

from tests.support.env import base_env, make_app

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker__runs_a_task_published_from_django(start_worker, unique, sqs) -> None:
    """A task sent with the project's settings runs in the worker; its result lands in the DB."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_WAIT_TIME_SECONDS="1")
    worker = start_worker(env)
    # The banner names the project's transport by its label, not its class path.
    assert ".> transport:   sqs-broker://" in worker.output(), worker.output()[:3000]
    app = make_app(env, result_backend="django-db")
    result = app.send_task("project.demo.tasks.add", args=(2, 3))
    assert result.get(timeout=60) == 5

    url = sqs.get_queue_url(QueueName=f"{unique}-celery")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # The queue Celery created has long polling of its own.
    assert attributes["ReceiveMessageWaitTimeSeconds"] == "1"
    assert attributes["VisibilityTimeout"] == "1800"
