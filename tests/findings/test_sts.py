"""sqs_broker.findings.sts: STS role options offline, AssumeRole online."""

from __future__ import annotations

import pytest

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from sqs_broker import findings
from tests.findings.common import (
    ACCOUNT,
    OfflineCases,
    app_for,
    offline_case_tests,
    online_ids,
    predefined,
    url,
)

OFFLINE: OfflineCases = {
    "sqs_broker.E014": (
        {
            "env": {"SQS_STS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/celery"},
            "options": {"sts_token_timeout": 600},
        },
        {"env": {"SQS_STS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/celery"}},
    ),
    "sqs_broker.W013": (
        {
            "env": {"SQS_STS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/celery"},
            "options": {"sts_token_buffer_time": 900},
        },
        {
            "env": {
                "SQS_STS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/celery",
                "SQS_STS_TOKEN_BUFFER_TIME": "60",
            }
        },
    ),
    "sqs_broker.W014": (
        {"env": {"SQS_STS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/celery"}},
        {
            "env": {
                "SQS_STS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/celery",
                **predefined(celery={"url": url("celery")}),
            }
        },
    ),
    "sqs_broker.W019": (
        {
            "env": {
                "SQS_STS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/celery",
                **predefined(celery={"url": url("celery")}),
            }
        },
        {
            "env": {"SQS_STS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/celery"},
            "conf": {"broker_url": "sqs://"},
        },
    ),
}


test_offline__raises_each_id, test_offline__clean_configuration_does_not = offline_case_tests(
    OFFLINE
)


@pytest.mark.usefixtures("sqs_endpoint")
def test_online__assume_role_failure(unique: str) -> None:
    """E020 when AssumeRole fails for a reason other than access: a duration below 900 s."""
    env = {
        "SQS_STS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/celery",
        **predefined(celery={"url": url(unique)}),
    }
    bad = app_for(env, {"sts_token_timeout": 60})
    (e020,) = [f for f in findings.online(bad) if f.id == "sqs_broker.E020"]
    assert "DurationSeconds" in e020.message
    assert "sqs_broker.E020" not in online_ids(app_for(env))
