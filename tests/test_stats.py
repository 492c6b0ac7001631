"""Tests of sqs_broker.stats: gather() against the moto server."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from sqs_broker import cache, stats
from sqs_broker.localsqs import free_port
from sqs_broker.models import QueueSample
from tests.support.env import base_env, make_app
from tests.support.proxy import Proxy
from tests.support.queues import queue_with_dlq


def _app(unique: str, **env: str):
    return make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", **env))


@pytest.mark.django_db
def test_gather__depths_match_messages_sent(sqs, unique):
    """Visible, in flight and delayed counts equal what was sent and received."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=600)
    data = stats.gather(_app(unique), online=False)
    (row,) = [q for q in data["queues"] if q["name"] == f"{unique}-celery"]
    assert (row["visible"], row["in_flight"], row["delayed"]) == (3, 2, 1)
    assert row["error"] is None
    assert row["url"] == url
    json.dumps(data)


def _dlq_pair(sqs, unique: str, max_receive: int = 4) -> tuple[str, str]:
    return queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-dead", max_receive_count=max_receive)


@pytest.mark.django_db
def test_gather__dead_letter_queue(sqs, unique):
    """The DLQ comes from the RedrivePolicy: its name, depth and maxReceiveCount."""
    _url, dlq = _dlq_pair(sqs, unique, max_receive=4)
    for _ in range(2):
        sqs.send_message(QueueUrl=dlq, MessageBody="dead")
    # Without a prefix the DLQ is not discovered, so it is fetched as a dead-letter queue.
    app = make_app(base_env(), task_default_queue=f"{unique}-celery")
    data = stats.gather(app, online=False)
    (row,) = data["queues"]
    assert row["dlq"] == {
        "name": f"{unique}-dead",
        "visible": 2,
        "max_receive_count": 4,
        "error": None,
    }


@pytest.mark.django_db
def test_gather__backoff_of_predefined_queue(sqs, unique):
    """A predefined queue's policy shows as kombu applies it, with its tasks."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    queues = {
        "celery": {
            "url": url,
            "backoff_policy": {"1": 10, "2": 20, "3": 40},
            "backoff_tasks": ["project.demo.tasks.flaky"],
        }
    }
    app = make_app(base_env(SQS_PREDEFINED_QUEUES=json.dumps(queues)))
    (row,) = stats.gather(app, online=False)["queues"]
    assert row["name"] == "celery"
    assert row["url"] == url
    assert row["backoff_policy"] == [
        {"attempt": 2, "delay": 10, "cumulative": 10},
        {"attempt": 3, "delay": 20, "cumulative": 30},
        {"attempt": 4, "delay": 40, "cumulative": 70},
    ]
    assert row["backoff_tasks"] == ["project.demo.tasks.flaky"]


@pytest.mark.django_db
def test_gather__one_queue_failing(sqs, unique):
    """A queue that fails (here: does not exist) carries its error; the others their depths."""
    good = sqs.create_queue(QueueName=f"{unique}-good")["QueueUrl"]
    sqs.send_message(QueueUrl=good, MessageBody="x")
    gone = good.replace(f"{unique}-good", f"{unique}-gone")
    queues = {"good": {"url": good}, "gone": {"url": gone}}
    app = make_app(base_env(SQS_PREDEFINED_QUEUES=json.dumps(queues)))
    rows = {q["name"]: q for q in stats.gather(app, online=False)["queues"]}
    assert rows["good"]["visible"] == 1
    assert rows["good"]["error"] is None
    assert rows["gone"]["visible"] is None
    assert "QueueDoesNotExist" in rows["gone"]["error"]


@pytest.mark.django_db
def test_gather__findings_offline_and_online(sqs, unique, settings):
    """Offline findings come on every call; online ones are reused within their TTL."""
    settings.DEBUG = True
    settings.SQS_BROKER_ONLINE_FINDINGS_TTL = 60
    with Proxy.to(os.environ["SQS_ENDPOINT_URL"]) as proxy:
        env = base_env(
            SQS_QUEUE_NAME_PREFIX=f"{unique}-",
            SQS_ENDPOINT_URL=proxy.endpoint_url,
            SQS_CREDENTIALS_IN_URL="true",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        app = make_app(env)
        first = stats.gather(app)
        calls = proxy.reset_counts()
        second = stats.gather(app)
        again = proxy.reset_counts()
    ids = {f["id"] for f in first["findings"]}
    assert "sqs_broker.E001" in ids
    assert {f["id"] for f in second["findings"]} == ids
    # The second load asks SQS nothing: the queue listing and the attributes come
    # from their caches (SQS_BROKER_CACHE_TTL), online findings from theirs.
    # The first load lists the queues once: the online checks reuse that listing.
    assert calls["ListQueues"] == 1 and calls["GetQueueUrl"] >= 1, calls
    assert again == {}
    assert set(first["findings"][0]) == {"id", "level", "message", "hint", "queue"}


@pytest.mark.django_db
def test_gather__reload_storm_shares_one_pass(sqs, unique, settings):
    """20 concurrent gathers of 10 queues ask SQS for each queue's attributes once."""
    settings.SQS_BROKER_CACHE_TTL = 30
    for i in range(10):
        sqs.create_queue(QueueName=f"{unique}-q{i}")
    with Proxy.to(os.environ["SQS_ENDPOINT_URL"], delay=0.05) as proxy:
        app = make_app(
            base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
        )
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda _: stats.gather(app, online=False), range(20)))
        calls = proxy.reset_counts()
    assert all(len(r["queues"]) == 11 for r in results)  # 10 + the declared default queue
    assert calls["GetQueueAttributes"] <= 11
    assert calls["ListQueues"] == 1


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_gather__slow_endpoint_bounded(unique, settings):
    """An endpoint slower than SQS_BROKER_GATHER_TIMEOUT gives per-queue errors in time."""
    settings.SQS_BROKER_GATHER_TIMEOUT = 1
    with Proxy.to(os.environ["SQS_ENDPOINT_URL"], delay=4) as proxy:
        app = make_app(
            base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
        )
        started = time.monotonic()
        data = stats.gather(app, online=False)
        elapsed = time.monotonic() - started
    assert elapsed < 3
    (row,) = data["queues"]
    assert row["error"] == "SQS did not answer within 1 s; the page will retry on reload."
    assert data["errors"]


@pytest.mark.django_db
def test_gather__discovery_fails(unique, settings):
    """When listing queues fails, declared queues are still shown, with errors."""
    settings.SQS_BROKER_CONNECT_TIMEOUT = 1
    down = f"http://127.0.0.1:{free_port()}"
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=down))
    data = stats.gather(app, online=False)
    assert [q["name"] for q in data["queues"]] == [f"{unique}-celery"]
    assert data["queues"][0]["error"]
    assert any(e.startswith("Listing queues failed") for e in data["errors"])


@pytest.mark.django_db
def test_gather__online_findings_in_callers_language(sqs, unique):
    """Online findings are worded in the request's language, though found in a pool thread."""
    from django.utils import translation

    sqs.create_queue(QueueName=f"{unique}-celery")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with translation.override("zh-hans"):
        chinese = stats.gather(app)
    english = stats.gather(app)
    (zh,) = [f for f in chinese["findings"] if f["id"] == "sqs_broker.I005"]
    (en,) = [f for f in english["findings"] if f["id"] == "sqs_broker.I005"]
    assert en["message"].startswith("The credentials resolve to")
    assert zh["message"].startswith("凭据对应的身份是")


@pytest.mark.django_db
def test_gather__config_sources_without_secrets(sqs, unique):
    """Per-queue keys and an STS role show by name; no key, secret or token appears."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    secret = f"QueueSecret/{unique}+x="
    queues = {
        "celery": {"url": url, "access_key_id": f"AKIAQ{unique}", "secret_access_key": secret}
    }
    env = base_env(
        SQS_PREDEFINED_QUEUES=json.dumps(queues),
        SQS_STS_ROLE_ARN="arn:aws:iam::123456789012:role/celery-sqs",
        AWS_SESSION_TOKEN=f"SessionToken{unique}",
    )
    app = make_app(env)
    config = stats.displayable_config(app, env)
    assert config["credentials"] == {
        "source": "environment",
        "chain_hint": None,
        "session_token": True,
        "sts_role_arn": "arn:aws:iam::123456789012:role/celery-sqs",
        "per_queue_keys": ["celery"],
    }
    text = json.dumps(config)
    for value in (secret, f"AKIAQ{unique}", f"SessionToken{unique}", "testing"):
        assert value not in text


def test_displayable_config__chain(unique):
    """Without keys in the URL or environment, the source is boto3's chain, with a hint."""
    env = {k: v for k, v in base_env().items() if not k.startswith("AWS_")}
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = "/var/run/secrets/token"
    config = stats.displayable_config(make_app(env), env)
    assert config["credentials"]["source"] == "chain"
    assert config["credentials"]["chain_hint"] == "web identity (IRSA / OIDC role)"
    assert "/var/run/secrets/token" not in json.dumps(config)


def test_gather__telemetry_unreadable_is_an_error_entry(sqs, unique):
    """No database to read telemetry from: the queues still show, errors say why, translated."""
    from django.utils import translation

    sqs.create_queue(QueueName=f"{unique}-celery")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    # Not marked django_db: every query raises, as with tables never migrated.
    with translation.override("zh-hans"):
        data = stats.gather(app, online=False)
    assert [q["name"] for q in data["queues"]] == [f"{unique}-celery"]
    assert (data["workers"], data["tasks"]) == ([], [])
    assert any(e.startswith("无法读取遥测数据：") for e in data["errors"]), data["errors"]


@pytest.mark.django_db
def test_gather__online_findings_reuse_the_dead_letter_queues_read(sqs, unique, settings):
    """A dead-letter queue outside the prefix is resolved once per load, not again by E022."""
    settings.SQS_BROKER_ONLINE_FINDINGS_TTL = 0
    dlq = sqs.create_queue(QueueName=f"d{unique}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})
    sqs.create_queue(QueueName=f"{unique}-celery", Attributes={"RedrivePolicy": policy})
    with Proxy.to(os.environ["SQS_ENDPOINT_URL"]) as proxy:
        env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
        data = stats.gather(make_app(env))
        calls = proxy.reset_counts()
    assert data["queues"][0]["dlq"]["name"] == f"d{unique}"
    assert "sqs_broker.E022" not in {f["id"] for f in data["findings"]}
    # One GetQueueUrl: the pass resolving the dead-letter queue; the listing gave the rest.
    assert calls["GetQueueUrl"] == 1, calls


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_gather__silenced_findings_are_left_out(unique, settings):
    """The dashboard honours SILENCED_SYSTEM_CHECKS, as Django's check does."""
    app = _app(unique, SQS_POLLING_INTERVAL="0", SQS_VISIBILITY_LEASE="0")  # W005 remains
    assert "sqs_broker.W005" in {f["id"] for f in stats.gather(app, online=False)["findings"]}
    cache.reset()
    settings.SILENCED_SYSTEM_CHECKS = ["sqs_broker.W005"]
    assert "sqs_broker.W005" not in {f["id"] for f in stats.gather(app, online=False)["findings"]}


# --- oldest-message age and backlog per worker ---------------------------------------


@pytest.mark.django_db
def test_fill_ages__sources():
    """CloudWatch wins, an empty queue is 0 by its attributes, a busy one falls back to history."""
    from sqs_broker import sqs as sqs_module

    now = datetime.now(UTC)
    QueueSample.objects.create(
        queue="busy", sampled_at=now - timedelta(seconds=90), visible=0, in_flight=0, delayed=0
    )
    rows = [
        {"name": "watched", "visible": 1, "in_flight": 0, "error": None},
        {"name": "empty", "visible": 0, "in_flight": 0, "error": None},
        {"name": "busy", "visible": 2, "in_flight": 0, "error": None},
        {"name": "failed", "visible": None, "in_flight": None, "error": "Timeout"},
    ]
    stats.fill_ages(rows, sqs_module.Ages(seconds={"watched": 42.0}), now)
    got = {r["name"]: (r.get("oldest_age"), r.get("oldest_age_source")) for r in rows}
    assert got["watched"] == (42.0, "cloudwatch")
    assert got["empty"] == (0.0, "attributes")
    assert got["busy"] == (90.0, "history")
    assert got["failed"] == (None, None)


def test_fill_consumers__divides_by_live_workers():
    """Backlog per worker counts live consumers only, and divides by 1 when there are none."""
    rows = [
        {"name": "a", "visible": 10},
        {"name": "b", "visible": 4},
        {"name": "c", "visible": None},
    ]
    workers = [
        {"alive": True, "queues": ["a", "b"]},
        {"alive": True, "queues": ["a"]},
        {"alive": False, "queues": ["b"]},
    ]
    stats.fill_consumers(rows, workers)
    got = {r["name"]: (r["consumers"], r.get("backlog_per_worker")) for r in rows}
    assert got == {"a": (2, 5.0), "b": (1, 4.0), "c": (0, None)}


def test_fill_consumers__no_backlog_for_held_queues():
    """A dead-letter or quarantine queue counts its consumers but is no backlog."""
    rows = [
        {"name": "a", "visible": 6, "dlq": {"name": "a-dead"}},
        {"name": "a-dead", "visible": 3},
        {"name": "a-quarantine", "visible": 2},
    ]
    stats.fill_consumers(rows, [])
    got = {r["name"]: (r["consumers"], r.get("backlog_per_worker")) for r in rows}
    assert got == {"a": (0, 6.0), "a-dead": (0, None), "a-quarantine": (0, None)}


@pytest.mark.django_db
def test_gather__cloudwatch_ages_in_rows(sqs, sqs_endpoint, unique, settings):
    """With CloudWatch asked, gather() reads one GetMetricData per pass and says the source."""
    from tests.test_sqs import _put_age

    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    _put_age(sqs_endpoint, f"{unique}-celery", 77.0)
    settings.SQS_BROKER_CLOUDWATCH = True
    with Proxy.to(sqs_endpoint) as proxy:
        app = make_app(
            base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
        )
        data = stats.gather(app, online=False)
        counts = proxy.reset_counts()
    (row,) = data["queues"]
    assert (row["oldest_age"], row["oldest_age_source"]) == (77.0, "cloudwatch")
    assert data["cloudwatch_error"] is None
    assert counts["GetMetricData"] == 1


@pytest.mark.django_db
def test_gather__cloudwatch_denied_falls_back_and_says_so(sqs, sqs_endpoint, unique, settings):
    """A denied GetMetricData leaves the estimate in the rows and the reason in cloudwatch_error."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    settings.SQS_BROKER_CLOUDWATCH = True
    with Proxy.to(sqs_endpoint) as proxy:
        proxy.deny_matching = b"GetMetricData"
        app = make_app(
            base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
        )
        data = stats.gather(app, online=False)
    (row,) = data["queues"]
    assert (row["oldest_age"], row["oldest_age_source"]) == (0.0, "attributes")
    assert data["cloudwatch_error"]
