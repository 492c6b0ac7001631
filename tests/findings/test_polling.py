"""sqs_broker.findings.polling: long and short polling (E004, I001, W002, W003, I002)."""

from __future__ import annotations

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from sqs_broker import findings
from tests.findings.common import (
    OfflineCases,
    app_for,
    offline_case_tests,
)

OFFLINE: OfflineCases = {
    "sqs_broker.E004": ({"options": {"wait_time_seconds": 25}}, {}),
    "sqs_broker.I001": ({}, {"env": {"SQS_POLLING_INTERVAL": "0"}}),
    "sqs_broker.W002": ({"env": {"SQS_POLLING_INTERVAL": "30"}}, {}),
    "sqs_broker.W003": (
        {"env": {"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "0.1"}},
        {"env": {"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "5"}},
    ),
    "sqs_broker.I002": ({"env": {"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "5"}}, {}),
}


test_offline__raises_each_id, test_offline__clean_configuration_does_not = offline_case_tests(
    OFFLINE
)


def test_offline__polling_numbers() -> None:
    """I001 and W003 carry the cycle and the monthly request count and cost."""
    kombu_stock = app_for({"SQS_WAIT_TIME_SECONDS": "10", "SQS_POLLING_INTERVAL": "1"})
    (i001,) = [f for f in findings.offline(kombu_stock) if f.id == "sqs_broker.I001"]
    assert "10 + 1 = 11 s" in i001.message and "235,636 requests" in i001.message
    busy = app_for({"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "0"})
    (w003,) = [f for f in findings.offline(busy) if f.id == "sqs_broker.W003"]
    # 2,592,000 s a month / 0.05 s a round trip = 51,840,000 requests at $0.40 a million.
    assert "51,840,000 requests" in w003.message and "20.74 USD" in w003.message


def test_translation__messages_in_simplified_chinese() -> None:
    """Under zh-hans a finding's message and hint come translated, numbers filled in."""
    from django.utils import translation

    app = app_for({"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "0.2"})
    with translation.override("zh-hans"):
        (w003,) = [f for f in findings.offline(app) if f.id == "sqs_broker.W003"]
    assert "忙循环" in w003.message and "10,368,000" in w003.message
    assert "长轮询" in w003.hint
