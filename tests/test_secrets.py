"""Secrets never leave: a canary scan of every output the project produces.

``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, a predefined queue's secret
and ``SQS_BROKER_API_TOKEN`` hold unique canaries; every admin page and
confirmation page, the actions' messages and log entries, ``stats.json``,
``metrics``, the workers' pages and ``sqs_check`` (text and JSON, in-process
and on the command line) are scanned for them in every spelling (raw, safequoted, percent-encoded,
HTML-escaped). Error pages, e-mails, check messages and logs are scanned in
``tests/test_redact.py``; ``ImproperlyConfigured`` messages in
``tests/test_properties.py``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from io import StringIO
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from kombu.utils.url import safequote

import sqs_broker.cache
from tests.support.env import base_env, make_app, run_python
from tests.support.queues import queue_with_dlq

pytestmark = pytest.mark.django_db

SECRET = "CanaryLeakSecret/+Gh78"
TOKEN = "CanaryLeakSession+Ij90"
QUEUE_SECRET = "CanaryLeakQueue/Kl12=="
API_TOKEN = "CanaryLeakApiToken0123456789"
CANARIES = (SECRET, TOKEN, QUEUE_SECRET, API_TOKEN)
DASHBOARD = "/admin/sqs_broker/dashboard/"


def leaks(text: str) -> list[str]:
    """The canaries found in ``text``, in any spelling."""
    found = []
    for canary in CANARIES:
        forms = {canary, safequote(canary), quote(canary, safe=""), quote(canary)}
        forms |= {html.escape(f) for f in forms}
        if any(form in text for form in forms):
            found.append(canary)
    return found


def config(mode: str, unique: str, sqs: Any) -> dict[str, str]:
    """An environment holding every kind of secret, with real queues on the moto server."""
    work, dlq = queue_with_dlq(sqs, f"{unique}-work", f"{unique}-work-dlq", max_receive_count=3)
    sqs.send_message(QueueUrl=work, MessageBody="live")
    sqs.send_message(QueueUrl=dlq, MessageBody="dead")
    env = base_env(
        AWS_ACCESS_KEY_ID="AKIACANARYLEAK000001",
        AWS_SECRET_ACCESS_KEY=SECRET,
        SQS_BROKER_API_TOKEN=API_TOKEN,
        SQS_WAIT_TIME_SECONDS="1",
        SQS_PREDEFINED_QUEUES=json.dumps(
            {
                f"{unique}-work": {
                    "url": work,
                    "access_key_id": "AKIACANARYLEAK000002",
                    "secret_access_key": QUEUE_SECRET,
                    "backoff_policy": {"1": 5, "2": 10},
                    "backoff_tasks": ["project.demo.tasks.flaky"],
                }
            }
        ),
    )
    if mode == "url_keys":
        env["SQS_CREDENTIALS_IN_URL"] = "true"
    else:
        env["AWS_SESSION_TOKEN"] = TOKEN
    return env


@pytest.fixture(params=["url_keys", "env_keys"])
def secret_env(
    request: pytest.FixtureRequest, sqs: Any, unique: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dict[str, str], Any]]:
    """The canaries in this process's environment and a Celery app that uses them."""
    env = config(request.param, unique, sqs)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if name in env:
            monkeypatch.setenv(name, env[name])
    app = make_app(env)
    # The scan can fail: the app really holds the canaries, in the spellings it uses.
    assert QUEUE_SECRET in leaks(repr(app.conf.broker_transport_options))
    if request.param == "url_keys":
        assert leaks(app.conf.broker_url) == [SECRET]
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_API_TOKEN=API_TOKEN):
        yield env, app


def test_admin_pages__show_no_secret(secret_env: tuple[dict[str, str], Any], unique: str) -> None:
    """The admin index, dashboard, queue page and both confirmation pages hold no canary."""
    _env, _app = secret_env
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    queue = f"{unique}-work"
    urls = [
        "/admin/",
        DASHBOARD,
        f"{DASHBOARD}?window=3600",
        f"{DASHBOARD}queue/{queue}/",
        f"{DASHBOARD}queue/{queue}/purge/",
        f"{DASHBOARD}queue/{queue}/redrive/",
    ]
    seen = 0
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert leaks(body) == [], url
        seen += queue in body
    assert seen == len(urls) - 1  # every page but the admin index names the queue
    # The dashboard really shows the configuration: where the keys come from, not the keys.
    assert "AKIACANARYLEAK000002" not in client.get(DASHBOARD).content.decode()


def test_actions__messages_and_log_entries_show_no_secret(
    secret_env: tuple[dict[str, str], Any], unique: str
) -> None:
    """The pages after a peek, a move and a purge, their messages and LogEntries hold no canary."""
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    queue = f"{unique}-work"
    texts = []
    peek = client.post(f"{DASHBOARD}queue/{queue}/peek/")
    assert peek.status_code == 200
    texts.append(peek.content.decode())
    for action in ("redrive", "purge"):
        response = client.post(
            f"{DASHBOARD}queue/{queue}/{action}/", {"confirm": queue}, follow=True
        )
        assert response.status_code == 200
        texts.append(response.content.decode())
        texts += [str(m) for m in get_messages(response.wsgi_request)]
    entries = list(LogEntry.objects.values_list("change_message", "object_repr"))
    assert len(entries) == 3
    texts += [" ".join(e) for e in entries]
    assert leaks("\n".join(texts)) == []


@pytest.mark.parametrize("auth", ["session", "token"])
def test_machine_views__show_no_secret(
    secret_env: tuple[dict[str, str], Any], unique: str, auth: str
) -> None:
    """stats.json and metrics hold no canary, read with a session or with the token."""
    client = Client()
    headers = {}
    if auth == "session":
        client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    else:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {API_TOKEN}"
    stats = client.get("/sqs/stats.json", **headers)
    metrics = client.get("/sqs/metrics", **headers)
    assert stats.status_code == 200 and metrics.status_code == 200
    data = stats.json()
    assert any(q["name"] == f"{unique}-work" for q in data["queues"])
    assert f"{unique}-work" in metrics.content.decode()
    assert leaks(stats.content.decode()) == []
    assert leaks(json.dumps(data, ensure_ascii=False)) == []
    assert leaks(metrics.content.decode()) == []


@pytest.mark.parametrize("where", ["missing bucket", "endpoint holding the secret"])
def test_payload_figures__show_no_secret(
    secret_env: tuple[dict[str, str], Any], unique: str, sqs_endpoint: str, where: str
) -> None:
    """The large-message panel, stats.json and metrics hold no canary, even in S3's errors."""
    from sqs_broker import payloads

    bucket, endpoint = f"{unique}-missing", sqs_endpoint
    if where != "missing bucket":  # unreachable, its URL holding the secret key
        bucket, endpoint = (
            unique,
            f"http://AKIACANARYLEAK000001:{quote(SECRET, safe='')}@127.0.0.1:9",
        )
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    payloads.forget_clients()
    with override_settings(
        SQS_BROKER_LARGE_PAYLOAD_BUCKET=bucket,
        SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL=endpoint,
        SQS_BROKER_LARGE_PAYLOAD_TIMEOUT=1,
    ):
        data = client.get("/sqs/stats.json").json()
        page = client.get(DASHBOARD).content.decode()
        metrics = client.get("/sqs/metrics").content.decode()
    payloads.forget_clients()
    # The figures are really shown, with S3's error.
    assert data["payloads"]["error"] and 'id="sqs-payloads-error"' in page
    assert "sqs_broker_payload_listing_error 1.0" in metrics
    assert leaks(json.dumps(data, ensure_ascii=False)) == []
    assert leaks(page) == [] and leaks(metrics) == []


@pytest.mark.parametrize("fmt", [(), ("--json",), ("--offline",), ("--json", "--offline")])
def test_sqs_check__shows_no_secret(secret_env: tuple[dict[str, str], Any], fmt: tuple) -> None:
    """sqs_check, text and JSON, online and offline, holds no canary."""
    _env, app = secret_env
    out, err = StringIO(), StringIO()
    try:
        call_command("sqs_check", *fmt, "--fail-level", "warning", app=app, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(str(exc))
    text = out.getvalue() + err.getvalue()
    assert text.strip()
    if "--json" in fmt:
        json.loads(out.getvalue())
    assert leaks(text) == []


def test_sqs_check_command_line__shows_no_secret(sqs: Any, unique: str) -> None:
    """`manage.py sqs_check` in a subprocess with the canaries in its environment prints none."""
    for mode in ("url_keys", "env_keys"):
        env = config(mode, f"{unique}{mode[0]}", sqs)
        for args in ((), ("--json",)):
            result = run_python("manage.py", "sqs_check", *args, env=env, timeout=90)
            output = result.stdout + result.stderr
            assert result.returncode in (0, 1), output
            assert leaks(output) == [], (mode, args)


@pytest.mark.parametrize("endpoint", ["up", "down"])
def test_sqs_sample__shows_no_secret(secret_env: tuple[dict[str, str], Any], endpoint: str) -> None:
    """sqs_sample's report, and its per-queue errors with the endpoint down, hold no canary."""
    from sqs_broker.localsqs import free_port

    env, app = secret_env
    if endpoint == "down":
        app = make_app({**env, "SQS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
        sqs_broker.cache.reset()
    out, err = StringIO(), StringIO()
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_CONNECT_TIMEOUT=1):
        try:
            call_command("sqs_sample", "--once", stdout=out, stderr=err)
        except CommandError as exc:
            err.write(str(exc))
    text = out.getvalue() + err.getvalue()
    assert "Sampled" in text
    if endpoint == "down":
        assert "could not be sampled" in text
    assert leaks(text) == []


def test_worker_pages__show_no_secret(secret_env: tuple[dict[str, str], Any]) -> None:
    """The workers' page, the worker actions' pages, their messages and LogEntries hold no canary,
    though the workers answer with it in task arguments and errors."""
    from tests.support.remote import Control, beat

    _env, app = secret_env
    leaky = f"sqs://AKIACANARYLEAK000001:{SECRET}@sqs.example"
    request = {"id": "t-1", "name": "n", "args": [SECRET], "kwargs": {"url": leaky}}
    answers = {
        "active": [request],
        "reserved": [request],
        "scheduled": [{"eta": "2030-01-01T00:00:00+00:00", "request": request}],
        "pool_grow": {"error": f"cannot reach {leaky}"},
        "revoke": {"ok": f"revoked {TOKEN}"},
    }
    app.conf.worker_enable_remote_control = True
    app.control = Control({"celery@a": answers})
    beat("celery@a")
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    texts = []
    for url in ("workers/", "revoke/?id=t-1", "rate-limit/?task=n", "worker/celery@a/pool/"):
        response = client.get(DASHBOARD + url)
        assert response.status_code == 200, url
        texts.append(response.content.decode())
    assert 'data-task-id="t-1"' in texts[0]
    for url, data in (
        ("revoke/", {"id": "t-1", "confirm": "t-1"}),
        ("worker/celery@a/pool/", {"confirm": "celery@a", "direction": "grow", "n": "1"}),
    ):
        response = client.post(DASHBOARD + url, data, follow=True)
        texts.append(response.content.decode())
        texts += [str(m) for m in get_messages(response.wsgi_request)]
    assert "cannot reach" in "\n".join(texts)  # the refusal is shown, scrubbed
    app.control = Control({}, fail=ConnectionError(f"could not connect to {leaky}"))
    page = client.get(DASHBOARD + "workers/").content.decode()
    assert 'id="sqs-remote-error"' in page
    texts.append(page)
    texts += [" ".join(e) for e in LogEntry.objects.values_list("change_message", "object_repr")]
    assert leaks("\n".join(texts)) == []


@pytest.mark.parametrize("endpoint", ["up", "down"])
def test_sqs_remote_sweep__shows_no_secret(
    secret_env: tuple[dict[str, str], Any], endpoint: str, unique: str, sqs: Any
) -> None:
    """sqs_remote sweep's listing, and its error with the endpoint down, hold no canary."""
    from sqs_broker.localsqs import free_port

    env, app = secret_env
    if endpoint == "down":
        app = make_app({**env, "SQS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    app.conf.worker_enable_remote_control = True
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "supports_fanout": True,
    }
    sqs.create_queue(QueueName=f"{unique}-celery_gone-celery-pidbox")
    out, err = StringIO(), StringIO()
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_CONNECT_TIMEOUT=1):
        try:
            call_command("sqs_remote", "sweep", "--dry-run", stdout=out, stderr=err)
        except CommandError as exc:
            err.write(str(exc))
    text = out.getvalue() + err.getvalue()
    assert ("could not be read" in text) == (endpoint == "down"), text
    assert leaks(text) == []
