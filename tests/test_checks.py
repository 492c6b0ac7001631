"""sqs_broker.checks: the system checks report the findings, and are registered."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from sqs_broker import checks, findings
from tests.support.env import base_env, make_app

UNSAFE = {
    "SQS_CREDENTIALS_IN_URL": "true",
    "AWS_ACCESS_KEY_ID": "AKIACHECKS",
    "AWS_SECRET_ACCESS_KEY": "checks/secret+value=",
}
#: Settings that raise no error and no warning (W005 and I001 silenced).
QUIET = {"CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": "30", "SQS_POLLING_INTERVAL": "0"}


def app(**env: str) -> Any:
    return make_app(base_env(**QUIET, **env))


def test_check_debug_credentials__only_with_debug_and_url_keys() -> None:
    """E001 alone under the security tag, only when DEBUG meets keys in the URL."""
    with override_settings(SQS_BROKER_CELERY_APP=app(**UNSAFE), DEBUG=True):
        assert [m.id for m in checks.check_debug_credentials(None)] == ["sqs_broker.E001"]
    with override_settings(SQS_BROKER_CELERY_APP=app(**UNSAFE), DEBUG=False):
        assert checks.check_debug_credentials(None) == []


def test_check_configuration__reports_errors_and_warnings_not_info() -> None:
    """Exact ids: the rpc backend's E007 and remote control's W007; no information."""
    noisy = app(CELERY_RESULT_BACKEND="django-db")
    noisy.conf.result_backend = "rpc://"
    noisy.conf.worker_enable_remote_control = True
    noisy.conf.task_default_queue = "jobs.fifo"  # I004, which stays out of the checks
    with override_settings(SQS_BROKER_CELERY_APP=noisy):
        assert sorted(m.id for m in checks.check_configuration(None)) == [
            "sqs_broker.E007",
            "sqs_broker.W007",
        ]
    with override_settings(SQS_BROKER_CELERY_APP=app()):
        assert checks.check_configuration(None) == []


def test_to_message__level_hint_and_queue() -> None:
    """A finding becomes Django's message of its level, the queue in front."""
    finding = findings.make("sqs_broker.E021", "gone", "create it", queue="jobs")
    message = checks.to_message(finding)
    assert isinstance(message, Error)
    assert (message.id, message.msg, message.hint) == (
        "sqs_broker.E021",
        "[jobs] gone",
        "create it",
    )


def test_check_command__stops_on_e001() -> None:
    """manage.py check raises SystemCheckError naming E001: the check is registered."""
    with (
        override_settings(SQS_BROKER_CELERY_APP=app(**UNSAFE), DEBUG=True),
        pytest.raises(SystemCheckError, match="sqs_broker.E001"),
    ):
        call_command("check")


def test_check_command__stops_on_configuration_error() -> None:
    """manage.py check raises SystemCheckError naming E007: the second check is registered."""
    broken = app()
    broken.conf.result_backend = "amqp://"
    with (
        override_settings(SQS_BROKER_CELERY_APP=broken),
        pytest.raises(SystemCheckError, match="sqs_broker.E007"),
    ):
        call_command("check")
