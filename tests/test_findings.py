"""sqs_broker.findings: each pitfall raised by one configuration and absent from another.

Offline findings get per-test Celery apps; online ones run against the moto
server with real queues created for the test (or against a dedicated moto
server with IAM enforcement on, for rejected credentials and access denied).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.test import override_settings
from kombu.utils.url import safequote

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from sqs_broker import findings
from sqs_broker import sqs as sqs_api
from sqs_broker.localsqs import LocalSQS, free_port
from tests.conftest import ROOT, base_env, make_app, run_python
from tests.proxy import Proxy

ACCOUNT = "123456789012"
SECRET = "wJalr/XUtnFEMI+K7MDENG=bPx"


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """Clients and attribute caches are per configuration; start each test clean."""
    sqs_api.clear_caches()
    yield
    sqs_api.clear_caches()


def app_for(
    env: dict[str, str] | None = None, options: dict[str, Any] | None = None, **conf: Any
) -> Any:
    """A Celery app as sqs_broker.settings builds it, then ``options`` merged in."""
    app = make_app(base_env(**(env or {})), **conf)
    if options is not None:
        merged = dict(app.conf.broker_transport_options)
        merged.update(options)
        app.conf.broker_transport_options = merged
    return app


def ids(found: list[findings.Finding]) -> set[str]:
    return {f.id for f in found}


def url(name: str) -> str:
    return f"{base_env()['SQS_ENDPOINT_URL']}/{ACCOUNT}/{name}"


def predefined(**queues: dict[str, Any]) -> dict[str, str]:
    return {"SQS_PREDEFINED_QUEUES": json.dumps(queues)}


AWS = "https://sqs.eu-west-1.amazonaws.com"

#: id (and a case name) -> (configuration that raises it, configuration that does not).
OFFLINE: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "sqs_broker.E001": (
        {
            "env": {
                "SQS_CREDENTIALS_IN_URL": "true",
                "AWS_ACCESS_KEY_ID": "AKIAFINDINGS",
                "AWS_SECRET_ACCESS_KEY": SECRET,
            },
            "settings": {"DEBUG": True},
        },
        {
            "env": {"AWS_ACCESS_KEY_ID": "AKIAFINDINGS", "AWS_SECRET_ACCESS_KEY": SECRET},
            "settings": {"DEBUG": True},
        },
    ),
    "sqs_broker.E002": (
        {"conf": {"broker_url": f"sqs://AKIAFINDINGS:{SECRET}@"}},
        {"conf": {"broker_url": f"sqs://AKIAFINDINGS:{safequote(SECRET)}@"}},
    ),
    "sqs_broker.E002.twice": (
        {"conf": {"broker_url": f"sqs://AKIAFINDINGS:{safequote(safequote(SECRET))}@"}},
        {"conf": {"broker_url": f"sqs://AKIAFINDINGS:{safequote(SECRET)}@"}},
    ),
    "sqs_broker.E002.nosecret": (
        {"conf": {"broker_url": "sqs://AKIAFINDINGS@"}},
        {"conf": {"broker_url": "sqs://"}},
    ),
    "sqs_broker.W001": ({"conf": {"broker_url": "redis://127.0.0.1:6379/0"}}, {}),
    "sqs_broker.E003": (
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "access_key_id": "AKIAQ",
                    "secret_access_key": safequote(SECRET),
                }
            )
        },
        {
            "env": predefined(
                celery={"url": url("celery"), "access_key_id": "AKIAQ", "secret_access_key": SECRET}
            )
        },
    ),
    "sqs_broker.E004": ({"options": {"wait_time_seconds": 25}}, {}),
    "sqs_broker.I001": ({}, {"env": {"SQS_POLLING_INTERVAL": "0"}}),
    "sqs_broker.W002": ({"env": {"SQS_POLLING_INTERVAL": "30"}}, {}),
    "sqs_broker.W003": (
        {"env": {"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "0.1"}},
        {"env": {"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "5"}},
    ),
    "sqs_broker.I002": ({"env": {"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "5"}}, {}),
    "sqs_broker.E005": ({"options": {"visibility_timeout": 50000}}, {}),
    "sqs_broker.E006": (
        {"settings": {"SQS_BROKER_MAX_ETA": 3600}},
        {"settings": {"SQS_BROKER_MAX_ETA": 600}},
    ),
    "sqs_broker.W004": ({"conf": {"task_time_limit": 3600}}, {"conf": {"task_time_limit": 600}}),
    "sqs_broker.W004.task": (
        {"conf": {"task_annotations": {"project.demo.tasks.slow": {"time_limit": 7200}}}},
        {"conf": {"task_annotations": {"project.demo.tasks.slow": {"time_limit": 60}}}},
    ),
    "sqs_broker.I003": (
        {"env": {**predefined(celery={"url": url("celery")}), "SQS_VISIBILITY_TIMEOUT": "60"}},
        {"env": predefined(celery={"url": url("celery")})},
    ),
    "sqs_broker.E007": ({"conf": {"result_backend": "rpc://"}}, {"conf": {"result_backend": None}}),
    "sqs_broker.W005": ({}, {"env": {"CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": "30"}}),
    "sqs_broker.W006": ({"conf": {"worker_send_task_events": True}}, {}),
    "sqs_broker.W007": ({"conf": {"worker_enable_remote_control": True}}, {}),
    "sqs_broker.E008": (
        {"env": predefined(other={"url": url("other")})},
        {"env": predefined(celery={"url": url("celery")})},
    ),
    "sqs_broker.W008": (
        {"env": predefined(celery={"url": url("celery")}, stray={"url": url("stray")})},
        {"env": predefined(celery={"url": url("celery")})},
    ),
    "sqs_broker.E009": (
        {
            "env": {
                "SQS_QUEUE_NAME_PREFIX": "prod-",
                **predefined(
                    **{"prod-celery": {"url": url("prod-celery"), "backoff_policy": {"1": 10}}}
                ),
            }
        },
        {"env": predefined(celery={"url": url("celery"), "backoff_policy": {"1": 10}})},
    ),
    "sqs_broker.E010": (
        {"options": {"predefined_queues": {"celery": {"url": url("celery.fifo")}}}},
        {"options": {"predefined_queues": {"celery": {"url": url("celery")}}}},
    ),
    "sqs_broker.E011": (
        {"env": predefined(celery={"url": f"{AWS}/{ACCOUNT}/celery"})},
        {
            "env": {
                "SQS_REGION": "eu-west-1",
                **predefined(celery={"url": f"{AWS}/{ACCOUNT}/celery"}),
            }
        },
    ),
    "sqs_broker.E012": (
        {"env": {"SQS_REGION": "eu-west-1", **predefined(celery={"url": f"{AWS}/123456/celery"})}},
        {
            "env": {
                "SQS_REGION": "eu-west-1",
                **predefined(celery={"url": f"{AWS}/{ACCOUNT}/celery"}),
            }
        },
    ),
    "sqs_broker.W009": (
        {"env": predefined(celery={"url": url("celery"), "backoff_policy": {"1": 10, "3": 30}})},
        {"env": predefined(celery={"url": url("celery"), "backoff_policy": {"1": 10, "2": 30}})},
    ),
    "sqs_broker.E013": (
        {
            "options": {
                "predefined_queues": {
                    "celery": {"url": url("celery"), "backoff_policy": {1: 50000}}
                }
            }
        },
        {
            "options": {
                "predefined_queues": {"celery": {"url": url("celery"), "backoff_policy": {1: 600}}}
            }
        },
    ),
    "sqs_broker.E023": (
        {
            "options": {
                "predefined_queues": {"celery": {"url": url("celery"), "backoff_policy": {"1": 10}}}
            }
        },
        {"env": predefined(celery={"url": url("celery"), "backoff_policy": {"1": 10}})},
    ),
    "sqs_broker.W010": (
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "backoff_policy": {"1": 10},
                    "backoff_tasks": ["no.such.task"],
                }
            )
        },
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "backoff_policy": {"1": 10},
                    "backoff_tasks": ["project.demo.tasks.flaky"],
                }
            )
        },
    ),
    "sqs_broker.W011": (
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "backoff_policy": {"1": 10},
                    "backoff_tasks": ["project.demo.tasks.add"],
                }
            )
        },
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "backoff_policy": {"1": 10},
                    "backoff_tasks": ["project.demo.tasks.add"],
                }
            ),
            "conf": {"task_acks_late": True, "task_acks_on_failure_or_timeout": False},
        },
    ),
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


def base_id(case: str) -> str:
    """``sqs_broker.E002.twice`` -> ``sqs_broker.E002``: several cases may share an id."""
    return ".".join(case.split(".")[:2])


def offline_ids(case: dict[str, Any]) -> set[str]:
    app = app_for(case.get("env"), case.get("options"), **case.get("conf", {}))
    with override_settings(**case.get("settings", {})):
        return ids(findings.offline(app))


@pytest.mark.parametrize("finding_id", sorted(OFFLINE))
def test_offline__raises_each_id(finding_id: str) -> None:
    """The first configuration of each offline case raises its id."""
    assert base_id(finding_id) in offline_ids(OFFLINE[finding_id][0])


@pytest.mark.parametrize("finding_id", sorted(OFFLINE))
def test_offline__clean_configuration_does_not(finding_id: str) -> None:
    """The second configuration of each offline case does not."""
    assert base_id(finding_id) not in offline_ids(OFFLINE[finding_id][1])


def test_offline__default_configuration_has_no_error() -> None:
    """sqs_broker's defaults give no error, only the soft-shutdown warning and information."""
    found = findings.offline(app_for())
    assert {f.level for f in found if f.id != "sqs_broker.W005"} <= {"info"}, found


def test_offline__backoff_key_mismatch_names_the_real_queue() -> None:
    """E009 says under which name kombu finds the queue, for a dotted name too."""
    app = app_for(
        options={
            "predefined_queues": {
                "jobs.retry": {"url": url("jobs-retry"), "backoff_policy": {1: 5}}
            }
        },
        task_default_queue="jobs.retry",
    )
    (e009,) = [f for f in findings.offline(app) if f.id == "sqs_broker.E009"]
    assert e009.queue == "jobs.retry" and "'jobs-retry'" in e009.message


def test_offline__polling_numbers() -> None:
    """I001 and W003 carry the cycle and the monthly request count and cost."""
    kombu_stock = app_for({"SQS_WAIT_TIME_SECONDS": "10", "SQS_POLLING_INTERVAL": "1"})
    (i001,) = [f for f in findings.offline(kombu_stock) if f.id == "sqs_broker.I001"]
    assert "10 + 1 = 11 s" in i001.message and "235,636 requests" in i001.message
    busy = app_for({"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "0"})
    (w003,) = [f for f in findings.offline(busy) if f.id == "sqs_broker.W003"]
    # 2,592,000 s a month / 0.05 s a round trip = 51,840,000 requests at $0.40 a million.
    assert "51,840,000 requests" in w003.message and "20.74 USD" in w003.message


def test_offline__prefix_rewrite_says_the_real_name() -> None:
    """W015 names the SQS queue a dotted prefix really produces."""
    found = findings.offline(app_for({"SQS_QUEUE_NAME_PREFIX": "app.prod."}))
    (w015,) = [f for f in found if f.id == "sqs_broker.W015" and f.queue == "app-prod-celery"]
    assert "'app.prod.celery'" in w015.message


def test_offline__messages_never_carry_the_secret() -> None:
    """Findings about URL and predefined credentials describe them without their value."""
    cases = [OFFLINE["sqs_broker.E002"][0], OFFLINE["sqs_broker.E003"][0]]
    for case in cases:
        app = app_for(case.get("env"), case.get("options"), **case.get("conf", {}))
        text = json.dumps([f.as_dict() for f in findings.offline(app)])
        assert SECRET not in text and safequote(SECRET) not in text


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


# --- the id table ---------------------------------------------------------------------


def test_catalogue__every_id_in_code_is_catalogued_and_documented() -> None:
    """Ids in findings.py, CATALOGUE and docs/findings.md are the same set, with levels."""
    source = "".join(p.read_text() for p in sorted((ROOT / "sqs_broker" / "findings").glob("*.py")))
    in_code = set(re.findall(r'"(sqs_broker\.[EWI]\d{3})"', source))
    table = dict(re.findall(r"^\| `(sqs_broker\.[EWI]\d{3})` \| (\w+) \|", _docs(), flags=re.M))
    assert in_code == set(findings.CATALOGUE)
    assert set(table) == set(findings.CATALOGUE)
    for finding_id, level in table.items():
        assert findings.make(finding_id, "m", "h").level == level, finding_id


def _docs() -> str:
    return (Path(ROOT) / "docs" / "findings.md").read_text()


# --- online: the shared moto server ----------------------------------------------------


def online_ids(app: Any, **kwargs: Any) -> set[str]:
    return ids(findings.online(app, **kwargs))


def test_online__identity_and_missing_declared_queue(unique: str) -> None:
    """I005 names the identity; I006 for a declared queue that does not exist yet."""
    app = app_for({"SQS_QUEUE_NAME_PREFIX": f"{unique}-"})
    found = findings.online(app)
    assert "sqs_broker.I005" in ids(found)
    (i006,) = [f for f in found if f.id == "sqs_broker.I006"]
    assert i006.queue == f"{unique}-celery"


def test_online__existing_queue_with_matching_attributes_is_clean(sqs: Any, unique: str) -> None:
    """A queue created as kombu would create it gives no queue finding."""
    sqs.create_queue(
        QueueName=f"{unique}-celery",
        Attributes={"VisibilityTimeout": "1800", "ReceiveMessageWaitTimeSeconds": "10"},
    )
    found = findings.online(app_for({"SQS_QUEUE_NAME_PREFIX": f"{unique}-"}))
    assert [f for f in found if f.queue] == []
    assert "sqs_broker.I006" not in ids(found)


def test_online__states_given_are_reused(sqs: Any, sqs_endpoint: str, unique: str) -> None:
    """With states from the dashboard, no queue is fetched or listed again."""
    prefix = f"{unique}-"
    make_redrive(sqs, f"{prefix}work", f"{prefix}dlq", 5)
    with Proxy.to(sqs_endpoint) as proxy:
        app = app_for({"SQS_QUEUE_NAME_PREFIX": prefix, "SQS_ENDPOINT_URL": proxy.endpoint_url})
        assert "sqs_broker.I006" not in online_ids(app, states=[])
        states = sqs_api.fetch(sqs_api.inventory(app), app)
        assert proxy.reset_counts()["ListQueues"] == 1
        assert "sqs_broker.I006" in online_ids(app, states=states)
        calls = proxy.reset_counts()
    # The listing is the inventory's, and the dead-letter queue was among the states.
    assert calls["ListQueues"] == 0, calls
    assert calls["GetQueueAttributes"] == calls["GetQueueUrl"] == 0, calls


def test_online__predefined_queue_missing(sqs: Any, unique: str) -> None:
    """E021 for a predefined queue that does not exist; none once it does."""
    app = app_for(predefined(celery={"url": url(unique)}))
    assert "sqs_broker.E021" in online_ids(app)
    sqs.create_queue(QueueName=unique)
    sqs_clear()
    assert "sqs_broker.E021" not in online_ids(app)


def sqs_clear() -> None:
    sqs_api.clear_caches()


def test_online__visibility_timeout_differs(sqs: Any, unique: str) -> None:
    """W016 when the queue's VisibilityTimeout is not the configured one."""
    prefix = f"{unique}-"
    sqs.create_queue(QueueName=f"{prefix}celery", Attributes={"VisibilityTimeout": "60"})
    assert "sqs_broker.W016" in online_ids(app_for({"SQS_QUEUE_NAME_PREFIX": prefix}))
    env = {"SQS_QUEUE_NAME_PREFIX": prefix, "SQS_VISIBILITY_TIMEOUT": "60"}
    assert "sqs_broker.W016" not in online_ids(app_for(env))


def test_online__predefined_queue_timeout_shorter_than_eta(sqs: Any, unique: str) -> None:
    """E006 on a predefined queue whose own VisibilityTimeout is shorter than the longest ETA."""
    sqs.create_queue(QueueName=unique, Attributes={"VisibilityTimeout": "60"})
    app = app_for(predefined(celery={"url": url(unique)}))
    with override_settings(SQS_BROKER_MAX_ETA=1000):
        found = findings.online(app)
    # SQS delays the first 900 s itself; the worker holds the other 100 s.
    assert [f.queue for f in found if f.id == "sqs_broker.E006"] == ["celery"]
    with override_settings(SQS_BROKER_MAX_ETA=900):
        assert "sqs_broker.E006" not in online_ids(app)
    with override_settings(SQS_BROKER_MAX_ETA=600, SQS_BROKER_NATIVE_DELAY=False):
        assert "sqs_broker.E006" in online_ids(app)


def test_online__receive_wait_time_zero(sqs: Any, unique: str) -> None:
    """I007 for a queue with ReceiveMessageWaitTimeSeconds 0 while long polling is configured."""
    prefix = f"{unique}-"
    sqs.create_queue(QueueName=f"{prefix}celery", Attributes={"ReceiveMessageWaitTimeSeconds": "0"})
    found = findings.online(
        app_for({"SQS_QUEUE_NAME_PREFIX": prefix, "SQS_WAIT_TIME_SECONDS": "10"})
    )
    (i007,) = [f for f in found if f.id == "sqs_broker.I007"]
    assert "ReceiveMessageWaitTimeSeconds=10" in i007.hint
    short = {"SQS_QUEUE_NAME_PREFIX": prefix, "SQS_WAIT_TIME_SECONDS": "0"}
    assert "sqs_broker.I007" not in online_ids(app_for(short))


def test_online__fifo_content_based_deduplication(sqs: Any, unique: str) -> None:
    """I008 for a FIFO queue with ContentBasedDeduplication; none without it."""
    for flag, name in (("true", f"{unique}a.fifo"), ("false", f"{unique}b.fifo")):
        sqs.create_queue(
            QueueName=name,
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": flag},
        )
    assert "sqs_broker.I008" in online_ids(app_for(task_default_queue=f"{unique}a.fifo"))
    assert "sqs_broker.I008" not in online_ids(app_for(task_default_queue=f"{unique}b.fifo"))


def make_redrive(sqs: Any, source: str, dlq: str, max_receive: int) -> None:
    dlq_url = sqs.create_queue(QueueName=dlq)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]
    policy = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": str(max_receive)}
    sqs.create_queue(QueueName=source, Attributes={"RedrivePolicy": json.dumps(policy)})


def test_online__dead_letter_queue_missing(sqs: Any, unique: str) -> None:
    """E022 once the RedrivePolicy's dead-letter queue is deleted; none while it exists."""
    prefix = f"{unique}-"
    make_redrive(sqs, f"{prefix}celery", f"{unique}-dlq", 5)
    app = app_for({"SQS_QUEUE_NAME_PREFIX": prefix})
    assert "sqs_broker.E022" not in online_ids(app)
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=f"{unique}-dlq")["QueueUrl"])
    sqs_clear()
    found = findings.online(app)
    (e022,) = [f for f in found if f.id == "sqs_broker.E022"]
    assert e022.queue == f"{prefix}celery" and f"'{unique}-dlq'" in e022.message


def test_online__backoff_beyond_max_receive_count(sqs: Any, unique: str) -> None:
    """W012 when the policy plans more attempts than maxReceiveCount allows."""
    policy = {"1": 10, "2": 20, "3": 40, "4": 80}
    make_redrive(sqs, unique, f"{unique}-dlq", 3)
    make_redrive(sqs, f"{unique}-ok", f"{unique}-okdlq", 5)
    short = app_for(predefined(celery={"url": url(unique), "backoff_policy": policy}))
    found = findings.online(short)
    (w012,) = [f for f in found if f.id == "sqs_broker.W012"]
    assert "up to 5" in w012.message and "after 3 receives" in w012.message
    long = app_for(predefined(celery={"url": url(f"{unique}-ok"), "backoff_policy": policy}))
    assert "sqs_broker.W012" not in online_ids(long)


def test_online__leftover_pidbox_and_event_queues(sqs: Any, unique: str) -> None:
    """W017 for queues remote control and events left under the prefix."""
    prefix = f"{unique}-"
    app = app_for({"SQS_QUEUE_NAME_PREFIX": prefix})
    assert "sqs_broker.W017" not in online_ids(app)
    sqs.create_queue(QueueName=f"{prefix}celeryev-0f1e2d")
    sqs.create_queue(QueueName=f"{prefix}w1_host-celery-pidbox")
    (w017,) = [f for f in findings.online(app) if f.id == "sqs_broker.W017"]
    assert w017.message.startswith("2 ")


# --- online: failures ---------------------------------------------------------------


def closed_port_app() -> Any:
    return app_for({"SQS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})


def test_online__unreachable_endpoint_answers_in_bounded_time() -> None:
    """A closed port: E017 alone, could_not_check says so, well within 30 s."""
    started = time.monotonic()
    found = findings.online(closed_port_app())
    assert time.monotonic() - started < 30
    assert ids(found) == {"sqs_broker.E017"}
    assert findings.could_not_check(found) == found


def test_online__cut_proxy_answers_in_bounded_time(sqs_endpoint: str) -> None:
    """An endpoint whose connections are dropped: E017 within 30 s; restored, it passes."""
    with Proxy.to(sqs_endpoint) as proxy:
        app = app_for({"SQS_ENDPOINT_URL": proxy.endpoint_url})
        proxy.cut()
        started = time.monotonic()
        assert "sqs_broker.E017" in online_ids(app)
        assert time.monotonic() - started < 30
        proxy.restore()
        sqs_api.clear_caches()
        assert "sqs_broker.E017" not in online_ids(app)


class _NotSqs(BaseHTTPRequestHandler):
    """An HTTP server that is no AWS endpoint: every request gets 404."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_online__endpoint_without_sts_and_unreadable_queue() -> None:
    """I009 when the endpoint does not serve STS; W018 when a queue cannot be read."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotSqs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = app_for({"SQS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}"})
        found = findings.online(app)
    finally:
        server.shutdown()
    # Nothing answered as SQS: the queue failures are listed, and E017 says nothing was checked.
    assert {"sqs_broker.I009", "sqs_broker.W018", "sqs_broker.E017"} <= ids(found)
    assert findings.could_not_check(found)
    assert not {"sqs_broker.I009", "sqs_broker.W018"} & online_ids(app_for())


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


# --- online: a moto server with IAM enforcement ------------------------------------


@pytest.fixture(scope="module")
def iam_server() -> Iterator[dict[str, Any]]:
    """A moto server of its own, with users created, then IAM enforcement switched on."""
    with LocalSQS() as server:
        endpoint = server.endpoint_url
        admin = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        iam = boto3.client("iam", **admin)
        boto3.client("sqs", **admin).create_queue(QueueName="celery")
        keys = {}
        for user, actions in {
            "worker": ["sqs:*", "sts:GetCallerIdentity"],
            "nosqs": ["sts:GetCallerIdentity"],
        }.items():
            iam.create_user(UserName=user)
            document = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(document))
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310
        yield {"endpoint": endpoint, "keys": keys}


def iam_app(server: dict[str, Any], user: str | None, **env: str) -> Any:
    if user is None:
        key_id, secret = "AKIANOSUCHUSER000000", SECRET
    else:
        key_id = server["keys"][user]["AccessKeyId"]
        secret = server["keys"][user]["SecretAccessKey"]
    return app_for(
        {
            "SQS_ENDPOINT_URL": server["endpoint"],
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "SQS_CREDENTIALS_IN_URL": "true",
            **env,
        }
    )


def test_online__rejected_credentials(iam_server: dict[str, Any]) -> None:
    """Unknown keys: E018 alone (could not check); a real user's keys pass."""
    found = findings.online(iam_app(iam_server, None))
    assert ids(found) == {"sqs_broker.E018"}
    assert "InvalidClientTokenId" in found[0].message
    assert SECRET not in json.dumps([f.as_dict() for f in found])
    assert "sqs_broker.E018" not in online_ids(iam_app(iam_server, "worker"))


def test_online__access_denied_names_the_action(iam_server: dict[str, Any]) -> None:
    """E019 names sqs:GetQueueUrl for a user without SQS rights, sts:AssumeRole for the role."""
    found = findings.online(iam_app(iam_server, "nosqs"))
    (e019,) = [f for f in found if f.id == "sqs_broker.E019" and f.queue == "celery"]
    assert "sqs:GetQueueUrl" in e019.message and "AccessDenied" in e019.message
    assert "<" not in e019.message
    role = f"arn:aws:iam::{ACCOUNT}:role/celery"
    env = {
        "SQS_STS_ROLE_ARN": role,
        **predefined(celery={"url": f"{iam_server['endpoint']}/{ACCOUNT}/celery"}),
    }
    denied = [
        f
        for f in findings.online(iam_app(iam_server, "worker", **env))
        if f.id == "sqs_broker.E019"
    ]
    assert denied and f"sts:AssumeRole on {role}" in denied[0].message
    # The predefined queue, read through the role, is denied the same action.
    assert [f.queue for f in denied if "sts:AssumeRole" in f.message] == [None, "celery"]
    assert "sqs_broker.E019" not in online_ids(iam_app(iam_server, "worker"))


def test_online__closed_port_is_refused_quickly() -> None:
    """Connection refused is not retried into minutes: a few seconds at most."""
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    started = time.monotonic()
    findings.online(app_for({"SQS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}))
    assert time.monotonic() - started < 10


def test_online__discovered_queues_get_only_dead_letter_checks(sqs: Any, unique: str) -> None:
    """A queue found under the prefix (not declared) is not held to the configured timeout."""
    prefix = f"{unique}-"
    sqs.create_queue(QueueName=f"{prefix}elsewhere", Attributes={"VisibilityTimeout": "60"})
    app = app_for({"SQS_QUEUE_NAME_PREFIX": prefix})
    states = sqs_api.fetch(sqs_api.inventory(app, discover=True), app)
    assert f"{prefix}elsewhere" in {s.ref.name for s in states}
    assert not [f for f in findings.online(app, states=states) if f.queue == f"{prefix}elsewhere"]


def test_translation__messages_in_simplified_chinese() -> None:
    """Under zh-hans a finding's message and hint come translated, numbers filled in."""
    from django.utils import translation

    app = app_for({"SQS_WAIT_TIME_SECONDS": "0", "SQS_POLLING_INTERVAL": "0.2"})
    with translation.override("zh-hans"):
        (w003,) = [f for f in findings.offline(app) if f.id == "sqs_broker.W003"]
    assert "忙循环" in w003.message and "10,368,000" in w003.message
    assert "长轮询" in w003.hint


@override_settings(SQS_BROKER_READ_TIMEOUT=1)
def test_online__slow_endpoint_is_bounded_by_the_read_timeout(sqs_endpoint: str) -> None:
    """An endpoint slower than the read timeout: E017 after two attempts, not minutes."""
    with Proxy.to(sqs_endpoint, delay=20) as proxy:
        app = app_for({"SQS_ENDPOINT_URL": proxy.endpoint_url})
        started = time.monotonic()
        found = findings.online(app)
        elapsed = time.monotonic() - started
        proxy.cut()
    assert ids(found) == {"sqs_broker.E017"} and "ReadTimeout" in found[0].message
    assert elapsed < 5


# --- E009 with a real worker ----------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_backoff_key_mismatch__a_real_worker_never_applies_the_policy(
    start_worker: Any, sqs: Any, unique: str, tmp_path: Path
) -> None:
    """With a prefix, the failing task runs once and its message is gone: no backoff, as E009 says.

    The same policy on an unprefixed queue redelivers after 1 s
    (tests/test_backoff.py); here the probe must not run a second time.
    """
    probe = "project.demo.tasks.backoff_probe"
    name = f"{unique}-celery"
    url_ = sqs.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": "30", "ReceiveMessageWaitTimeSeconds": "1"},
    )["QueueUrl"]
    queues = {name: {"url": url_, "backoff_policy": {"1": 1, "2": 1}, "backoff_tasks": [probe]}}
    env = base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_PREDEFINED_QUEUES=json.dumps(queues),
        SQS_WAIT_TIME_SECONDS="1",
        SQS_POLLING_INTERVAL="0",
    )
    app = make_app(env)
    (e009,) = [f for f in findings.offline(app) if f.id == "sqs_broker.E009"]
    assert e009.queue == name

    start_worker(env, queues="celery")
    journal = tmp_path / "deliveries.txt"
    app.send_task(probe, args=(str(journal),), queue="celery")
    deadline = time.monotonic() + 30
    while not journal.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(4)  # the policy would have redelivered after 1 s, and again 1 s later
    assert len(journal.read_text().splitlines()) == 1
    attributes = sqs.get_queue_attributes(QueueUrl=url_, AttributeNames=["All"])["Attributes"]
    # kombu deleted the rejected message: not a backoff task under the routing key "celery".
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
