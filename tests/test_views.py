"""Tests of sqs_broker.views: stats.json and metrics, their access rules and their data."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from tests.support.env import base_env, make_app
from tests.support.users import user_with

STATS = "/sqs/stats.json"
METRICS = "/sqs/metrics"
TOKEN = "t0ken-for-tests-" + "x" * 20


@pytest.fixture
def app(unique):
    """A Celery app with this test's own prefix, served by the views."""
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery, SQS_BROKER_API_TOKEN=TOKEN):
        yield celery


@pytest.mark.django_db
@pytest.mark.parametrize("url", [STATS, METRICS])
def test_views__anonymous_gets_401(client, app, url):
    """Without a session or token both endpoints answer 401 with a Bearer challenge."""
    response = client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
@pytest.mark.parametrize("url", [STATS, METRICS])
def test_views__staff_without_permission_gets_403(client, app, url):
    """Staff without view_dashboard is refused with 403 naming the permission."""
    client.force_login(user_with())
    response = client.get(url)
    assert response.status_code == 403
    assert "sqs_broker.view_dashboard" in response.json()["error"]


@pytest.mark.django_db
def test_views__non_staff_with_permission_gets_401(client, app):
    """The permission alone is not enough: the user must be staff."""
    client.force_login(user_with("view_dashboard", staff=False))
    assert client.get(STATS).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("perms", [("view_dashboard",), ("view_dashboard", "purge_queue")])
def test_stats__depths_match_messages_sent(client, sqs, unique, app, perms):
    """Staff with view permission get the queue's depths as SQS counts them."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    for i in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    client.force_login(user_with(*perms))
    response = client.get(STATS)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    data = response.json()
    (queue,) = data["queues"]
    assert queue["name"] == f"{unique}-celery"
    assert (queue["visible"], queue["in_flight"], queue["delayed"]) == (4, 0, 0)
    assert set(data) >= {"generated_at", "config", "queues", "findings"}
    assert set(queue) >= {
        "name", "url", "visible", "in_flight", "delayed", "visibility_timeout",
        "receive_wait_time_seconds", "fifo", "dlq", "backoff_policy", "backoff_tasks", "error",
    }  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "status"),
    [
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),
        (f"Bearer {TOKEN}x", 401),
        ("Bearer ", 401),
        (f"Token {TOKEN}", 401),
        (TOKEN, 401),
    ],
)
@pytest.mark.usefixtures("sqs_endpoint")
def test_stats__bearer_token(client, app, header, status):
    """Only 'Bearer <token>' with the exact token opens the endpoints."""
    assert client.get(STATS, HTTP_AUTHORIZATION=header).status_code == status
    assert client.get(METRICS, HTTP_AUTHORIZATION=header).status_code == status


@pytest.mark.django_db
def test_stats__token_disabled_when_unset(client, app):
    """With SQS_BROKER_API_TOKEN unset no header opens the endpoint."""
    with override_settings(SQS_BROKER_API_TOKEN=None):
        assert client.get(STATS, HTTP_AUTHORIZATION="Bearer None").status_code == 401
        assert client.get(STATS, HTTP_AUTHORIZATION="Bearer ").status_code == 401


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_stats__window(client, app):
    """?window= takes 300, 3600 or 86400; anything else is a 400 that lists them."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert client.get(STATS, {"window": "300"}, **auth).status_code == 200
    response = client.get(STATS, {"window": "7"}, **auth)
    assert response.status_code == 400
    assert "300, 3600, 86400" in response.json()["error"]


@pytest.mark.django_db
def test_stats__post_is_refused(client, app):
    """The endpoints only read: POST answers 405."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert client.post(STATS, **auth).status_code == 405
    assert client.post(METRICS, **auth).status_code == 405


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_stats__config_masked(client, unique):
    """Keys in the broker URL show as their source only; the secret never appears."""
    secret = "S3cr3t/Canary+Value=" + unique
    env = base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_CREDENTIALS_IN_URL="true",
        AWS_ACCESS_KEY_ID="AKIACANARY" + unique.upper(),
        AWS_SECRET_ACCESS_KEY=secret,
    )
    celery = make_app(env)
    with override_settings(SQS_BROKER_CELERY_APP=celery, SQS_BROKER_API_TOKEN=TOKEN):
        response = client.get(STATS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        metrics = client.get(METRICS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    body = response.content.decode()
    assert response.status_code == 200
    for text in (body, metrics.content.decode()):
        assert secret not in text
        assert "S3cr3t" not in text
        assert "AKIACANARY" not in text
    config = json.loads(body)["config"]
    assert config["credentials"]["source"] == "url"
    assert config["queue_name_prefix"] == f"{unique}-"
    assert config["region"] == "us-east-1"
    assert config["endpoint"].startswith("http://127.0.0.1:")


@pytest.mark.django_db
def test_stats__endpoint_down_is_not_a_500(client, unique):
    """With nothing listening at the endpoint the JSON still answers, with per-queue errors."""
    from sqs_broker.localsqs import free_port

    down = f"http://127.0.0.1:{free_port()}"
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=down))
    with override_settings(
        SQS_BROKER_CELERY_APP=celery, SQS_BROKER_API_TOKEN=TOKEN, SQS_BROKER_CONNECT_TIMEOUT=1
    ):
        response = client.get(STATS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    data = response.json()
    (queue,) = data["queues"]
    assert queue["visible"] is None
    assert queue["error"]
    assert data["errors"]
    assert "Traceback" not in response.content.decode()
