"""sqs_broker.findings.failures: unreachable endpoints, rejected and denied credentials."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from django.test import override_settings

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
import sqs_broker.cache
from sqs_broker import findings
from sqs_broker.localsqs import LocalSQS, free_port
from tests.findings.common import (
    ACCOUNT,
    SECRET,
    app_for,
    ids,
    online_ids,
    predefined,
)
from tests.support.proxy import Proxy


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
        sqs_broker.cache.reset()
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


@pytest.mark.usefixtures("sqs_endpoint")
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
    # Two 1 s attempts, with room for a loaded machine; unbounded would be 20 s a call.
    assert elapsed < 8
