"""sqs_broker.findings.visibility: visibility timeout, results, shutdown, events."""

from __future__ import annotations

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from tests.findings.common import (
    OfflineCases,
    offline_case_tests,
    predefined,
    url,
)

#: The visibility lease off: the visibility timeout alone decides, as with kombu's transport.
NO_LEASE = {"SQS_VISIBILITY_LEASE": "0"}

OFFLINE: OfflineCases = {
    "sqs_broker.E005": ({"options": {"visibility_timeout": 50000}}, {}),
    "sqs_broker.E006": (
        {"settings": {"SQS_BROKER_MAX_ETA": 3600}},
        {"settings": {"SQS_BROKER_MAX_ETA": 600}},
    ),
    "sqs_broker.W004": (
        {"env": NO_LEASE, "conf": {"task_time_limit": 3600}},
        {"env": NO_LEASE, "conf": {"task_time_limit": 600}},
    ),
    # A lease extends a late-acked task's message until it is acknowledged.
    "sqs_broker.W004.lease": (
        {"env": NO_LEASE, "conf": {"task_time_limit": 3600}},
        {"conf": {"task_time_limit": 3600}},
    ),
    "sqs_broker.W004.task": (
        {
            "env": NO_LEASE,
            "conf": {"task_annotations": {"project.demo.tasks.slow": {"time_limit": 7200}}},
        },
        {
            "env": NO_LEASE,
            "conf": {"task_annotations": {"project.demo.tasks.slow": {"time_limit": 60}}},
        },
    ),
    "sqs_broker.I003": (
        {"env": {**predefined(celery={"url": url("celery")}), "SQS_VISIBILITY_TIMEOUT": "60"}},
        {"env": predefined(celery={"url": url("celery")})},
    ),
    "sqs_broker.E007": ({"conf": {"result_backend": "rpc://"}}, {"conf": {"result_backend": None}}),
    "sqs_broker.W005": (
        {"env": NO_LEASE},
        {"env": {**NO_LEASE, "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": "30"}},
    ),
    # A killed worker's messages return after the lease (30 s), not the 1800 s timeout.
    "sqs_broker.W005.lease": ({"env": NO_LEASE}, {}),
    "sqs_broker.W006": ({"conf": {"worker_send_task_events": True}}, {}),
    # Remote control through SNS fanout (SQS_REMOTE_CONTROL) is supported: no finding.
    "sqs_broker.W007": (
        {"conf": {"worker_enable_remote_control": True}},
        {"env": {"SQS_REMOTE_CONTROL": "true"}},
    ),
    "sqs_broker.W007.kombu": (
        {"env": {"SQS_REMOTE_CONTROL": "true", "SQS_TRANSPORT": "kombu"}},
        {"env": {"SQS_TRANSPORT": "kombu"}},
    ),
}


test_offline__raises_each_id, test_offline__clean_configuration_does_not = offline_case_tests(
    OFFLINE
)
