"""Tests of manage.py sqs_purge: the app's queues only, and only when confirmed."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.support.env import base_env, make_app


@pytest.fixture
def app(unique):
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        yield celery


def _depth(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_sqs_purge__refuses_without_confirmation_then_purges(sqs, unique, app, caplog):
    """Nothing typed or a wrong name: exit 2, nothing purged, nothing recorded; typed: purged."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    for typed in ("", "celery\n"):
        with pytest.raises(CommandError, match="does not match") as refused:
            call_command("sqs_purge", f"{unique}-celery", stdin=StringIO(typed), stdout=StringIO())
        assert refused.value.returncode == 2
    assert _depth(sqs, url) == 1
    assert not [r for r in caplog.records if r.name == "sqs_broker.audit"]
    out = StringIO()
    with caplog.at_level("INFO", logger="sqs_broker.audit"):
        call_command(
            "sqs_purge", f"{unique}-celery", stdin=StringIO(f"{unique}-celery\n"), stdout=out
        )
    # Piped input is not echoed: the prompt's line ends before the result.
    assert "to confirm: \nPurge of" in out.getvalue()
    assert _depth(sqs, url) == 0
    # No Django user in a shell: the record of what was done goes to the project's logs.
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert record.getMessage().startswith("manage.py sqs_purge by ")
    assert f"purged {unique}-celery (about 1 visible messages)" in record.getMessage()


def test_sqs_purge__only_the_apps_queues(sqs, unique, app):
    """A queue under the prefix that the app does not declare is refused, even with --yes."""
    url = sqs.create_queue(QueueName=f"{unique}-payments")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    with pytest.raises(CommandError, match="not a queue of this app") as refused:
        call_command("sqs_purge", f"{unique}-payments", "--yes", stdout=StringIO())
    assert refused.value.returncode == 2
    assert _depth(sqs, url) == 1


def test_audit__kept_by_the_example_whatever_the_log_level():
    """DJANGO_LOG_LEVEL=WARNING quiets the rest, not the record of what a command changed."""
    from tests.support.env import run_python

    code = (
        "import django; django.setup()\n"
        "import logging\n"
        "from sqs_broker.management.commands._confirm import audit\n"
        "logging.getLogger('sqs_broker.sqs').info('routine')\n"
        "audit('manage.py sqs_purge', 'purged q (about 3 visible messages)')\n"
    )
    env = base_env(DJANGO_LOG_LEVEL="WARNING", DJANGO_SECRET_KEY="k" * 50)
    result = run_python("-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert "routine" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "sqs_broker.audit" in line]
    # Stamped: date, time, level, logger.
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO sqs_broker\.audit: ", line), line
    assert "sqs_broker.audit: manage.py sqs_purge by " in line
    assert "purged q (about 3 visible messages)" in line
