"""Publishing: the ETA guard, native SQS delays, FIFO options and batch publishing."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from django.test import override_settings

import sqs_broker.cache
from sqs_broker import payloads, publishing
from sqs_broker.publishing import EtaGuardError, PublishError, publish_fifo, publish_many
from tests.support.env import base_env, make_app
from tests.support.proxy import Proxy
from tests.support.queues import drain

ADD = "project.demo.tasks.add"


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    sqs_broker.cache.reset()
    yield
    sqs_broker.cache.reset()


def sqs_module_client(proxy: Proxy) -> Any:
    """A boto3 SQS client through ``proxy``."""
    import boto3

    return boto3.client("sqs", endpoint_url=proxy.endpoint_url, region_name="us-east-1")


def guarded_app(env: dict[str, str], **conf: Any) -> Celery:
    app = make_app(env, **conf)
    publishing.install(app)
    return app


def queue_url(client: Any, name: str) -> str:
    return client.get_queue_url(QueueName=name)["QueueUrl"]


def receive_all(client: Any, url: str, expect: int, timeout: float = 10) -> list[dict[str, Any]]:
    """Every message of ``url``, in the order SQS hands them out, deleted as read."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < expect and time.monotonic() < deadline:
        answer = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            messages.append(message)
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def envelope(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(message["Body"]))


def task_args(message: dict[str, Any]) -> list[Any]:
    data = envelope(message)
    return json.loads(base64.b64decode(data["body"]))[0]


def counts(sqs_client: Any, url: str) -> dict[str, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    answer = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return {name: int(value) for name, value in answer.items()}


# --- the ETA guard ---------------------------------------------------------------


@override_settings(SQS_BROKER_NATIVE_DELAY=False)
def test_guard__refuses_a_countdown_longer_than_the_visibility_timeout(unique, sqs) -> None:
    """With the worker holding the whole delay, a countdown past the timeout is refused."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_TIMEOUT="2")
    app = guarded_app(env)
    with pytest.raises(EtaGuardError) as caught:
        app.send_task(ADD, args=(1, 2), countdown=5)
    text = str(caught.value)
    assert f"'{ADD}'" in text and "due in 5 s" in text and "visibility timeout of 2 s" in text
    assert f"'{unique}-celery'" in text
    # Nothing was published: the queue was not even created.
    assert not sqs.list_queues(QueueNamePrefix=unique).get("QueueUrls")
    # Within the limit it goes out.
    app.send_task(ADD, args=(1, 2), countdown=1)
    assert counts(sqs, queue_url(sqs, f"{unique}-celery"))["ApproximateNumberOfMessages"] == 1


def test_guard__native_delay_carries_up_to_900_seconds(unique, sqs) -> None:
    """A 600 s countdown is held by SQS (DelaySeconds), not by a worker, so it passes."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_TIMEOUT="2")
    app = guarded_app(env)
    app.send_task(ADD, args=(1, 2), countdown=600)
    url = queue_url(sqs, f"{unique}-celery")
    assert counts(sqs, url) == {
        "ApproximateNumberOfMessages": 0,
        "ApproximateNumberOfMessagesDelayed": 1,
    }
    # Beyond 900 s the rest is held by a worker: 905 s leaves 5 s > 2 s.
    with pytest.raises(EtaGuardError, match=r"SQS holds it the first 900 s"):
        app.send_task(ADD, args=(1, 2), countdown=905)


def test_guard__warn_mode_logs_and_publishes(unique, sqs, caplog) -> None:
    """SQS_BROKER_ETA_GUARD='warn' logs the same explanation and sends the task."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_TIMEOUT="2")
    app = guarded_app(env)
    with (
        override_settings(SQS_BROKER_ETA_GUARD="warn", SQS_BROKER_NATIVE_DELAY=False),
        caplog.at_level(logging.WARNING, logger="sqs_broker.publishing"),
    ):
        app.send_task(ADD, args=(1, 2), countdown=10)
    assert "would run more than once" in caplog.text
    assert counts(sqs, queue_url(sqs, f"{unique}-celery"))["ApproximateNumberOfMessages"] == 1


def test_guard__fifo_queue_takes_no_native_delay(unique, sqs) -> None:
    """On a FIFO queue the worker holds the whole delay, and the message says why."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_TIMEOUT="3")
    app = guarded_app(env, task_routes={ADD: {"queue": "ordered.fifo"}})
    with pytest.raises(EtaGuardError, match=r"FIFO queues take no per-message delay"):
        app.send_task(ADD, args=(1, 2), countdown=5)


def test_guard__reads_the_visibility_timeout_of_a_predefined_queue(unique, sqs) -> None:
    """A predefined queue's own VisibilityTimeout decides, not the transport option."""
    url = sqs.create_queue(QueueName=unique, Attributes={"VisibilityTimeout": "3"})["QueueUrl"]
    env = base_env(
        SQS_PREDEFINED_QUEUES=json.dumps({unique: {"url": url}}), SQS_VISIBILITY_TIMEOUT="600"
    )
    app = guarded_app(env, task_default_queue=unique)
    with override_settings(SQS_BROKER_NATIVE_DELAY=False), pytest.raises(EtaGuardError) as caught:
        app.send_task(ADD, args=(1, 2), countdown=4)
    assert caught.value.limit == 3
    with override_settings(SQS_BROKER_NATIVE_DELAY=False):
        app.send_task(ADD, args=(1, 2), countdown=2)
    assert counts(sqs, url)["ApproximateNumberOfMessages"] == 1


def test_guard__off_lets_everything_through(unique, sqs) -> None:
    """SQS_BROKER_ETA_GUARD='off' neither refuses nor warns."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_TIMEOUT="2")
    app = guarded_app(env)
    with override_settings(SQS_BROKER_ETA_GUARD="off", SQS_BROKER_NATIVE_DELAY=False):
        app.send_task(ADD, args=(1, 2), countdown=30)
    assert counts(sqs, queue_url(sqs, f"{unique}-celery"))["ApproximateNumberOfMessages"] == 1


@pytest.mark.usefixtures("sqs_endpoint")
def test_install__is_idempotent_and_wraps_a_live_app(unique) -> None:
    """install() before the first publish swaps the AMQP class; after it, wraps the sender."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_TIMEOUT="2")
    fresh = make_app(env)
    publishing.install(fresh)
    publishing.install(fresh)
    assert isinstance(fresh.amqp, publishing.GuardedAMQP)
    live = make_app(env)
    sender = live.amqp.send_task_message
    publishing.install(live)
    publishing.install(live)
    assert live.amqp.send_task_message is not sender
    assert live.amqp.send_task_message.sqs_broker_guarded
    with override_settings(SQS_BROKER_NATIVE_DELAY=False), pytest.raises(EtaGuardError):
        live.send_task(ADD, args=(1, 2), countdown=5)


def executions(output: str, task_id: str) -> int:
    return len(re.findall(rf"Task {re.escape(ADD)}\[{task_id}\] succeeded", output))


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_guard__the_duplicate_it_prevents(start_worker, unique, sqs) -> None:
    """A worker-held countdown past the timeout runs more than once; a native delay runs once.

    Without the visibility lease (which extends a held message, and so prevents it too).
    """
    env = base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_VISIBILITY_TIMEOUT="2",
        SQS_WAIT_TIME_SECONDS="1",
        SQS_VISIBILITY_LEASE="0",
    )
    worker = start_worker(env)
    app = guarded_app(env)
    # A countdown long enough that the worker holds the message past its visibility timeout
    # even when its first receive comes seconds late on a loaded machine.
    with override_settings(SQS_BROKER_ETA_GUARD="off", SQS_BROKER_NATIVE_DELAY=False):
        held = app.send_task(ADD, args=(1, 1), countdown=12)
    native = app.send_task(ADD, args=(2, 2), countdown=5)
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        output = worker.output()
        if executions(output, held.id) >= 2 and executions(output, native.id) >= 1:
            break
        time.sleep(0.5)
    time.sleep(3)  # longer than the visibility timeout: a second delivery would show by now
    output = worker.output()
    assert executions(output, held.id) >= 2, output
    assert executions(output, native.id) == 1, output


# --- FIFO ------------------------------------------------------------------------


def test_fifo__same_group_in_order_and_duplicates_dropped(unique, sqs) -> None:
    """Same-group tasks come out in publish order; a second publish of one task id is dropped."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-")
    app = guarded_app(env, task_routes={ADD: {"queue": "ordered.fifo"}})
    first = publish_fifo(app.signature(ADD, args=(0, 0)), "g1")
    for n in range(1, 13):
        publish_fifo(app.signature(ADD, args=(n, 0)), "g1")
    again = publish_fifo(app.signature(ADD, args=(0, 0)), "g1", task_id=first.id)
    assert again.id == first.id
    url = queue_url(sqs, f"{unique}-ordered.fifo")
    messages = receive_all(sqs, url, expect=14, timeout=4)
    assert [task_args(m)[0] for m in messages] == list(range(13))
    assert envelope(messages[0])["properties"]["MessageGroupId"] == "g1"


def test_fifo__options_validate_ids() -> None:
    """Group and deduplication ids outside SQS's rules are refused before publishing."""
    options = publishing.fifo_options("orders-42", task_id="abc")
    assert options == {
        "task_id": "abc",
        "MessageGroupId": "orders-42",
        "MessageDeduplicationId": "abc",
    }
    with pytest.raises(ValueError, match="MessageGroupId may hold only"):
        publishing.fifo_options("caf\u00e9")
    with pytest.raises(ValueError, match="1 to 128 characters"):
        publishing.fifo_options("g", deduplication_id="x" * 129)


# --- batches ---------------------------------------------------------------------


@pytest.fixture
def proxy(sqs_endpoint: str) -> Iterator[Proxy]:
    with Proxy.to(sqs_endpoint) as running:
        yield running


def test_publish_many__ten_per_request_and_same_format_as_delay(unique, sqs, proxy) -> None:
    """25 tasks take 3 SendMessageBatch requests; each message is shaped like .delay()'s."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
    app = guarded_app(env)
    app.send_task(ADD, args=(-1, -1))  # warm: queue created, connection pooled
    proxy.reset_counts()
    results = publish_many([app.signature(ADD, args=(n, n)) for n in range(25)], app=app)
    assert proxy.reset_counts() == {"SendMessageBatch": 3}
    url = queue_url(sqs, f"{unique}-celery")
    messages = receive_all(sqs, url, expect=26)
    by_args = {tuple(task_args(m)): envelope(m) for m in messages}
    assert len(by_args) == 26
    assert [by_args[(n, n)]["headers"]["id"] for n in range(25)] == [r.id for r in results]
    single, batched = by_args[(-1, -1)], by_args[(7, 7)]
    assert single.keys() == batched.keys()
    assert single["headers"].keys() == batched["headers"].keys()
    assert single["properties"].keys() == batched["properties"].keys()
    for key in ("content-type", "content-encoding"):
        assert single[key] == batched[key]
    assert single["properties"]["delivery_info"] == batched["properties"]["delivery_info"]


def test_publish_many__own_timeouts_not_the_dashboards(unique, sqs, proxy) -> None:
    """A slow SQS that the dashboard's 1 s read timeout gives up on still takes the batch."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
    app = guarded_app(env)
    app.send_task(ADD, args=(-1, -1))  # warm: queue created, connection pooled
    proxy.delay = 1.5
    with override_settings(SQS_BROKER_READ_TIMEOUT=1, SQS_BROKER_PUBLISH_READ_TIMEOUT=10):
        results = publish_many([app.signature(ADD, args=(n, n)) for n in range(3)], app=app)
    proxy.delay = 0
    assert len(receive_all(sqs, queue_url(sqs, f"{unique}-celery"), expect=4)) == 4
    assert len(results) == 3


def test_publish_many__routes_each_task_and_carries_delays(unique, sqs) -> None:
    """task_routes, queue= and countdowns are honoured per signature."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_TIMEOUT="30")
    app = guarded_app(env, task_routes={"project.demo.tasks.slow": {"queue": "slow"}})
    publish_many(
        [
            app.signature(ADD, args=(1, 1)),
            app.signature("project.demo.tasks.slow", args=(1,)),
            app.signature(ADD, args=(2, 2), queue="other"),
            app.signature(ADD, args=(3, 3), countdown=120),
        ],
        app=app,
    )
    assert counts(sqs, queue_url(sqs, f"{unique}-celery")) == {
        "ApproximateNumberOfMessages": 1,
        "ApproximateNumberOfMessagesDelayed": 1,
    }
    assert counts(sqs, queue_url(sqs, f"{unique}-slow"))["ApproximateNumberOfMessages"] == 1
    assert counts(sqs, queue_url(sqs, f"{unique}-other"))["ApproximateNumberOfMessages"] == 1


def test_publish_many__predefined_queue(unique, sqs) -> None:
    """A predefined queue (kombu never creates or lists it) gets its batch by its URL."""
    url = sqs.create_queue(QueueName=unique)["QueueUrl"]
    env = base_env(SQS_PREDEFINED_QUEUES=json.dumps({unique: {"url": url}}))
    app = guarded_app(env, task_default_queue=unique)
    publish_many([app.signature(ADD, args=(n, n)) for n in range(12)], app=app)
    assert sorted(task_args(m)[0] for m in receive_all(sqs, url, expect=12)) == list(range(12))


def test_publish_many__fifo_group_keeps_order(unique, sqs) -> None:
    """group= puts every task in one message group, in order, deduplicated by task id."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-")
    app = guarded_app(env, task_routes={ADD: {"queue": "ordered.fifo"}})
    signatures = [app.signature(ADD, args=(n, 0)) for n in range(23)]
    results = publish_many(signatures, app=app, group="batch")
    publish_many([app.signature(ADD, args=(0, 0), task_id=results[0].id)], app=app, group="batch")
    messages = receive_all(sqs, queue_url(sqs, f"{unique}-ordered.fifo"), expect=24, timeout=4)
    assert [task_args(m)[0] for m in messages] == list(range(23))


def test_publish_many__guard_refusal_publishes_nothing(unique, sqs) -> None:
    """One refused task stops the whole batch before anything is sent."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_TIMEOUT="2")
    app = guarded_app(env)
    app.send_task(ADD, args=(0, 0))
    url = queue_url(sqs, f"{unique}-celery")
    receive_all(sqs, url, expect=1)
    signatures = [app.signature(ADD, args=(n, n)) for n in range(5)]
    signatures.append(app.signature(ADD, args=(9, 9), countdown=1000))
    with pytest.raises(EtaGuardError):
        publish_many(signatures, app=app)
    assert counts(sqs, url)["ApproximateNumberOfMessages"] == 0


def test_publish_many__failed_tasks_are_retried_then_named(unique, sqs, proxy) -> None:
    """A lasting outage raises PublishError naming every task id; a short one is retried."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
    app = guarded_app(env)
    app.send_task(ADD, args=(0, 0))  # the queue URL is known from here on
    proxy.cut()
    with pytest.raises(PublishError) as caught:
        publish_many([app.signature(ADD, args=(n, n)) for n in range(12)], app=app, attempts=2)
    assert set(caught.value.failed) == {r.id for r in caught.value.results}
    assert len(caught.value.failed) == 12
    assert "12 of 12 tasks were not published" in str(caught.value)

    import threading

    threading.Timer(0.3, proxy.restore).start()
    results = publish_many([app.signature(ADD, args=(n, n)) for n in range(12)], app=app)
    messages = receive_all(sqs, queue_url(sqs, f"{unique}-celery"), expect=13)
    ids = {envelope(m)["headers"]["id"] for m in messages}
    assert {r.id for r in results} <= ids


def test_send_batch__sender_faults_are_reported_not_retried(unique, sqs) -> None:
    """SQS's per-entry refusal (a real partial failure) names the entry; the rest is sent."""
    url = sqs.create_queue(QueueName=unique)["QueueUrl"]
    entries = [
        publishing._Entry(None, {"QueueUrl": url, "MessageBody": f"m{n}"}, n) for n in range(3)
    ]
    entries[1].kwargs["DelaySeconds"] = 901
    failed = publishing._send_batch(sqs, url, entries, attempts=3)
    assert list(failed) == [1] and "DelaySeconds" in failed[1]
    assert counts(sqs, url)["ApproximateNumberOfMessages"] == 2


def test_send_all__concurrent_but_each_fifo_group_in_order(unique, sqs, proxy) -> None:
    """Two FIFO groups' batches overlap; within a group each batch waits for the one before."""
    url = sqs.create_queue(
        QueueName=f"{unique}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    entries = [
        publishing._Entry(
            None, {"QueueUrl": url, "MessageBody": f"{g}:{n}", "MessageGroupId": g}, n
        )
        for g in ("a", "b")
        for n in range(30)
    ]
    client = sqs_module_client(proxy)
    jobs = [(client, url, batch) for batch in publishing._batches(entries, 262_144)]
    proxy.delay = 0.2
    started = time.monotonic()
    refused = publishing._send_all(jobs, attempts=1, concurrency=8)
    took = time.monotonic() - started
    assert refused == [{}] * 6
    # Three rounds of two batches at once; one after another would take six.
    assert proxy.connections >= 2
    assert took < 5 * 0.2 * 2, took
    bodies = [m["Body"] for m in receive_all(sqs, url, expect=60)]
    for group in ("a", "b"):
        assert [b for b in bodies if b.startswith(group)] == [f"{group}:{n}" for n in range(30)]


def test_publish_many__concurrency_is_checked() -> None:
    """A concurrency outside 1-100 is refused with the range."""
    with pytest.raises(ValueError, match="concurrency must be from 1 to 100"):
        publish_many([object()], concurrency=0)  # type: ignore[list-item]


def test_batches__ten_entries_and_the_byte_budget() -> None:
    """A batch ends at ten entries or before its bodies and attributes pass the budget."""

    def entry(size: int, attribute: str = "") -> publishing._Entry:
        kwargs: dict[str, Any] = {"QueueUrl": "u", "MessageBody": "x" * size}
        if attribute:
            kwargs["MessageAttributes"] = {"a": {"DataType": "String", "StringValue": attribute}}
        return publishing._Entry(None, kwargs, 0)

    sizes = [[len(e.kwargs["MessageBody"]) for e in b] for b in publishing._batches(
        [entry(400), entry(400), entry(400), entry(100), entry(1000)], 1024
    )]  # fmt: skip
    assert sizes == [[400, 400], [400, 100], [1000]]
    # Attributes count: name, type and value.
    assert entry(10, "v" * 20).size == 10 + len("a") + len("String") + 20
    many = list(publishing._batches([entry(1) for _ in range(21)], 1024))
    assert [len(b) for b in many] == [10, 10, 1]


def test_publish_many__needs_the_sqs_transport() -> None:
    """Another broker gets a clear error instead of a silent one-by-one publish."""
    app = Celery("memory", broker="memory://", set_as_current=False)
    with pytest.raises(Exception, match="needs the SQS transport"):
        publish_many([app.signature(ADD, args=(1, 1))], app=app)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_publish_many__an_unmodified_worker_runs_them(start_worker, unique) -> None:
    """A stock `celery worker` consumes batch-published tasks like .delay() ones."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_WAIT_TIME_SECONDS="1")
    start_worker(env)
    app = guarded_app(env, result_backend="django-db")
    results = publish_many([app.signature(ADD, args=(n, 1)) for n in range(15)], app=app)
    assert [r.get(timeout=60) for r in results] == [n + 1 for n in range(15)]


def test_held_by_worker__only_the_part_beyond_sqs_delay_counts() -> None:
    """Standard queues subtract up to 900 s; FIFO queues and native delays off subtract nothing."""
    assert publishing.held_by_worker(600, fifo=False) == 0
    assert publishing.held_by_worker(7200, fifo=False) == 6300
    assert publishing.held_by_worker(600, fifo=True) == 600
    with override_settings(SQS_BROKER_NATIVE_DELAY=False):
        assert publishing.held_by_worker(600, fifo=False) == 600


# --- large messages: refused without a bucket, offloaded to S3 with one -----------------

#: A task argument over SQS's 1 MiB: three million characters.
BIG = "x" * 3_000_000


def s3_objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    """Every object of ``bucket``: key -> content."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def publish_big(app: Celery, path: str, args: tuple[Any, ...] = (BIG, "y"), **options: Any) -> Any:
    """Publish ``ADD`` with ``args`` by ``path``: delay, apply_async, send_task, publish_many."""
    if path == "send_task":
        return app.send_task(ADD, args=args, **options)
    if path == "publish_many":
        return publish_many([app.signature(ADD, args=args, **options)], app=app)[0]
    task = app.tasks[ADD] if ADD in app.tasks else app.task(name=ADD)(_add)
    if path == "delay":
        return task.delay(*args)
    return task.apply_async(args=args, **options)


def _add(x: Any, y: Any) -> Any:
    return x + y


PATHS = ["delay", "apply_async", "send_task", "publish_many"]


@pytest.mark.parametrize("path", PATHS)
def test_large_message__refused_without_a_bucket(unique, sqs, path) -> None:
    """Over 1 MiB without a bucket: our error names task, size, limit and setting; nothing sent."""
    app = guarded_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with pytest.raises(payloads.MessageTooLarge) as caught:
        publish_big(app, path)
    text = str(caught.value)
    assert f"Task '{ADD}'" in text and f"queue '{unique}-celery'" in text
    assert "MaximumMessageSize of 1,048,576 bytes" in text
    assert caught.value.size > 4_000_000  # base64 of the JSON envelope
    assert f"{caught.value.size:,} bytes" in text
    assert "SQS_BROKER_LARGE_PAYLOAD_BUCKET" in text and "SQS_LARGE_PAYLOAD_BUCKET" in text
    url = queue_url(sqs, f"{unique}-celery")
    assert counts(sqs, url)["ApproximateNumberOfMessages"] == 0
    publish_big(app, path, args=(1, 2))  # a small one still goes out
    assert counts(sqs, url)["ApproximateNumberOfMessages"] == 1


def test_large_message__the_queues_own_limit_counts(unique, sqs) -> None:
    """A queue whose MaximumMessageSize is 2 KiB refuses a 3 KB message with its own limit."""
    sqs.create_queue(QueueName=f"{unique}-celery", Attributes={"MaximumMessageSize": "2048"})
    app = guarded_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with pytest.raises(payloads.MessageTooLarge, match="MaximumMessageSize of 2,048 bytes"):
        app.send_task(ADD, args=("z" * 3000, "y"))


def test_large_message__a_limit_lowered_later_is_still_our_error(unique, sqs) -> None:
    """SQS refusing a message the cached limit let through raises ours, not botocore's."""
    app = guarded_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    app.send_task(ADD, args=("z" * 5000, "y"))  # the 1 MiB limit is now cached
    url = queue_url(sqs, f"{unique}-celery")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "4096"})
    with pytest.raises(payloads.MessageTooLarge, match="MaximumMessageSize of 4,096 bytes"):
        app.send_task(ADD, args=("z" * 5000, "y"))


def test_large_message__limit_read_once_per_queue(unique, sqs, proxy) -> None:
    """Publishing large-ish messages costs one GetQueueAttributes per queue, not per message."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
    app = guarded_app(env)
    app.send_task(ADD, args=(1, 2))  # warm: queue created, connection pooled; no size lookup
    proxy.reset_counts()
    for _ in range(5):
        app.send_task(ADD, args=("z" * 10_000, "y"))
    calls = proxy.reset_counts()
    assert calls.get("GetQueueAttributes") == 1 and calls["SendMessage"] == 5, calls


@pytest.mark.parametrize("path", PATHS)
def test_large_message__offloaded_to_s3_with_a_bucket(unique, sqs, sqs_endpoint, bucket, path):
    """With a bucket the body goes to S3; SQS carries the extended clients' pointer."""
    from sqs_broker import payloads

    app = guarded_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    result = publish_big(app, path)
    [message] = drain(sqs, queue_url(sqs, f"{unique}-celery"))
    kind, where = json.loads(message["Body"])
    assert kind == "software.amazon.payloadoffloading.PayloadS3Pointer"
    assert where["s3BucketName"] == bucket
    assert re.fullmatch(rf"sqs-payloads/{unique}-celery/[0-9a-f]{{32}}", where["s3Key"])
    stored = s3_objects(sqs_endpoint, bucket)
    assert list(stored) == [where["s3Key"]]
    size = message["MessageAttributes"][payloads.SIZE_ATTRIBUTE]
    assert size == {"DataType": "Number", "StringValue": str(len(stored[where["s3Key"]]))}
    body = {"Body": stored[where["s3Key"]].decode()}
    assert task_args(body) == [BIG, "y"]
    assert envelope(body)["headers"]["id"] == result.id


def test_large_message__threshold_lowers_the_limit(unique, sqs, sqs_endpoint, bucket) -> None:
    """SQS_BROKER_LARGE_PAYLOAD_THRESHOLD offloads smaller messages; smaller still stay."""
    app = guarded_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_LARGE_PAYLOAD_THRESHOLD=20_000):
        app.send_task(ADD, args=("z" * 30_000, "y"))
        app.send_task(ADD, args=("z" * 100, "y"))
    bodies = sorted(m["Body"][:2] for m in drain(sqs, queue_url(sqs, f"{unique}-celery")))
    assert bodies[0] == '["' and bodies[1] != '["'
    assert len(s3_objects(sqs_endpoint, bucket)) == 1


def test_large_message__offloaded_with_eta_and_fifo(unique, sqs, sqs_endpoint, bucket) -> None:
    """A countdown keeps its SQS delay; a FIFO message keeps its group and deduplication id."""
    app = guarded_app(
        base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"), task_routes={ADD: {"queue": "big.fifo"}}
    )
    app.send_task(ADD, args=(BIG, "y"), queue="celery", countdown=60)
    url = queue_url(sqs, f"{unique}-celery")
    assert counts(sqs, url)["ApproximateNumberOfMessagesDelayed"] == 1
    publish_fifo(app.signature(ADD, args=(BIG, "y")), "g1", task_id="fixed-id")
    publish_fifo(app.signature(ADD, args=(BIG, "y")), "g1", task_id="fixed-id")  # dropped
    [message] = drain(sqs, queue_url(sqs, f"{unique}-big.fifo"))
    assert message["Attributes"]["MessageGroupId"] == "g1"
    assert message["Attributes"]["MessageDeduplicationId"] == "fixed-id"
    assert json.loads(message["Body"])[1]["s3BucketName"] == bucket
    # Three bodies stored: the delayed one and both FIFO sends (the second was dropped by SQS
    # and is left to the sweep).
    assert len(s3_objects(sqs_endpoint, bucket)) == 3


def test_publish_many__refusal_deletes_what_it_stored(unique, sqs, sqs_endpoint, bucket) -> None:
    """A batch stopped by the guard sends nothing and leaves nothing in the bucket."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_TIMEOUT="2")
    app = guarded_app(env)
    signatures = [app.signature(ADD, args=(BIG, n)) for n in range(2)]
    signatures.append(app.signature(ADD, args=(9, 9), countdown=1000))
    with pytest.raises(EtaGuardError):
        publish_many(signatures, app=app)
    assert s3_objects(sqs_endpoint, bucket) == {}
    assert counts(sqs, queue_url(sqs, f"{unique}-celery"))["ApproximateNumberOfMessages"] == 0
