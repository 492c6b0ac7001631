"""The worker's side of offloaded task messages, with real workers on moto's SQS and S3.

A task whose argument is larger than SQS carries runs end to end; its object
is deleted after the acknowledgement, kept across a SIGKILL; a pointer that
cannot be honoured is quarantined with the pointer, never lost.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from sqs_broker import payloads, publishing
from sqs_broker.transport import payloads as worker_payloads
from sqs_broker.transport.poison import Poison
from tests.support.env import base_env, make_app
from tests.support.queues import drain
from tests.support.workers import wait_for

MEASURE = "project.demo.tasks.measure"
#: Three million characters: a 4 MB SQS body once kombu has base64-encoded it.
BIG = "b" * 3_000_000


def with_worker(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a test that starts workers."""
    return pytest.mark.worker(pytest.mark.django_db(transaction=True)(test))


def keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def worker_env(unique: str, bucket: str, **overrides: str) -> dict[str, str]:
    """A worker on queues prefixed ``unique-`` that reads stored bodies from ``bucket``."""
    return base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_WAIT_TIME_SECONDS="1",
        SQS_LARGE_PAYLOAD_BUCKET=bucket,
        SQS_LARGE_PAYLOAD_ENDPOINT_URL=base_env()["SQS_ENDPOINT_URL"],
        **overrides,
    )


def runs(path: Path) -> list[list[str]]:
    """``[length, digest, pid]`` of every run of ``measure`` recorded in ``path``."""
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def published(unique: str, bucket: str, **overrides: str) -> Any:
    """A guarded publishing app for the worker's queues."""
    app = make_app(worker_env(unique, bucket, **overrides))
    publishing.install(app)
    return app


DIGEST = hashlib.sha256(BIG.encode()).hexdigest()[:16]


@with_worker
def test_offloaded_task__runs_and_its_object_is_deleted_after_ack(
    start_worker: Any, sqs: Any, s3: Any, bucket: str, unique: str, tmp_path: Path
) -> None:
    """A 3 MB argument goes through S3; the worker runs it; the bucket is empty afterwards."""
    journal = tmp_path / "journal"
    worker = start_worker(worker_env(unique, bucket))
    published(unique, bucket).send_task(MEASURE, args=(BIG, str(journal)))
    assert len(keys(s3, bucket)) == 1
    assert wait_for(lambda: len(runs(journal)) == 1, 60), worker.output()
    assert runs(journal)[0][:2] == [str(len(BIG)), DIGEST]
    assert wait_for(lambda: keys(s3, bucket) == [], 15), worker.output()
    url = sqs.get_queue_url(QueueName=f"{unique}-celery")["QueueUrl"]
    assert drain(sqs, url) == []
    assert "succeeded" in worker.output()


@with_worker
def test_offloaded_task__sigkilled_worker_leaves_the_object_for_the_redelivery(
    start_worker: Any, sqs: Any, s3: Any, bucket: str, unique: str, tmp_path: Path
) -> None:
    """Killed mid-task: redelivered, its object still there; nothing left once it succeeds."""
    visibility = 4
    env = worker_env(unique, bucket, SQS_VISIBILITY_TIMEOUT=str(visibility))
    journal = tmp_path / "journal"
    first = start_worker(env)
    published(unique, bucket, SQS_VISIBILITY_TIMEOUT=str(visibility)).send_task(
        MEASURE, args=(BIG, str(journal), 2.0)
    )
    assert wait_for(lambda: len(runs(journal)) == 1, 60), first.output()
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    [key] = keys(s3, bucket)

    second = start_worker(env)
    assert wait_for(lambda: len(runs(journal)) == 2, visibility + 30), second.output()
    # The redelivery read the same object: it was kept while the message could come back.
    assert keys(s3, bucket) == [key]
    assert [run[:2] for run in runs(journal)] == [[str(len(BIG)), DIGEST]] * 2
    assert runs(journal)[0][2] != runs(journal)[1][2]
    assert wait_for(lambda: "succeeded" in second.output(), 30), second.output()
    assert wait_for(lambda: keys(s3, bucket) == [], 15), second.output()


@with_worker
def test_pointer_it_cannot_honour__quarantined_with_the_pointer(
    start_worker: Any, sqs: Any, s3: Any, bucket: str, unique: str, tmp_path: Path
) -> None:
    """Unreadable pointers and an undecodable stored body are moved with their pointers.

    The stored body that is not a task keeps its object: the quarantined
    message still points to it.
    """
    s3.create_bucket(Bucket=f"{unique}-other")
    s3.put_object(Bucket=f"{unique}-other", Key="secret", Body=b"not for workers")
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    other = payloads.Pointer(f"{unique}-other", "secret").body()
    missing = payloads.Pointer(bucket, "sqs-payloads/gone").body()
    s3.put_object(Bucket=bucket, Key="sqs-payloads/garbage", Body=b"not a kombu envelope")
    garbage = payloads.Pointer(bucket, "sqs-payloads/garbage").body()
    for body in (other, missing, garbage):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    worker = start_worker(worker_env(unique, bucket))
    quarantine = f"{unique}-celery-quarantine"

    def moved() -> int:
        try:
            target = sqs.get_queue_url(QueueName=quarantine)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            return 0
        names = ["ApproximateNumberOfMessages"]
        answer = sqs.get_queue_attributes(QueueUrl=target, AttributeNames=names)
        return int(answer["Attributes"][names[0]])

    assert wait_for(lambda: moved() == 3, 30), worker.output()
    target = sqs.get_queue_url(QueueName=quarantine)["QueueUrl"]
    reasons = {
        m["Body"]: m["MessageAttributes"]["sqs_broker.poison.reason"]["StringValue"]
        for m in drain(sqs, target)
    }
    assert set(reasons) == {other, missing, garbage}
    assert "not a JSON kombu envelope" in reasons[garbage]
    assert "sqs-payloads/garbage" in keys(s3, bucket)
    assert f"names bucket '{unique}-other', not the configured '{bucket}'" in reasons[other]
    assert "cannot be read (NoSuchKey)" in reasons[missing]
    assert drain(sqs, url) == []


# --- the functions on their own ------------------------------------------------------


def test_body_of__a_plain_body_is_left_alone(bucket: str) -> None:
    """A kombu body (base64 or JSON) is returned as received, with no S3 request."""
    for body in ("eyJib2R5IjogIiJ9", '{"body": "", "properties": {}}', "[1, 2]"):
        assert worker_payloads.body_of({"Body": body, "ReceiptHandle": "r"}) == body
    assert len(worker_payloads.held) == 0


def test_body_of__reads_the_object_and_holds_it_until_acknowledged(
    bucket: str, s3: Any, unique: str
) -> None:
    """The stored body is read; acknowledging the receipt deletes the object, once."""
    pointer = payloads.store("stored body", f"{unique}-celery")
    message = {"Body": pointer.body(), "ReceiptHandle": f"{unique}-receipt"}
    assert worker_payloads.body_of(message) == "stored body"
    assert keys(s3, bucket) == [pointer.key]
    worker_payloads.acknowledged(["another-receipt"])
    assert keys(s3, bucket) == [pointer.key]
    worker_payloads.acknowledged([f"{unique}-receipt"])
    assert keys(s3, bucket) == []
    assert worker_payloads.held.pop([f"{unique}-receipt"]) == []


def test_body_of__refusals_are_poison(bucket: str, unique: str) -> None:
    """Malformed pointers, other buckets, missing objects and no bucket are poison."""
    cases = {
        json.dumps([payloads.POINTER_CLASS, "x"]): "not [class, {s3BucketName, s3Key}]",
        json.dumps([payloads.POINTER_CLASS, {"s3BucketName": bucket}]): "no s3BucketName",
        payloads.Pointer("elsewhere", "k").body(): "names bucket 'elsewhere'",
        payloads.Pointer(bucket, "nothing-here").body(): "cannot be read (NoSuchKey)",
    }
    for body, reason in cases.items():
        with pytest.raises(Poison, match=re.escape(reason)):
            worker_payloads.body_of({"Body": body, "ReceiptHandle": "r"})
    with (
        override_settings(SQS_BROKER_LARGE_PAYLOAD_BUCKET=None),
        pytest.raises(Poison, match="SQS_BROKER_LARGE_PAYLOAD_BUCKET is not set"),
    ):
        worker_payloads.body_of({"Body": payloads.Pointer(bucket, "k").body()})


def test_body_of__s3_not_answering_leaves_the_message(unique: str) -> None:
    """An S3 that does not answer is not poison: the message waits for a later delivery."""
    with override_settings(
        SQS_BROKER_LARGE_PAYLOAD_BUCKET=unique,
        SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL="http://127.0.0.1:9",
        SQS_BROKER_LARGE_PAYLOAD_TIMEOUT=0.5,
    ):
        payloads.forget_clients()
        with pytest.raises(worker_payloads.Unavailable, match="S3 did not answer"):
            worker_payloads.body_of({"Body": payloads.Pointer(unique, "k").body()})
    payloads.forget_clients()


def test_held__forgets_receipts_never_acknowledged() -> None:
    """A receipt older than the longest visibility timeout is dropped on a later add."""
    held = worker_payloads.Held(ttl=0)
    held.add("old", payloads.Pointer("b", "k1"))
    held._pruned -= 120  # as if the last pruning was two minutes ago
    held.add("new", payloads.Pointer("b", "k2"))
    assert len(held) == 1 and held.pop(["new"]) == [payloads.Pointer("b", "k2")]


@with_worker
def test_extended_clients_message__runs_and_its_object_is_deleted(
    start_worker: Any, sqs: Any, s3: Any, bucket: str, unique: str, tmp_path: Path
) -> None:
    """A task message AWS's extended client stored in S3 runs on our worker; then it is gone."""
    from tests.test_payloads import extended_client

    journal = tmp_path / "journal"
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    # The task message kombu would send, taken off the queue before any worker sees it.
    app = make_app(worker_env(unique, bucket))
    app.send_task(MEASURE, args=("e" * 500_000, str(journal)))
    [message] = drain(sqs, url)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    extended_client("send", url, bucket, stdin=message["Body"])
    [key] = keys(s3, bucket)
    assert not key.startswith("sqs-payloads/")  # the extended client's own key: a bare uuid

    worker = start_worker(worker_env(unique, bucket))
    assert wait_for(lambda: len(runs(journal)) == 1, 60), worker.output()
    assert runs(journal)[0][0] == "500000"
    assert wait_for(lambda: keys(s3, bucket) == [], 15), worker.output()


# --- the counts on every face -----------------------------------------------------------


def series(text: str, name: str) -> float | None:
    """The value of the series ``name`` (with its labels) in a Prometheus text, if present."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def _payloads_json(client: Any) -> dict[str, Any]:
    from sqs_broker import cache

    cache.reset()  # a new listing: the faces reuse one for STORED_TTL seconds
    answer: dict[str, Any] = client.get("/sqs/stats.json?window=300").json()["payloads"]
    return answer


@with_worker
def test_offloaded_task__counted_on_every_face_and_stored_until_swept(
    start_worker: Any, sqs: Any, s3: Any, bucket: str, unique: str, tmp_path: Path, client: Any
) -> None:
    """A 3 MB task: workers count it and its bytes per queue; one nobody consumes stays stored
    until the sweep; stats.json, the metrics, the dashboard and sqs_stats say so."""
    import io

    from django.core.management import call_command

    from sqs_broker.models import TaskCounter
    from sqs_broker.payloads.sweep import sweep
    from tests.support import promtool
    from tests.support.users import user_with

    env = worker_env(unique, bucket, SQS_BROKER_TELEMETRY="true", SQS_BROKER_TELEMETRY_INTERVAL="1")
    queue, other = f"{unique}-celery", f"{unique}-other"
    app = published(unique, bucket)
    journal = tmp_path / "journal"
    # One to a queue no worker consumes: its object waits in the bucket.
    app.send_task(MEASURE, args=(BIG, str(journal)), queue="other")
    app.send_task(MEASURE, args=(BIG, str(journal)))
    sizes = {
        key.split("/")[1]: s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        for key in keys(s3, bucket)
    }
    # The two bodies differ by a few bytes (their routing): each is counted as stored.
    assert set(sizes) == {queue, other} and min(sizes.values()) > len(BIG)
    [waiting] = [key for key in keys(s3, bucket) if key.startswith(f"sqs-payloads/{other}/")]
    stored_size, offloaded_size = sizes[other], sizes[queue]

    worker = start_worker(env)
    assert wait_for(lambda: len(runs(journal)) == 1, 60), worker.output()
    assert wait_for(lambda: keys(s3, bucket) == [waiting], 15), worker.output()
    rows = TaskCounter.objects.filter(queue=queue, task=MEASURE)
    assert wait_for(lambda: sum(r.offloaded for r in rows.all()) == 1, 30), worker.output()
    # The worker counted the size the message's ExtendedPayloadSize gave: the stored bytes.
    assert sum(r.offloaded_bytes for r in rows.all()) == offloaded_size

    client.force_login(user_with("view_dashboard", username=f"viewer-{unique}"))
    with override_settings(SQS_BROKER_CELERY_APP=app):
        found = _payloads_json(client)
        assert (found["bucket"], found["error"], found["capped"]) == (bucket, None, False)
        by_queue = {row["queue"]: row for row in found["queues"]}
        assert by_queue[queue] == {
            "queue": queue, "offloaded": 1, "offloaded_bytes": offloaded_size,
            "stored_objects": 0, "stored_bytes": 0, "stored_oldest_age": None,
        }  # fmt: skip
        assert by_queue[other]["offloaded"] == 0
        assert (by_queue[other]["stored_objects"], by_queue[other]["stored_bytes"]) == (
            1,
            stored_size,
        )
        assert 0 <= by_queue[other]["stored_oldest_age"] < 300
        assert (found["stored_objects"], found["stored_bytes"]) == (1, stored_size)

        text = client.get("/sqs/metrics").content.decode()
        assert series(text, f'sqs_broker_queue_offloaded_messages_total{{queue="{queue}"}}') == 1
        assert series(text, f'sqs_broker_queue_offloaded_bytes_total{{queue="{queue}"}}') == (
            offloaded_size
        )
        assert series(text, f'sqs_broker_payload_stored_objects{{queue="{other}"}}') == 1
        assert series(text, f'sqs_broker_payload_stored_bytes{{queue="{other}"}}') == stored_size
        assert series(text, "sqs_broker_payload_listing_capped") == 0
        linted = promtool.run("check", "metrics", stdin=text.encode())
        assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")

        page = client.get("/admin/sqs_broker/dashboard/?window=300").content.decode()
        assert 'id="sqs-payloads"' in page
        row = page.split(f'class="sqs-payload-row" data-queue="{other}"', 1)[1].split("</tr>", 1)[0]
        assert '<td class="num stored-objects" data-label="Stored objects">1</td>' in row

        out = io.StringIO()
        call_command("sqs_stats", "--offline", stdout=out)
        assert json.loads(out.getvalue())["payloads"]["stored_objects"] == 1

        swept = sweep(app, older_than=0)
        assert swept.deleted == {other: 1} and swept.errors == []
        after = _payloads_json(client)
        assert (after["stored_objects"], after["stored_bytes"]) == (0, 0)
        assert [row["queue"] for row in after["queues"]] == [queue]


# --- a second implementation of SQS and S3 ----------------------------------------------


@with_worker
def test_offloaded_task__runs_on_a_second_implementation(
    start_worker: Any, unique: str, tmp_path: Path
) -> None:
    """The 3 MB task end to end on local-aws-sqs and s3rver (Node.js), not moto: it runs, its
    stored body is read back whole, and the bucket is empty after the acknowledgement."""
    import boto3
    from botocore.config import Config

    from tests.support import nodeaws

    data = tmp_path / "s3"
    data.mkdir()
    with nodeaws.servers(data) as servers:
        name = f"{unique}-payloads"
        s3 = boto3.client(
            "s3",
            endpoint_url=servers.s3,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        s3.create_bucket(Bucket=name)
        env = base_env(
            SQS_ENDPOINT_URL=servers.sqs,
            SQS_QUEUE_NAME_PREFIX=f"{unique}-",
            SQS_WAIT_TIME_SECONDS="1",
            SQS_LARGE_PAYLOAD_BUCKET=name,
            SQS_LARGE_PAYLOAD_ENDPOINT_URL=servers.s3,
        )
        journal = tmp_path / "journal"
        worker = start_worker(env)
        # The worker's broker is the Node.js server, not this run's moto.
        assert f"@{servers.sqs.split('://', 1)[1]}//" in worker.output()
        app = make_app(env)
        publishing.install(app)
        payloads.forget_clients()
        with override_settings(
            SQS_BROKER_LARGE_PAYLOAD_BUCKET=name,
            SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL=servers.s3,
        ):
            app.send_task(MEASURE, args=(BIG, str(journal)))
        payloads.forget_clients()
        [key] = keys(s3, name)
        assert key.startswith(f"sqs-payloads/{unique}-celery/")
        assert wait_for(lambda: len(runs(journal)) == 1, 60), worker.output()
        assert runs(journal)[0][:2] == [str(len(BIG)), DIGEST]
        assert wait_for(lambda: keys(s3, name) == [], 15), worker.output()
        sqs = boto3.client("sqs", endpoint_url=servers.sqs, region_name="us-east-1")
        url = sqs.get_queue_url(QueueName=f"{unique}-celery")["QueueUrl"]
        assert drain(sqs, url) == []
        assert "succeeded" in worker.output()
