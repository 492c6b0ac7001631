"""sqs_broker.findings.payloads: message sizes and the large-payload bucket, on moto."""

from __future__ import annotations

from typing import Any

from django.test import override_settings

from sqs_broker import findings, payloads
from sqs_broker.payloads.bucket import bucket_state
from tests.findings.common import app_for, ids


def test_w021__queue_below_one_mebibyte(sqs: Any, unique: str) -> None:
    """A queue of 256 KiB is reported with the command that raises it; 1 MiB is not."""
    sqs.create_queue(QueueName=f"{unique}-celery", Attributes={"MaximumMessageSize": "262144"})
    sqs.create_queue(QueueName=f"{unique}-other")
    app = app_for({"SQS_QUEUE_NAME_PREFIX": f"{unique}-"}, task_routes={"x": {"queue": "other"}})
    found = [f for f in findings.online(app) if f.id == "sqs_broker.W021"]
    assert [f.queue for f in found] == [f"{unique}-celery"]
    assert "at most 262,144 bytes" in found[0].message
    assert "refused at publish" in found[0].message
    assert "MaximumMessageSize=1048576" in found[0].hint


def test_w022__bucket_with_kombus_transport(bucket: str) -> None:
    """A bucket with SQS_TRANSPORT=kombu is W022; with the project's transport it is not."""
    assert "sqs_broker.W022" in ids(findings.offline(app_for({"SQS_TRANSPORT": "kombu"})))
    assert "sqs_broker.W022" not in ids(findings.offline(app_for()))


def test_bucket__missing_is_e025(unique: str, sqs_endpoint: str) -> None:
    """A bucket that does not exist is E025 naming it."""
    with override_settings(
        SQS_BROKER_LARGE_PAYLOAD_BUCKET=f"{unique}-none",
        SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL=sqs_endpoint,
    ):
        payloads.forget_clients()
        found = [f for f in findings.online(app_for()) if f.id == "sqs_broker.E025"]
    assert len(found) == 1 and f"{unique}-none does not exist" in found[0].message


def test_bucket__no_lifecycle_rule_then_a_rule(bucket: str, s3: Any) -> None:
    """W024 until a rule expires the prefix; the probe leaves no object behind."""
    app = app_for()
    assert "sqs_broker.W024" in ids(findings.online(app))
    rule = {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "sqs-payloads/"}}
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [{**rule, "Expiration": {"Days": 15}}]}
    )
    found = ids(findings.online(app))
    assert not found & {"sqs_broker.W024", "sqs_broker.E025", "sqs_broker.W023"}
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_bucket__other_region_and_leftovers(unique: str, s3: Any, sqs_endpoint: str) -> None:
    """W023 for a bucket in another region; W025 counts objects older than 28 days."""
    s3.create_bucket(Bucket=unique, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=unique, Key="sqs-payloads/q/old", Body=b"x")
    with override_settings(
        SQS_BROKER_LARGE_PAYLOAD_BUCKET=unique,
        SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL=sqs_endpoint,
    ):
        payloads.forget_clients()
        app = app_for()
        found = {f.id: f for f in findings.online(app)}
        assert "eu-west-1" in found["sqs_broker.W023"].message
        state = bucket_state(app, max_age=-1, probe=False)
    assert state is not None and state.leftovers == 1 and state.listed == 1
