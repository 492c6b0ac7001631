"""sqs_broker.findings.remote: the pidbox topic's permissions and policy, on moto's SNS."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from sqs_broker import findings
from sqs_broker.findings.remote import open_publishers
from sqs_broker.topology import Topology
from tests.findings.common import app_for
from tests.support.proxy import Proxy

ACCOUNT = "123456789012"

#: W017 reads the heartbeats when remote control is on.
pytestmark = pytest.mark.django_db


def remote_app(prefix: str, endpoint: str | None = None) -> Any:
    env = {"SQS_QUEUE_NAME_PREFIX": prefix}
    if endpoint:
        env["SQS_ENDPOINT_URL"] = endpoint
    app = app_for(env, {"supports_fanout": True})
    app.conf.worker_enable_remote_control = True
    return app


def statement(principal: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": ["SNS:Publish", "SNS:Subscribe"],
        "Resource": "*",
    }
    if condition:
        found["Condition"] = condition
    return found


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_open_publishers__who_besides_the_account() -> None:
    """Anyone without a condition and other accounts publish; the owner and conditions do not."""
    mine = f"arn:aws:iam::{ACCOUNT}:root"
    owner_only = {"StringEquals": {"AWS:SourceOwner": ACCOUNT}}
    assert list(open_publishers(policy(statement({"AWS": mine})), ACCOUNT)) == []
    assert list(open_publishers(policy(statement({"AWS": "*"}, owner_only)), ACCOUNT)) == []
    assert list(open_publishers(policy(statement("*")), ACCOUNT)) == ["*"]
    other = "arn:aws:iam::999999999999:root"
    assert list(open_publishers(policy(statement({"AWS": [mine, other]})), ACCOUNT)) == [other]
    assert list(open_publishers(policy(statement({"AWS": "999999999999"})), ACCOUNT)) == [
        "999999999999"
    ]
    subscribe_only = statement("*") | {"Action": "SNS:Subscribe"}
    assert list(open_publishers(policy(subscribe_only), ACCOUNT)) == []
    services = statement({"Service": "events.amazonaws.com"})
    assert list(open_publishers(policy(services), ACCOUNT)) == []
    assert list(open_publishers("not json", ACCOUNT)) == []


def test_w040__topic_policy_open_to_anyone(sqs_endpoint: str, unique: str) -> None:
    """moto's default topic policy passes; a policy letting anyone publish gives W040."""
    app = remote_app(f"{unique}-")
    topo = Topology.of(app)
    sns = boto3.client("sns", endpoint_url=sqs_endpoint, region_name="us-east-1")
    assert not {"sqs_broker.W040", "sqs_broker.E040"} & {f.id for f in findings.online(app)}
    arn = sns.create_topic(Name=topo.pidbox_topic)["TopicArn"]
    assert "sqs_broker.W040" not in {f.id for f in findings.online(app)}
    sns.set_topic_attributes(
        TopicArn=arn, AttributeName="Policy", AttributeValue=policy(statement("*"))
    )
    (w040,) = [f for f in findings.online(app) if f.id == "sqs_broker.W040"]
    assert topo.pidbox_topic in w040.message and "lets * publish" in w040.message
    assert arn in w040.hint


def test_w040__not_without_remote_control(sqs_endpoint: str, unique: str) -> None:
    """With remote control off, the topic is not looked at."""
    app = app_for({"SQS_QUEUE_NAME_PREFIX": f"{unique}-"})
    sns = boto3.client("sns", endpoint_url=sqs_endpoint, region_name="us-east-1")
    arn = sns.create_topic(Name=Topology.of(app).pidbox_topic)["TopicArn"]
    sns.set_topic_attributes(
        TopicArn=arn, AttributeName="Policy", AttributeValue=policy(statement("*"))
    )
    assert "sqs_broker.W040" not in {f.id for f in findings.online(app)}


@pytest.mark.usefixtures("sqs_endpoint")
def test_e040__sns_denied_names_the_permissions(sqs_endpoint: str, unique: str) -> None:
    """SNS answering AccessDenied to ListTopics gives E040 naming the SNS actions needed."""
    with Proxy.to(sqs_endpoint) as proxy:
        proxy.deny_matching = b"Action=ListTopics"
        app = remote_app(f"{unique}-", proxy.endpoint_url)
        (e040,) = [f for f in findings.online(app) if f.id == "sqs_broker.E040"]
    assert "sns:ListTopics" in e040.message
    assert "sns:Publish" in e040.hint and "sns:Subscribe" in e040.hint
