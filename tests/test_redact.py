"""sqs_broker.redact: secrets stay out of error pages, error e-mails, check messages and logs.

Every test plants canary secrets where the project keeps secrets (the AWS
keys and session token, a predefined queue's secret, the broker URL, the API
token) and scans what the project produces for them in every spelling they
may take (raw, ``safequote``-d, percent-encoded).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import django
import pytest
from django.conf import settings
from django.core import mail
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from kombu.utils.url import safequote

from sqs_broker import redact
from tests.support.env import base_env, make_app, run_python

SECRET = "CanaryRedactSecret/+Ab12"
TOKEN = "CanaryRedactToken+Cd34"
QUEUE_SECRET = "CanaryRedactQueue/Ef56"
API_TOKEN = "CanaryRedactApiToken0123456789"
CANARIES = (SECRET, TOKEN, QUEUE_SECRET, API_TOKEN)


#: DEBUG with keys in the broker URL: every process refuses to start (E001).
REFUSED = {
    "DJANGO_DEBUG": "true",
    "AWS_ACCESS_KEY_ID": "AKIACANARYREDACT",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "SQS_CREDENTIALS_IN_URL": "true",
    "SQS_BROKER_API_TOKEN": API_TOKEN,
}


def spellings(secret: str) -> set[str]:
    return {secret, safequote(secret), quote(secret, safe=""), quote(secret)}


def leaks(text: str, canaries: tuple[str, ...] = CANARIES) -> list[str]:
    """The canaries found in ``text``, in any spelling."""
    return [c for c in canaries if any(s in text for s in spellings(c))]


def broker_url() -> str:
    return f"sqs://AKIACANARYREDACT:{safequote(SECRET)}@127.0.0.1:1"


def transport_options() -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "predefined_queues": {
            "work": {
                "url": "https://sqs.us-east-1.amazonaws.com/123456789012/work",
                "access_key_id": "AKIACANARYQUEUE",
                "secret_access_key": QUEUE_SECRET,
            }
        },
    }


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Canary secrets in the environment and in the settings."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    with override_settings(
        CELERY_BROKER_URL=broker_url(),
        CELERY_BROKER_TRANSPORT_OPTIONS=transport_options(),
        SQS_BROKER_API_TOKEN=API_TOKEN,
        ROOT_URLCONF=__name__,
    ):
        yield


def boom(request: HttpRequest) -> HttpResponse:
    """A view that fails with every secret in its frame and its message."""
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    token = os.environ["AWS_SESSION_TOKEN"]
    url = settings.CELERY_BROKER_URL
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    environment = dict(os.environ)
    api = settings.SQS_BROKER_API_TOKEN
    assert secret and token and options and environment and api
    raise RuntimeError(f"could not reach {url} with {secret} and {token}")


urlpatterns = [path("boom/", boom)]

#: Django 6 takes addresses; 5.2 takes (name, address) pairs.
ADMINS = ["ops@example.com"] if django.VERSION >= (6,) else [("Ops", "ops@example.com")]

REQUEST_HEADERS = {
    "HTTP_AUTHORIZATION": f"Bearer {API_TOKEN}",
    "HTTP_X_AMZ_SECURITY_TOKEN": TOKEN,
}


@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_debug_page__shows_no_secret(canaries: None, accept: str) -> None:
    """Django's technical 500 page (HTML and text) with DEBUG on holds no canary."""
    client = Client(raise_request_exception=False)
    with override_settings(DEBUG=True):
        response = client.get("/boom/", {"token": API_TOKEN}, HTTP_ACCEPT=accept, **REQUEST_HEADERS)
    body = response.content.decode()
    assert response.status_code == 500
    # The page really is the debug page, with the frames and settings.
    assert "RuntimeError" in body and "CELERY_BROKER_TRANSPORT_OPTIONS" in body
    assert redact.MASK in body
    if accept == "text/html":  # only the HTML page shows frame variables
        assert "environment" in body
    assert leaks(body) == []


def test_error_email__shows_no_secret(canaries: None) -> None:
    """The error e-mail sent to ADMINS with DEBUG off holds no canary."""
    mail.outbox.clear()
    client = Client(raise_request_exception=False)
    with override_settings(DEBUG=False, ADMINS=ADMINS):
        response = client.get("/boom/", {"token": API_TOKEN}, **REQUEST_HEADERS)
    assert response.status_code == 500
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    text = message.subject + message.body
    text += "".join(str(content) for content, _ in getattr(message, "alternatives", []))
    assert "RuntimeError" in text and "Traceback" in text
    assert leaks(text) == []


def test_error_email__html_part_shows_no_secret(canaries: None) -> None:
    """With include_html the e-mail's HTML part (the debug page) holds no canary either."""
    from django.utils.log import AdminEmailHandler

    mail.outbox.clear()
    handler = AdminEmailHandler(include_html=True)
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        client = Client(raise_request_exception=False)
        with override_settings(DEBUG=False, ADMINS=ADMINS):
            client.get("/boom/", **REQUEST_HEADERS)
    finally:
        logger.removeHandler(handler)
    html = [m for m in mail.outbox if getattr(m, "alternatives", None)]
    assert html, "no e-mail with an HTML part"
    text = "".join(str(content) for m in html for content, _ in m.alternatives)
    assert "RuntimeError" in text
    assert leaks(text) == []


def test_scrub__masks_fields_botocore_prints() -> None:
    """Signed headers and AssumeRole answers are masked even when the secret is not configured."""
    unknown = "TemporaryTokenNotInConfig123"
    samples = [
        f"headers={{'X-Amz-Security-Token': b'{unknown}', 'Host': 'x'}}",
        f"host:sqs\nx-amz-security-token:{unknown}\n",
        f"<SecretAccessKey>{unknown}</SecretAccessKey><SessionToken>{unknown}</SessionToken>",
        json.dumps({"SecretAccessKey": unknown, "SessionToken": unknown}),
        f"{{'secret_access_key': '{unknown}'}}",
        f"aws_session_token='{unknown}'",
    ]
    for sample in samples:
        cleaned = redact.scrub(sample, frozenset())
        assert unknown not in cleaned, sample
        assert redact.MASK in cleaned


def test_known_secrets__follow_a_changed_setting() -> None:
    """A token set after a first lookup is scrubbed at once, and forgotten once unset."""
    token = "TokenSetAfterTheFirstLookup42"
    assert token not in redact.known_secrets({})
    with override_settings(SQS_BROKER_API_TOKEN=token):
        assert token in redact.known_secrets({})
        assert token not in redact.scrub(f"Bearer {token}")
    assert token not in redact.known_secrets({})


def test_scrub_record__never_raises() -> None:
    """A record whose arguments do not match its format is left alone, not turned into an error."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", ("only one",), None)
    assert redact.scrub_record(record) is record


def test_log_records__scrubbed_for_every_logger(
    canaries: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Records of any logger, even one nobody configured, are scrubbed as they are created."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("some.library").warning("connecting with %s", broker_url())
    logging.getLogger("kombu").debug("options %r", transport_options())
    try:
        raise RuntimeError(f"token {TOKEN}")
    except RuntimeError:
        logging.getLogger("celery").exception("failed")
    assert len(caplog.records) == 3
    assert "RuntimeError" in caplog.text
    assert leaks(caplog.text) == []


def test_log_scrubbing__installed_once() -> None:
    """The app installs the scrubbing record factory, and installing it again adds no layer."""
    factory = logging.getLogRecordFactory()
    assert getattr(factory, "scrubs_secrets", False)
    redact.install_log_scrubbing()
    assert logging.getLogRecordFactory() is factory


def test_boto3_debug_logs__show_no_secret(
    canaries: None, caplog: pytest.LogCaptureFixture, sqs_endpoint: str, unique: str
) -> None:
    """botocore's DEBUG logs of signed requests and of an AssumeRole answer hold no secret."""
    caplog.set_level(logging.DEBUG)
    session = boto3.session.Session(
        aws_access_key_id="AKIACANARYREDACT",
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
        region_name="us-east-1",
    )
    session.client("sqs", endpoint_url=sqs_endpoint).create_queue(QueueName=unique)
    sts = session.client("sts", endpoint_url=sqs_endpoint)
    answer = sts.assume_role(
        RoleArn="arn:aws:iam::123456789012:role/celery-sqs", RoleSessionName=unique
    )["Credentials"]
    text = caplog.text
    # The logs really hold the signed request and the STS answer.
    assert "x-amz-security-token" in text.lower()
    assert "AssumeRoleResponse" in text or "SessionToken" in text
    assert leaks(text) == []
    assert answer["SecretAccessKey"] not in text
    assert answer["SessionToken"] not in text


def test_check_command__shows_no_secret(sqs_endpoint: str) -> None:
    """`manage.py check` reporting E001 prints no canary."""
    env = base_env(**REFUSED)
    result = run_python("manage.py", "check", env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "sqs_broker.E001" in output
    assert leaks(output) == []


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["environment", "url", "predefined"])
def test_worker_debug_log__shows_no_secret(
    start_worker: Any, sqs: Any, unique: str, tmp_path: Path, where: str
) -> None:
    """A real worker at --loglevel=DEBUG runs a task and prints no canary."""
    env = base_env(
        AWS_ACCESS_KEY_ID="AKIACANARYREDACT",
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_SESSION_TOKEN=TOKEN,
        SQS_BROKER_API_TOKEN=API_TOKEN,
        SQS_WAIT_TIME_SECONDS="1",
        DJANGO_LOG_LEVEL="DEBUG",
    )
    if where == "predefined":
        url = sqs.create_queue(QueueName=unique)["QueueUrl"]
        env["SQS_PREDEFINED_QUEUES"] = json.dumps(
            {
                unique: {
                    "url": url,
                    "access_key_id": "AKIACANARYQUEUE",
                    "secret_access_key": QUEUE_SECRET,
                }
            }
        )
        queue = unique
    else:
        env["SQS_QUEUE_NAME_PREFIX"] = f"{unique}-"
        queue = "celery"
    if where == "url":
        # The keys in the broker URL, which the worker's banner shows with the secret masked.
        env["SQS_CREDENTIALS_IN_URL"] = "true"
        del env["AWS_SESSION_TOKEN"]
    worker = start_worker(env, queues=queue, extra=("--loglevel=DEBUG",))
    app = make_app(env)
    app.send_task("project.demo.tasks.add", args=(1, 2), queue=queue)
    deadline = time.monotonic() + 30
    while "succeeded" not in worker.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.stop()
    output = worker.output()
    assert "succeeded" in output, output[-3000:]
    banner = "sqs-broker://AKIACANARYREDACT:**@" if where == "url" else "sqs-broker://"
    assert f".> transport:   {banner}" in output, output[:3000]
    # DEBUG really was on for botocore: its signed requests are in the log.
    assert "Sending http request" in output or "CanonicalRequest" in output
    assert leaks(output) == [], [line for line in output.splitlines() if leaks(line)][:5]


@pytest.mark.worker
def test_worker_refusal__shows_no_secret(start_worker: Any) -> None:
    """A worker refusing to start (DEBUG with keys in the URL) says why without the key."""
    env = base_env(**REFUSED)
    worker = start_worker(env, wait=False, extra=("--loglevel=DEBUG",))
    worker.process.wait(timeout=60)
    output = worker.output()
    assert worker.process.returncode != 0
    assert "sqs_broker.E001" in output
    assert leaks(output) == []


#: Broker URLs written without quoting their secret (the secret holds '/', '?', '#', '@').
UNQUOTED = {
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCY": "sqs://AKIAEXAMPLEUNQ:wJalrXUtnFEMI/K7MDENG/bPxRfiCY@h:4566",
    "12345/CanaryDigits": "sqs://AKIAEXAMPLEUNQ:12345/CanaryDigits@127.0.0.1:4566",
    "Canary?Query#Frag/Part": "sqs://AKIAEXAMPLEUNQ:Canary?Query#Frag/Part@h",
    "Canary@AtSign/Slash": "sqs://AKIAEXAMPLEUNQ:Canary@AtSign/Slash@h:1",
}


@pytest.mark.parametrize("secret", list(UNQUOTED))
def test_mask_url__hides_an_unquoted_secret_whole(secret: str) -> None:
    """mask_url hides every piece of a secret that was not quoted, and the host stays."""
    url = UNQUOTED[secret]
    masked = redact.mask_url(f"broker {url} failed")
    pieces = secret.replace("?", "/").replace("#", "/").replace("@", "/").split("/")
    assert not [p for p in pieces if len(p) >= 4 and p in masked], masked
    assert masked.startswith("broker sqs://AKIA********:********@") and masked.endswith(" failed")


def test_mask_url__hides_a_lone_token() -> None:
    """User info without a password (a token on its own) is masked too."""
    assert redact.mask_url("http://CanaryLoneToken@host:1/x") == "http://********@host:1/x"
    assert redact.mask_url("http://host:1/path x@y") == "http://host:1/path x@y"


@pytest.mark.parametrize("secret", list(UNQUOTED))
def test_displayable_config__survives_an_unquoted_secret(secret: str) -> None:
    """A URL set in a settings module with an unquoted secret: no error, no piece shown."""
    app = make_app({})
    app.conf.broker_url = UNQUOTED[secret]
    shown = json.dumps(redact.displayable_config(app, env={}))
    assert not [p for p in secret.split("/") if len(p) >= 4 and p in shown], shown
    assert redact.displayable_config(app, env={})["credentials"]["source"] == "url"


def test_celery_report__shows_no_secret(sqs_endpoint: str) -> None:
    """`celery -A project report` (pasted into bug reports) masks the URL's secret."""
    env = base_env(
        AWS_ACCESS_KEY_ID="AKIACANARYREDACT",
        AWS_SECRET_ACCESS_KEY=SECRET,
        SQS_CREDENTIALS_IN_URL="true",
        DJANGO_SECRET_KEY="x" * 50,
    )
    result = run_python("-m", "celery", "-A", "project", "report", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CELERY_BROKER_URL: 'sqs://AKIA********:********@" in result.stdout
    assert not leaks(result.stdout + result.stderr)


def test_celery_bugreport__masks_urls_under_any_key() -> None:
    """The report of an app configured with Django's CELERY_ names masks every URL's secret."""
    from celery import Celery

    from sqs_broker import guard

    app = Celery("report", set_as_current=False)
    app.config_from_object(
        {
            "CELERY_BROKER_URL": f"sqs://AKIAREPORT:{safequote(QUEUE_SECRET)}@127.0.0.1:1",
            "CELERY_RESULT_BACKEND": f"redis://:{TOKEN}@127.0.0.1:1/0",
        },
        namespace="CELERY",
    )
    guard.install(app)
    report = app.bugreport()
    assert "BROKER_URL" in report and not leaks(report), report
