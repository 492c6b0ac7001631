"""sqs_broker.findings.names: queue names as SQS sees them, and pycurl."""

from __future__ import annotations

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from sqs_broker import findings
from tests.findings.common import (
    OfflineCases,
    app_for,
    offline_case_tests,
)
from tests.support.env import base_env, run_python

OFFLINE: OfflineCases = {
    "sqs_broker.W015": (
        {"conf": {"task_default_queue": "jobs.high"}},
        {"conf": {"task_default_queue": "jobs_high"}},
    ),
    "sqs_broker.E015": (
        {"conf": {"task_default_queue": "j" * 81}},
        {"conf": {"task_default_queue": "j" * 80}},
    ),
    "sqs_broker.I004": (
        {"conf": {"task_default_queue": "jobs.fifo"}},
        {"conf": {"task_default_queue": "jobs"}},
    ),
}


test_offline__raises_each_id, test_offline__clean_configuration_does_not = offline_case_tests(
    OFFLINE
)


def test_pycurl_missing__raised_when_it_cannot_be_imported() -> None:
    """E016 in a process where importing pycurl fails; absent here, where it works."""
    assert findings.pycurl_missing() is None
    code = (
        "import sys; sys.modules['pycurl'] = None\n"
        "from sqs_broker import findings\n"
        "f = findings.pycurl_missing(); print(f.id if f else 'none')\n"
    )
    result = run_python(
        "-c", "import django; django.setup()\n" + code, env=base_env(), settings="tests.settings"
    )
    assert result.stdout.strip().splitlines()[-1] == "sqs_broker.E016", result.stderr


def test_offline__prefix_rewrite_says_the_real_name() -> None:
    """W015 names the SQS queue a dotted prefix really produces."""
    found = findings.offline(app_for({"SQS_QUEUE_NAME_PREFIX": "app.prod."}))
    (w015,) = [f for f in found if f.id == "sqs_broker.W015" and f.queue == "app-prod-celery"]
    assert "'app.prod.celery'" in w015.message
