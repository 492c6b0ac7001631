"""The offloading format, keys and S3 calls; the pointer checked against AWS's own client.

The interoperability tests run the published Python extended client
(``amazon-sqs-extended-client``) in a subprocess: importing it replaces
``boto3.Session`` for the whole process.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from sqs_broker import payloads, publishing
from sqs_broker.conf import app_settings
from sqs_broker.payloads.sweep import sweep
from sqs_broker.transport import payloads as worker_payloads
from tests.support import ROOT
from tests.support.env import base_env, make_app
from tests.support.queues import drain

ADD = "project.demo.tasks.add"


def keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


# --- the format -------------------------------------------------------------------------


def test_pointer__round_trip_in_the_extended_clients_format() -> None:
    """A pointer's body is the two-element JSON list, and reads back as the same pointer."""
    pointer = payloads.Pointer("bucket-1", "sqs-payloads/celery/abc")
    assert json.loads(pointer.body()) == [
        "software.amazon.payloadoffloading.PayloadS3Pointer",
        {"s3BucketName": "bucket-1", "s3Key": "sqs-payloads/celery/abc"},
    ]
    assert payloads.pointer_of(pointer.body()) == pointer
    assert payloads.pointer_of(pointer.body().encode()) == pointer
    legacy = json.dumps([payloads.LEGACY_POINTER_CLASS, {"s3BucketName": "b", "s3Key": "k"}])
    assert payloads.pointer_of(legacy) == payloads.Pointer("b", "k")


def test_pointer_of__other_bodies_are_not_pointers() -> None:
    """kombu's bodies (base64, JSON objects) and other lists are not pointers."""
    for body in ("eyJib2R5Ijoge319", '{"a": 1}', "[1, 2]", '["x", {}]', "[", "", None, b"\xff["):
        assert payloads.pointer_of(body) is None


def test_pointer_of__a_malformed_pointer_is_an_error() -> None:
    """A body naming the pointer class without bucket and key cannot be read: an error."""
    for where in ("k", {"s3Key": "k"}, {"s3BucketName": "", "s3Key": "k"}, None):
        with pytest.raises(payloads.PayloadError, match="S3 pointer"):
            payloads.pointer_of(json.dumps([payloads.POINTER_CLASS, where]))


def test_message_size__body_and_attributes_count() -> None:
    """Bytes of the UTF-8 body plus each attribute's name, type and value."""
    kwargs = {
        "MessageBody": "é" * 10,
        "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "12"}},
    }
    assert payloads.message_size(kwargs) == 20 + 1 + 6 + 2


def test_settings__threshold_lowers_the_limit_never_raises_it() -> None:
    """The queue's limit less the margin applies; a threshold only lowers it."""
    where = payloads.Settings("b", "p/", None, None, 10)
    assert where.limit_for(1_048_576) == 1_048_576 - payloads.MARGIN
    assert payloads.Settings("b", "p/", None, 1000, 10).limit_for(1_048_576) == 1000
    assert payloads.Settings("b", "p/", None, 2_000_000, 10).limit_for(2048) == 0


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("SQS_BROKER_LARGE_PAYLOAD_BUCKET", "Bad_Name", "must be an S3 bucket name"),
        ("SQS_BROKER_LARGE_PAYLOAD_PREFIX", "/abs", "must be a string of at most 512"),
        ("SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL", "s3.local", "must be an http(s):// URL"),
        ("SQS_BROKER_LARGE_PAYLOAD_THRESHOLD", 2_000_000, "from 0 to 1048576"),
        ("SQS_BROKER_LARGE_PAYLOAD_THRESHOLD", "1000", "from 0 to 1048576"),
        ("SQS_BROKER_LARGE_PAYLOAD_TIMEOUT", 0, "finite number >= 0.1"),
    ],
)
def test_conf__bad_settings_name_the_setting(setting: str, value: Any, message: str) -> None:
    """Each bad app setting raises ImproperlyConfigured naming it and the valid values."""
    name = setting.removeprefix("SQS_BROKER_")
    with override_settings(**{setting: value}), pytest.raises(ImproperlyConfigured) as caught:
        getattr(app_settings, name)
    assert setting in str(caught.value) and message in str(caught.value)


# --- S3 ---------------------------------------------------------------------------------


def test_store_fetch_delete__on_moto(bucket: str, s3: Any, unique: str) -> None:
    """A body is stored under prefix/queue/uuid, read back, and deleted in one request."""
    first = payloads.store("é" * 100, "work")
    second = payloads.store(b"bytes", "work")
    assert first.bucket == bucket and first.key.startswith("sqs-payloads/work/")
    assert first.key != second.key
    assert payloads.fetch(first) == "é" * 100
    assert sorted(keys(s3, bucket)) == sorted([first.key, second.key])
    assert payloads.delete([first, second]) == []
    assert keys(s3, bucket) == []


def test_fetch__refuses_another_bucket_without_a_request(bucket: str) -> None:
    """A pointer to another bucket is refused before any S3 call, permanently."""
    with override_settings(SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL="http://127.0.0.1:9"):
        payloads.forget_clients()
        with pytest.raises(payloads.PayloadError, match="names bucket 'other'") as caught:
            payloads.fetch(payloads.Pointer("other", "k"))
    assert caught.value.permanent


def test_delete__reports_what_it_could_not_delete(bucket: str, unique: str) -> None:
    """A bucket that does not exist is reported, not raised."""
    errors = payloads.delete([payloads.Pointer(f"{unique}-none", "k")])
    assert len(errors) == 1 and f"{unique}-none" in errors[0]


# --- against AWS's Python extended client -------------------------------------------------

EXTENDED_CLIENT = """
import json, sys
import boto3
import sqs_extended_client  # replaces boto3.Session: SQS clients resolve pointers

mode, url, bucket = sys.argv[1:4]
sqs = boto3.session.Session(region_name="us-east-1").client("sqs")
if mode == "receive":
    answer = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1)
    print(json.dumps([m["Body"] for m in answer.get("Messages", [])]))
else:
    sqs.large_payload_support = bucket
    sqs.always_through_s3 = True
    sqs.send_message(QueueUrl=url, MessageBody=sys.stdin.read())
"""


def extended_client(mode: str, url: str, bucket: str, stdin: str = "") -> str:
    """Run AWS's extended client in a subprocess; its standard output."""
    # Looked up, not imported: importing it would patch boto3 in this process too.
    if importlib.util.find_spec("sqs_extended_client") is None:
        pytest.skip("amazon-sqs-extended-client is not installed (pip install -e '.[dev]')")
    env = {**base_env(), "AWS_ENDPOINT_URL": os.environ["SQS_ENDPOINT_URL"]}
    done = subprocess.run(
        [sys.executable, "-c", EXTENDED_CLIENT, mode, url, bucket],
        input=stdin, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_extended_client__reads_what_we_offload(bucket: str, sqs: Any, unique: str) -> None:
    """AWS's client receives our pointer message as the body kombu would have sent."""
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    publishing.install(app)
    big = "q" * 2_000_000
    result = app.send_task(ADD, args=(big, "y"))
    url = sqs.get_queue_url(QueueName=f"{unique}-celery")["QueueUrl"]
    [body] = json.loads(extended_client("receive", url, bucket))
    envelope = json.loads(base64.b64decode(body))
    assert envelope["headers"]["id"] == result.id
    assert json.loads(base64.b64decode(envelope["body"]))[0] == [big, "y"]


def test_extended_client__we_read_what_it_offloads(bucket: str, sqs: Any, unique: str) -> None:
    """A message AWS's client stored in our bucket resolves to its body on the worker side."""
    url = sqs.create_queue(QueueName=unique)["QueueUrl"]
    body = base64.b64encode(b'{"body": "x", "properties": {}}').decode() * 1000
    extended_client("send", url, bucket, stdin=body)
    [message] = drain(sqs, url)
    assert message["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"] == str(len(body))
    assert worker_payloads.body_of(message) == body
    worker_payloads.acknowledged([message["ReceiptHandle"]])
    assert payloads.delete([]) == []


# --- the sweep ------------------------------------------------------------------------


def test_sweep__keeps_objects_while_a_message_could_point_to_them(
    bucket: str, s3: Any, sqs: Any, unique: str
) -> None:
    """The bound is the queue's retention plus its dead-letter queue's, plus an hour."""
    import time

    from tests.support.queues import queue_with_dlq

    queue_with_dlq(
        sqs, f"{unique}-a", f"{unique}-a-dlq", MessageRetentionPeriod="60"
    )  # the dead-letter queue keeps the default 4 days
    sqs.set_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName=f"{unique}-a-dlq")["QueueUrl"],
        Attributes={"MessageRetentionPeriod": "120"},
    )
    sqs.create_queue(QueueName=f"{unique}-b", Attributes={"MessageRetentionPeriod": "60"})
    a = payloads.store("a", f"{unique}-a")
    b = payloads.store("b", f"{unique}-b")
    gone = payloads.store("c", f"{unique}-gone")  # its queue does not exist (any more)
    now = time.time()

    early = sweep(now=now + 3000)
    assert (early.scanned, early.deleted_total, early.kept) == (3, 0, 3)
    assert early.bounds == {
        f"{unique}-a": 60 + 120 + 3600,
        f"{unique}-b": 60 + 3600,
        f"{unique}-gone": 2 * 1_209_600 + 3600,
    }
    dry = sweep(now=now + 3700, dry_run=True)
    assert dry.deleted == {f"{unique}-b": 1}
    assert sorted(keys(s3, bucket)) == sorted([a.key, b.key, gone.key])
    swept = sweep(now=now + 3900)
    assert swept.deleted == {f"{unique}-a": 1, f"{unique}-b": 1} and swept.errors == []
    assert keys(s3, bucket) == [gone.key]


def test_sweep__without_a_bucket_is_an_error() -> None:
    """Nothing to sweep without SQS_BROKER_LARGE_PAYLOAD_BUCKET: a clear error."""
    with pytest.raises(RuntimeError, match="SQS_BROKER_LARGE_PAYLOAD_BUCKET is not set"):
        sweep()


def test_sqs_payloads_sweep__command_output_and_exit_codes(bucket: str, s3: Any) -> None:
    """The command says what it deleted; without a bucket it exits 2."""
    from io import StringIO

    from django.core.management import CommandError, call_command

    payloads.store("x", "somequeue")
    out = StringIO()
    call_command("sqs_payloads", "sweep", "--older-than", "0", "--dry-run", stdout=out)
    assert out.getvalue() == "Would delete 1 of 1 stored bodies; kept 0.\n  somequeue: 1\n"
    assert len(keys(s3, bucket)) == 1
    out = StringIO()
    call_command("sqs_payloads", "sweep", "--older-than", "0", stdout=out)
    assert out.getvalue().startswith("Deleted 1 of 1 stored bodies; kept 0.")
    assert keys(s3, bucket) == []
    with (
        override_settings(SQS_BROKER_LARGE_PAYLOAD_BUCKET=None),
        pytest.raises(CommandError) as caught,
    ):
        call_command("sqs_payloads", "sweep", stdout=StringIO(), stderr=StringIO())
    assert caught.value.returncode == 2


def test_sweep_payloads__beat_task(bucket: str, s3: Any) -> None:
    """The beat task sweeps with the queues' bounds, and says when there is no bucket."""
    from sqs_broker.tasks import sweep_payloads

    payloads.store("x", "somequeue")
    assert sweep_payloads() == {"scanned": 1, "deleted": 0, "kept": 1, "errors": []}
    with override_settings(SQS_BROKER_LARGE_PAYLOAD_BUCKET=None):
        assert "not set" in sweep_payloads()["skipped"]


def test_sweep_payloads__scheduled_in_example_project(settings: Any) -> None:
    """The example project's beat schedule runs the registered sweep hourly."""
    from project.celery import app as project_app

    project_app.loader.import_default_modules()
    assert "sqs_broker.sweep_payloads" in project_app.tasks
    entry = settings.CELERY_BEAT_SCHEDULE["sqs-broker-sweep-payloads"]
    assert entry == {"task": "sqs_broker.sweep_payloads", "schedule": 3600.0}


# --- the objects awaiting deletion, and the faces ----------------------------------------


def test_list_stored__per_queue_bounded_and_says_when_capped(
    bucket: str, s3: Any, unique: str
) -> None:
    """Objects, bytes and the oldest per queue; a listing past its page cap says so."""
    from sqs_broker.payloads import bucket as payload_bucket

    payloads.store("a" * 10, f"{unique}-a")
    payloads.store("b" * 20, f"{unique}-a")
    payloads.store("c" * 5, f"{unique}-b")
    s3.put_object(Bucket=bucket, Key="sqs-payloads/bare-key", Body=b"x")  # no queue part
    s3.put_object(Bucket=bucket, Key="elsewhere/q/k", Body=b"y" * 99)  # outside the prefix

    whole = payload_bucket.list_stored(pages=3, page_size=2)
    assert whole is not None and (whole.listed, whole.capped, whole.error) == (4, False, None)
    figures = {q: (s.objects, s.bytes) for q, s in whole.by_queue.items()}
    assert figures == {f"{unique}-a": (2, 30), f"{unique}-b": (1, 5), "": (1, 1)}
    assert all(s.oldest is not None for s in whole.by_queue.values())

    capped = payload_bucket.list_stored(pages=1, page_size=2)
    assert capped is not None and (capped.listed, capped.capped) == (2, True)


def test_list_stored__a_failed_listing_is_an_error_not_an_exception(
    bucket: str, unique: str
) -> None:
    """A bucket that does not exist: the listing says why, with S3's code."""
    from sqs_broker.payloads import bucket as payload_bucket

    with override_settings(SQS_BROKER_LARGE_PAYLOAD_BUCKET=f"{unique}-missing"):
        found = payload_bucket.list_stored()
    assert found is not None and found.by_queue == {} and "NoSuchBucket" in (found.error or "")


def test_stored__reused_until_a_sweep_deletes(bucket: str, s3: Any, unique: str) -> None:
    """The faces reuse a listing for STORED_TTL seconds; a sweep that deleted drops it."""
    from sqs_broker.payloads import bucket as payload_bucket

    payloads.store("a", f"{unique}-a")
    first = payload_bucket.stored()
    assert first is not None and first.listed == 1
    payloads.store("b", f"{unique}-a")
    again = payload_bucket.stored()
    assert again is not None and again.listed == 1  # the cached listing
    sweep(older_than=0)
    assert keys(s3, bucket) == []
    fresh = payload_bucket.stored()
    assert fresh is not None and fresh.listed == 0


def test_payloads_data__no_bucket_nothing_shown() -> None:
    """Without a bucket the data has no payloads section, the metrics no payload family."""
    from sqs_broker import metrics, stats

    assert app_settings.LARGE_PAYLOAD_BUCKET is None
    tasks = [{"name": ADD, "queue": "q", "offloaded": 3, "offloaded_bytes": 9}]
    assert stats.payloads_data(None, tasks) is None
    collector = metrics.StatsCollector({"payloads": None, "task_totals": tasks})  # type: ignore[typeddict-item]
    assert list(collector.payloads()) == []


def test_payloads_data__offloaded_from_the_window_stored_from_the_listing(
    bucket: str,
) -> None:
    """Per queue: offloaded figures summed over tasks, stored ones from the listing, merged."""
    from sqs_broker import stats
    from sqs_broker.payloads.bucket import Stored, StoredQueue

    tasks = [
        {"name": ADD, "queue": "q1", "offloaded": 2, "offloaded_bytes": 7_000_000},
        {"name": "other", "queue": "q1", "offloaded": 1, "offloaded_bytes": 2_000_000},
        {"name": ADD, "queue": "q2", "offloaded": 0, "offloaded_bytes": 0},
    ]
    listing = Stored(bucket, "sqs-payloads/", 1000.0, {"q3": StoredQueue(2, 50, 900.0)}, 2)
    found = stats.payloads_data(listing, tasks, now=1000.0)
    assert found is not None
    assert [(r["queue"], r["offloaded"], r["offloaded_bytes"]) for r in found["queues"]] == [
        ("q1", 3, 9_000_000),
        ("q3", 0, 0),
    ]
    assert found["queues"][1]["stored_oldest_age"] == 100.0
    assert (found["stored_objects"], found["stored_bytes"], found["error"]) == (2, 50, None)
    unlisted = stats.payloads_data(None, tasks, now=1000.0)
    assert unlisted is not None and "not listed in time" in (unlisted["error"] or "")


@pytest.mark.django_db
def test_faces__no_bucket_no_payload_figures(client: Any, sqs: Any, unique: str) -> None:
    """Without a bucket: payloads is null in stats.json, no panel, no payload metric family."""
    from tests.support.users import user_with

    sqs.create_queue(QueueName=f"{unique}-celery")
    client.force_login(user_with("view_dashboard", username=f"viewer-{unique}"))
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=app):
        data = client.get("/sqs/stats.json").json()
        page = client.get("/admin/sqs_broker/dashboard/").content.decode()
        text = client.get("/sqs/metrics").content.decode()
    assert data["payloads"] is None and [q["name"] for q in data["queues"]] == [f"{unique}-celery"]
    assert 'id="sqs-queues"' in page and 'id="sqs-payloads"' not in page
    assert "sqs_broker_queue_messages{" in text
    assert "offloaded" not in text and "sqs_broker_payload_" not in text


def test_stored__any_failure_is_the_listing_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure outside S3's answers (credentials, say) is the listing's error, never raised."""
    from sqs_broker.payloads import bucket as payload_bucket

    def broken(app: Any = None) -> None:
        raise ImproperlyConfigured("the broker's credentials cannot be read")

    monkeypatch.setattr(payload_bucket, "list_stored", broken)
    with override_settings(SQS_BROKER_LARGE_PAYLOAD_BUCKET="some-bucket"):
        found = payload_bucket.stored()
    assert found is not None and found.by_queue == {}
    assert found.error == "ImproperlyConfigured: the broker's credentials cannot be read"
