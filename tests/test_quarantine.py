"""Poison moved aside: copies that keep attributes and groups, fit, and are made once.

The first tests build copies without SQS; the next move messages on the moto
server through :class:`sqs_broker.transport.quarantine.Quarantine`; the last
start real ``celery -A project worker`` subprocesses: a Hypothesis-drawn batch
of bad task messages among good tasks, unregistered tasks and bad ETAs with and
without a dead-letter queue, a body at the size limit, and a plain kombu
consumer beside Celery's on the same transport.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sqs_broker.limits import MAX_MESSAGE_ATTRIBUTES
from sqs_broker.transport import poison
from sqs_broker.transport.quarantine import (
    MESSAGE_ID,
    REASON,
    SHORT,
    SOURCE,
    Quarantine,
    Target,
    copy_request,
    message_size,
)
from tests.support.env import base_env, make_app
from tests.support.queues import drain, queue_with_dlq
from tests.test_faults import JOURNAL, depth, runs, wait_for, with_worker
from tests.test_poison import drawn_header
from tests.test_transport import malformed, template  # noqa: F401 - template is a fixture

# --- the copy, without SQS ------------------------------------------------------------


def received(body: str = "x", **extra: Any) -> dict[str, Any]:
    """A message as ReceiveMessage returns it."""
    message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": body, "Attributes": {}}
    message.update(extra)
    return message


STANDARD = Target("http://sqs/1/q-quarantine", "quarantine", 262144, fifo=False)


def test_copy_request__keeps_attributes_and_adds_the_reason() -> None:
    """The original attributes as SendMessage takes them, beside reason, source and id."""
    attributes = {
        "trace": {"DataType": "String", "StringValue": "abc", "StringListValues": []},
        "n": {"DataType": "Number", "StringValue": "7", "BinaryListValues": []},
    }
    request, carried = copy_request(
        received(MessageAttributes=attributes), STANDARD, "q", "bad eta"
    )
    assert request is not None and carried == "attributes"
    assert request["MessageAttributes"] == {
        "trace": {"DataType": "String", "StringValue": "abc"},
        "n": {"DataType": "Number", "StringValue": "7"},
        REASON: {"DataType": "String", "StringValue": "bad eta"},
        SOURCE: {"DataType": "String", "StringValue": "q"},
        MESSAGE_ID: {"DataType": "String", "StringValue": "m-1"},
    }
    assert "MessageGroupId" not in request


def test_copy_request__fifo_keeps_the_group() -> None:
    """A FIFO copy has the original's group, and its message id for deduplication."""
    target = Target("http://sqs/1/q-quarantine.fifo", "quarantine", 262144, fifo=True)
    message = received(Attributes={"MessageGroupId": "orders-42"})
    request, _ = copy_request(message, target, "q.fifo", "r")
    assert request is not None
    assert (request["MessageGroupId"], request["MessageDeduplicationId"]) == ("orders-42", "m-1")


@pytest.mark.parametrize(
    ("spare", "carried"),
    [(400, "attributes"), (60, "a short attribute"), (20, "the log only"), (-1, None)],
)
def test_copy_request__near_the_size_limit(spare: int, carried: str | None) -> None:
    """A body ``spare`` bytes under the limit: the reason shrinks to fit, or the copy is refused."""
    target = Target("http://sqs/1/dlq", "dead-letter", 2048, fifo=False)
    original = {"a": {"DataType": "String", "StringValue": "v"}}
    body = "b" * (2048 - message_size("", original) - spare)
    request, how = copy_request(
        received(body, MessageAttributes=original), target, "app-q", "x" * 200
    )
    if carried is None:
        assert request is None
        return
    assert request is not None and how == carried
    attributes = request["MessageAttributes"]
    assert attributes["a"] == original["a"]  # never dropped
    assert message_size(request["MessageBody"], attributes) <= 2048
    assert (SHORT in attributes) == (carried == "a short attribute")


def test_copy_request__ten_attributes_leave_room_for_one_at_most() -> None:
    """SQS takes ten attributes: nine originals get the short one, ten get none."""
    for count, expected in ((9, "a short attribute"), (10, "the log only")):
        original = {f"k{n}": {"DataType": "String", "StringValue": "v"} for n in range(count)}
        request, how = copy_request(received(MessageAttributes=original), STANDARD, "q", "r" * 20)
        assert request is not None and how == expected
        assert len(request["MessageAttributes"]) <= MAX_MESSAGE_ATTRIBUTES
        assert set(original) <= set(request["MessageAttributes"])


def test_memory__bounded_oldest_forgotten() -> None:
    """The memory of message ids holds at most ``memory`` ids; the oldest go first."""
    mover = Quarantine(lambda _queue: None)
    mover.memory = 3
    for n in range(5):
        mover._count("q", f"m{n}")
    assert [mover.state(f"m{n}") for n in range(5)] == [None, None, "counted", "counted", "counted"]
    assert mover.poisoned == 5


def test_contract_of__each_consumer_its_own() -> None:
    """A plain kombu Consumer: its accept, no task checks; a named or Celery-handled one: tasks."""
    from kombu import Connection, Consumer

    from sqs_broker.transport.poison import KOMBU_CONTRACT, contract_of

    with Connection("memory://") as connection:
        plain = Consumer(connection.default_channel, accept=["text/plain"])
        named = Consumer(connection.default_channel, accept=["json"])
        assert contract_of(plain._receive_callback, set()) == poison.Contract(
            {"text/plain"}, tasks=False
        )
        assert contract_of(Consumer(connection.default_channel)._receive_callback, set()) == (
            poison.Contract(None, tasks=False)
        )
        assert contract_of(named._receive_callback, {named}).tasks
        assert contract_of(lambda message: None, {named}) == KOMBU_CONTRACT


def test_contract__celery_task_handler_recognised() -> None:
    """Celery's task handler lives where the channel looks for it (a Celery internal)."""
    from types import SimpleNamespace

    from celery.worker.consumer.consumer import Consumer

    from sqs_broker.transport.poison import CELERY_TASK_HANDLER

    fake = SimpleNamespace(
        strategies={},
        on_unknown_message=None,
        on_unknown_task=None,
        on_invalid_task=None,
        on_task_message=None,
        call_soon_ack=None,
    )
    handler = Consumer.create_task_handler(fake)
    assert handler.__module__ == CELERY_TASK_HANDLER


# --- moving, on the moto server ----------------------------------------------------------


def sent_and_received(sqs: Any, url: str, body: str, **kwargs: Any) -> dict[str, Any]:
    sqs.send_message(QueueUrl=url, MessageBody=body, **kwargs)
    (message,) = sqs.receive_message(
        QueueUrl=url,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
        VisibilityTimeout=0,
    )["Messages"]
    return message


def test_move__to_the_quarantine_once_counted_once(sqs: Any, unique: str) -> None:
    """Moved, deleted, counted; the same message again (a lost delete) is not copied twice."""
    url = sqs.create_queue(QueueName=f"{unique}-q")["QueueUrl"]
    counted: list[tuple[str, str | None]] = []
    mover = Quarantine(lambda _queue: sqs)
    mover.on_poison = lambda queue, task: counted.append((queue, task))
    attributes = {"trace": {"DataType": "String", "StringValue": "t-1"}}
    message = sent_and_received(sqs, url, "not json", MessageAttributes=attributes)
    assert mover.move(f"{unique}-q", url, message, "the SQS body is not JSON")
    again = sent_and_received(sqs, url, "not json")  # a different message, same body
    assert mover.move(f"{unique}-q", url, {**message, "ReceiptHandle": again["ReceiptHandle"]}, "r")
    target = sqs.get_queue_url(QueueName=f"{unique}-q-quarantine")["QueueUrl"]
    moved = drain(sqs, target)
    assert len(moved) == 1, moved
    assert moved[0]["MessageAttributes"]["trace"]["StringValue"] == "t-1"
    assert moved[0]["MessageAttributes"][REASON]["StringValue"] == "the SQS body is not JSON"
    assert (counted, mover.poisoned) == ([(f"{unique}-q", None)], 1)
    assert depth(sqs, f"{unique}-q") == (0, 0)


def test_move__names_the_task_and_id_never_the_arguments(
    sqs: Any,
    unique: str,
    caplog: Any,
    template: dict[str, Any],  # noqa: F811 - the fixture imported above
) -> None:
    """An envelope that names a task: counted under it, logged with its name and id, not as
    base64 nor with its arguments; a body with no envelope: counted unnamed, its first bytes."""
    from tests.test_transport import _unwrap

    url = sqs.create_queue(QueueName=f"{unique}-q")["QueueUrl"]
    counted: list[tuple[str, str | None]] = []
    mover = Quarantine(lambda _queue: sqs)
    mover.on_poison = lambda queue, task: counted.append((queue, task))
    mover.identify = lambda body: poison.identify(body, _unwrap)
    canary = "argument-canary-9f3e"
    envelope = copy.deepcopy(template)
    envelope["headers"].update(
        {"task": "app.tasks.forgotten", "id": "task-id-1", "argsrepr": f"('{canary}',)"}
    )
    wrapped = base64.b64encode(json.dumps(envelope).encode()).decode()
    caplog.set_level(logging.ERROR, logger="sqs_broker.transport.quarantine")
    message = sent_and_received(sqs, url, wrapped)
    assert mover.move(f"{unique}-q", url, message, "no task named 'app.tasks.forgotten'")
    plain = sent_and_received(sqs, url, "plain words")
    assert mover.move(f"{unique}-q", url, plain, "the SQS body is not a JSON kombu envelope")
    assert counted == [(f"{unique}-q", "app.tasks.forgotten"), (f"{unique}-q", None)]
    named, unnamed = [r.getMessage() for r in caplog.records]
    assert named.endswith("; task 'app.tasks.forgotten', id 'task-id-1'"), named
    assert wrapped[:12] not in named and canary not in named and "first bytes" not in named
    assert unnamed.endswith("; first bytes: 'plain words'"), unnamed


def test_move__straight_to_the_dead_letter_queue(sqs: Any, unique: str) -> None:
    """A queue with a redrive policy: the copy goes to its DLQ at once, no quarantine made."""
    url, dlq = queue_with_dlq(sqs, f"{unique}-q", f"{unique}-dlq", max_receive_count=5)
    message = sent_and_received(sqs, url, "poison")
    assert Quarantine(lambda _queue: sqs).move(f"{unique}-q", url, message, "r")
    assert [m["Body"] for m in drain(sqs, dlq)] == ["poison"]
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=f"{unique}-q-quarantine")


def test_move__too_large_for_the_target_left_logged_and_counted_once(
    sqs: Any, unique: str, caplog: Any
) -> None:
    """A DLQ smaller than the body: left in the queue, one error line, counted once; moved
    when the DLQ takes it later."""
    url, dlq = queue_with_dlq(sqs, f"{unique}-q", f"{unique}-dlq", MaximumMessageSize="4096")
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"MaximumMessageSize": "1024"})
    mover = Quarantine(lambda _queue: sqs)
    body = "p" * 2000
    message = sent_and_received(sqs, url, body)
    with caplog.at_level(logging.DEBUG, logger="sqs_broker.transport"):
        assert not mover.move(f"{unique}-q", url, message, "r")
        assert not mover.move(f"{unique}-q", url, message, "r")  # received again later
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "larger than dead-letter queue" in errors[0], errors
    assert mover.poisoned == 1
    assert drain(sqs, dlq) == []
    assert sum(depth(sqs, f"{unique}-q")) == 1  # not deleted
    # The DLQ takes larger messages now: once its size is read again, the message moves.
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"MaximumMessageSize": "4096"})
    mover.target_ttl = 0
    assert mover.move(f"{unique}-q", url, message, "r")
    assert [m["Body"] for m in drain(sqs, dlq)] == [body]
    assert (mover.poisoned, depth(sqs, f"{unique}-q")) == (1, (0, 0))


def test_move__copy_failure_leaves_the_original(sqs_endpoint: str, sqs: Any, unique: str) -> None:
    """SQS refuses the copy: the original stays; once the copy goes through, it moves."""
    url = sqs.create_queue(QueueName=f"{unique}-q")["QueueUrl"]
    message = sent_and_received(sqs, url, "poison")
    closed = boto3.client("sqs", endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    clients = [closed, sqs]
    mover = Quarantine(lambda _queue: clients[0])
    assert not mover.move(f"{unique}-q", url, message, "r")
    assert depth(sqs, f"{unique}-q") != (0, 0)
    clients.pop(0)
    assert mover.move(f"{unique}-q", url, message, "r")
    assert mover.poisoned == 1
    assert depth(sqs, f"{unique}-q") == (0, 0)


def test_reject__requeue_is_kombus_and_without_requeue_moves(sqs: Any, unique: str) -> None:
    """On the project's channel (no event loop): requeue=True leaves the message in its queue
    as kombu does; requeue=False copies it to the quarantine before deleting it."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_WAIT_TIME_SECONDS="1")
    app = make_app(env)
    app.send_task(JOURNAL, args=("/dev/null", "kept"))
    app.send_task(JOURNAL, args=("/dev/null", "moved"))
    name = f"{unique}-celery"
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        assert type(channel).__module__ == "sqs_broker.transport"
        first = second = None
        for _ in range(20):
            message = channel.basic_get("celery")
            if message is None:
                continue
            if first is None:
                first = message
            else:
                second = message
                break
        assert first is not None and second is not None
        first.reject(requeue=True)
        second.reject(requeue=False)
    quarantine = sqs.get_queue_url(QueueName=f"{name}-quarantine")["QueueUrl"]
    (moved,) = take_all(sqs, quarantine)
    assert moved["MessageAttributes"][REASON]["StringValue"] == (
        "its consumer rejected it without requeue"
    )
    assert task_id(moved["Body"]) == second.headers["id"]
    # The requeued one is back in its queue (kombu hides it for wait_time_seconds).
    assert wait_for(lambda: depth(sqs, name) == (1, 0), 15), depth(sqs, name)


def test_transport__imports_no_celery_app_and_no_telemetry() -> None:
    """The channel is handed its accept lists and its counter: no current app, no telemetry."""
    from tests.support import ROOT

    for path in (ROOT / "sqs_broker" / "transport").glob("*.py"):
        source = path.read_text()
        assert "current_app" not in source, path
        assert "sqs_broker.telemetry" not in source and "import telemetry" not in source, path


# --- real workers ---------------------------------------------------------------------------

ATTRIBUTE_NAMES = st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9_-]{0,15}\Z")
ATTRIBUTE_VALUES = st.one_of(
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=0x7E), min_size=1, max_size=20
    ).map(lambda v: {"DataType": "String", "StringValue": v}),
    st.integers(-(10**6), 10**6).map(lambda n: {"DataType": "Number", "StringValue": str(n)}),
)
ATTRIBUTES = st.dictionaries(ATTRIBUTE_NAMES, ATTRIBUTE_VALUES, max_size=3)


def bad_headers(task: dict[str, Any]) -> st.SearchStrategy[str]:
    """SQS bodies of task messages with one or two headers the checks refuse."""

    def build(changes: list[tuple[str, Any]]) -> str | None:
        data = copy.deepcopy(task)
        headers = data["headers"]
        headers["id"] = str(uuid.uuid4())
        for name, value in changes:
            headers[name] = value
        try:
            poison.check_task(headers, json.loads(base64.b64decode(data["body"])))
        except poison.Poison:
            return json.dumps(data)
        return None

    return (
        st.lists(drawn_header(), min_size=1, max_size=2)
        .map(build)
        .filter(lambda body: body is not None)
        .map(str)
    )


def worker_env(unique: str, **overrides: str) -> dict[str, str]:
    return base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_WAIT_TIME_SECONDS="1",
        SQS_BROKER_TELEMETRY="true",
        SQS_BROKER_TELEMETRY_INTERVAL="0.5",
        **overrides,
    )


def take_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message of ``url``, each once, deleted as received (a FIFO group waits otherwise)."""
    found: list[dict[str, Any]] = []
    while got := drain(sqs, url, visibility_timeout=60):
        found.extend(got)
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def poison_count(queue: str, task: str | None = None) -> int:
    from sqs_broker.models import TaskCounter

    rows = TaskCounter.objects.filter(queue=queue, **({"task": task} if task else {}))
    return sum(rows.values_list("poisoned", flat=True))


WORKER_SETTINGS = settings(
    max_examples=1,
    phases=[Phase.generate],
    report_multiple_bugs=False,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@with_worker
@pytest.mark.parametrize(("pool", "fifo"), [("prefork", True), ("threads", False)])
@WORKER_SETTINGS
@given(data=st.data())
def test_worker__drawn_bad_messages_moved_once_with_attributes_and_group(
    data: Any,
    pool: str,
    fifo: bool,
    start_worker: Any,
    sqs: Any,
    unique: str,
    template: dict[str, Any],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Bad headers and undecodable messages among tasks: moved once each, attributes and group
    kept, counted once each; the worker lives and runs every task, one sent afterwards too.

    prefork on a FIFO queue (poison to its FIFO quarantine), threads on a standard
    queue with a dead-letter queue (poison copied straight there).
    """
    # Fresh names per run: Hypothesis runs a failing example a second time to report it.
    suffix = f"{unique}-{pool}-{uuid.uuid4().hex[:4]}"
    env = worker_env(suffix)
    celery_queue = "work.fifo" if fifo else "work"
    name = f"{suffix}-{celery_queue}"
    if fifo:
        url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
        target_name = f"{suffix}-work-quarantine.fifo"
    else:
        url, target = queue_with_dlq(sqs, name, f"{suffix}-work-dlq")
        target_name = f"{suffix}-work-dlq"
    envelopes = malformed(template).map(lambda level_body: level_body[1])
    batch = data.draw(
        st.lists(
            st.tuples(st.one_of(bad_headers(template), envelopes), ATTRIBUTES),
            min_size=10,
            max_size=16,
        )
    )
    journal = tmp_path / f"journal-{suffix}"
    app = make_app(env)
    sent: dict[str, tuple[str, dict[str, Any], str | None]] = {}
    tags = []
    for n, (body, attributes) in enumerate(batch):
        extra: dict[str, Any] = {"MessageAttributes": attributes} if attributes else {}
        group = f"g{n % 3}" if fifo else None
        if group:
            extra.update(MessageGroupId=group, MessageDeduplicationId=f"d{n}")
        answer = sqs.send_message(QueueUrl=url, MessageBody=body, **extra)
        sent[answer["MessageId"]] = (body, attributes, group)
        if n % 4 == 0:
            tags.append(f"task{n}")
            app.send_task(JOURNAL, args=(str(journal), tags[-1]), queue=celery_queue)
    worker = start_worker(env, queues=celery_queue, pool=pool, extra=("--concurrency=2",))
    try:
        check_drawn_batch(sqs, app, worker, journal, name, celery_queue, target_name, sent, tags)
    finally:
        worker.stop(signal.SIGKILL)


def check_drawn_batch(
    sqs: Any,
    app: Any,
    worker: Any,
    journal: Path,
    name: str,
    celery_queue: str,
    target_name: str,
    sent: dict[str, tuple[str, dict[str, Any], str | None]],
    tags: list[str],
) -> None:
    batch = sent
    assert wait_for(lambda: {t for t, _ in runs(journal)} == set(tags), 90), worker.output()[-4000:]
    assert wait_for(lambda: depth(sqs, name) == (0, 0), 30), (depth(sqs, name), worker.output())
    app.send_task(JOURNAL, args=(str(journal), "after"), queue=celery_queue)
    assert wait_for(lambda: "after" in {t for t, _ in runs(journal)}, 30), worker.output()
    assert wait_for(lambda: poison_count(name) >= len(batch), 30), poison_count(name)
    assert worker.process.poll() is None, worker.output()[-4000:]

    target = sqs.get_queue_url(QueueName=target_name)["QueueUrl"]
    moved = take_all(sqs, target)
    by_source = Counter(m["MessageAttributes"][MESSAGE_ID]["StringValue"] for m in moved)
    assert by_source == dict.fromkeys(sent, 1), by_source  # each one, exactly once
    for copy_ in moved:
        body, attributes, group = sent[copy_["MessageAttributes"][MESSAGE_ID]["StringValue"]]
        assert copy_["Body"] == body
        kept = {k: v for k, v in copy_["MessageAttributes"].items() if k in attributes}
        assert {k: (v["DataType"], v["StringValue"]) for k, v in kept.items()} == {
            k: (v["DataType"], v["StringValue"]) for k, v in attributes.items()
        }
        assert copy_["MessageAttributes"][REASON]["StringValue"]
        assert copy_["MessageAttributes"][SOURCE]["StringValue"] == name
        if group:
            assert copy_["Attributes"]["MessageGroupId"] == group
    assert Counter(t for t, _ in runs(journal)) == dict.fromkeys([*tags, "after"], 1)
    output = worker.output()
    assert "Unrecoverable error" not in output
    assert output.count("Poison message") == len(batch)
    assert worker.stop(signal.SIGTERM) == 0, output[-3000:]
    assert poison_count(name) == len(batch)


def task_id(body: str) -> str:
    """The task id in the headers of a Celery message's SQS body."""
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = json.loads(base64.b64decode(body))
    return str(envelope["headers"]["id"])


@with_worker
@pytest.mark.parametrize(("pool", "with_dlq"), [("prefork", False), ("solo", True)])
def test_worker__rejected_and_unrunnable_tasks_moved_not_deleted(
    pool: str,
    with_dlq: bool,
    start_worker: Any,
    sqs: Any,
    unique: str,
    template: dict[str, Any],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Unregistered tasks, a bad ETA, a bad expiry and ["a", "b"] time limits: each moved once
    with its reason (to the DLQ at once, without waiting for maxReceiveCount), counted once; the
    worker lives and runs the good task. With the DLQ, a body 60 bytes under the size limit of
    both queues is moved too, its reason cut to fit.
    """
    env = worker_env(unique)
    name = f"{unique}-celery"
    if with_dlq:
        size = {"MaximumMessageSize": "2048"}
        url, target = queue_with_dlq(sqs, name, f"{name}-dlq", max_receive_count=3, **size)
        sqs.set_queue_attributes(QueueUrl=target, Attributes=size)
    else:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
    app = make_app(env)
    journal = tmp_path / "journal"
    tomorrow = app.send_task("project.demo.tasks.deployed_tomorrow", args=(1,)).id
    reasons = {
        tomorrow: "no task named",
        app.send_task("project.demo.tasks.also_unknown").id: "no task named",
    }
    # Celery's publisher refuses these: put them as another client could.
    for header, value, reason in (
        ("eta", "not-a-date", "headers.eta"),
        ("expires", "garbage", "headers.expires"),
        ("timelimit", ["a", "b"], "headers.timelimit[0] is 'a'"),
    ):
        envelope = copy.deepcopy(template)
        envelope["headers"].update({"id": str(uuid.uuid4()), header: value})
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(envelope))
        reasons[envelope["headers"]["id"]] = reason
    near_limit = "n" * (2048 - 60)
    if with_dlq:
        sqs.send_message(QueueUrl=url, MessageBody=near_limit)
    app.send_task(JOURNAL, args=(str(journal), "good"))
    worker = start_worker(env, pool=pool)
    assert wait_for(lambda: [t for t, _ in runs(journal)] == ["good"], 60), worker.output()
    assert wait_for(lambda: depth(sqs, name) == (0, 0), 30), (depth(sqs, name), worker.output())
    expected = len(reasons) + (1 if with_dlq else 0)
    assert wait_for(lambda: poison_count(name) >= expected, 30), worker.output()[-3000:]
    assert worker.process.poll() is None, worker.output()[-3000:]
    if not with_dlq:
        target = sqs.get_queue_url(QueueName=f"{name}-quarantine")["QueueUrl"]
    moved = take_all(sqs, target)
    tasks = {task_id(m["Body"]): m for m in moved if m["Body"] != near_limit}
    assert sorted(tasks) == sorted(reasons), worker.output()[-3000:]
    for tid, copy_ in tasks.items():
        assert reasons[tid] in copy_["MessageAttributes"][REASON]["StringValue"]
        assert copy_["MessageAttributes"][SOURCE]["StringValue"] == name
    output = worker.output()
    # Each unregistered task was received once: copied at once, not left for redrives.
    assert output.count("Received unregistered task") == 2, output
    # Counted and logged under its name (not "(undecodable)"), with its id, not as base64.
    assert poison_count(name, "project.demo.tasks.deployed_tomorrow") == 1
    assert f"task 'project.demo.tasks.deployed_tomorrow', id '{tomorrow}'" in output, output
    assert "first bytes: 'eyJ" not in output, output
    if with_dlq:
        (big,) = [m for m in moved if m["Body"] == near_limit]
        assert SHORT in big["MessageAttributes"] and REASON not in big["MessageAttributes"]
        assert message_size(big["Body"], big["MessageAttributes"]) <= 2048
        assert big["MessageAttributes"][SHORT]["StringValue"].startswith("the SQS body is not")
    assert "Unrecoverable error" not in output
    assert worker.stop(signal.SIGTERM) == 0, output[-3000:]
    assert poison_count(name) == expected


@with_worker
def test_worker__plain_kombu_consumer_gets_kombu_behaviour(
    start_worker: Any, sqs: Any, unique: str, tmp_path: Path
) -> None:
    """A plain kombu Consumer beside Celery's: its text/plain messages and a raw SQS body reach it
    (its own default accept, no task checks); on Celery's queue, text/plain is moved aside; an
    envelope no consumer decodes is moved from either, and counted."""
    received_file = tmp_path / "plain.jsonl"
    env = worker_env(
        unique,
        SQS_BROKER_TEST_PLAIN_QUEUE="plain",
        SQS_BROKER_TEST_PLAIN_FILE=str(received_file),
    )
    journal = tmp_path / "journal"
    worker = start_worker(env, extra=("--include", "tests.plain_consumer"))
    app = make_app(env)
    texts = [f"hello {n}" for n in range(3)]
    with app.connection_for_write() as connection:
        producer = connection.Producer()
        for text in texts:
            producer.publish(
                text, routing_key="plain", content_type="text/plain", content_encoding="utf-8"
            )
        # The same on Celery's queue: not a task, so moved aside there.
        producer.publish(
            "not a task", routing_key="celery", content_type="text/plain", content_encoding="utf-8"
        )
    plain_url = sqs.get_queue_url(QueueName=f"{unique}-plain")["QueueUrl"]
    sqs.send_message(QueueUrl=plain_url, MessageBody="raw text, no kombu envelope")
    # An envelope no consumer can decode: moved aside on this channel too, and counted.
    broken = {"body": "aGk=", "properties": {"body_encoding": "rot13"}, "headers": {}}
    sqs.send_message(QueueUrl=plain_url, MessageBody=json.dumps(broken))
    app.send_task(JOURNAL, args=(str(journal), "good"))

    def lines() -> list[dict[str, Any]]:
        if not received_file.exists():
            return []
        return [json.loads(line) for line in received_file.read_text().splitlines()]

    assert wait_for(lambda: len(lines()) == 4, 60), worker.output()[-3000:]
    assert sorted(line["body"] for line in lines()) == sorted(
        [*texts, "raw text, no kombu envelope"]
    )
    assert {line["content_type"] for line in lines()} >= {"text/plain"}
    assert wait_for(lambda: [t for t, _ in runs(journal)] == ["good"], 30), worker.output()
    assert wait_for(lambda: depth(sqs, f"{unique}-plain") == (0, 0), 30)
    plain_quarantine = sqs.get_queue_url(QueueName=f"{unique}-plain-quarantine")["QueueUrl"]
    (undecodable,) = take_all(sqs, plain_quarantine)
    assert (
        "unknown properties.body_encoding 'rot13'"
        in (undecodable["MessageAttributes"][REASON]["StringValue"])
    )
    quarantine = sqs.get_queue_url(QueueName=f"{unique}-celery-quarantine")["QueueUrl"]
    moved = take_all(sqs, quarantine)
    # Celery's task consumer accepts JSON only (its own accept_content).
    (refused,) = moved
    assert "ContentDisallowed" in refused["MessageAttributes"][REASON]["StringValue"]
    output = worker.output()
    assert output.count("Poison message") == 2, output
    assert worker.stop(signal.SIGTERM) == 0, output[-3000:]
    assert (poison_count(f"{unique}-plain"), poison_count(f"{unique}-celery")) == (1, 1)


@with_worker
def test_worker__kombus_transport_left_as_kombu_has_it(
    start_worker: Any, sqs: Any, unique: str, tmp_path: Path
) -> None:
    """SQS_TRANSPORT=kombu: the worker-side step and handlers find nothing to tell; an
    unregistered task is kombu's (deleted, no quarantine) and tasks run."""
    env = worker_env(unique, SQS_TRANSPORT="kombu", SQS_POLLING_INTERVAL="0.1")
    journal = tmp_path / "journal"
    worker = start_worker(env)
    assert ".> transport:   sqs://" in worker.output()  # the banner names kombu's
    app = make_app(env)
    app.send_task("project.demo.tasks.deployed_tomorrow")
    app.send_task(JOURNAL, args=(str(journal), "good"))
    assert wait_for(lambda: [t for t, _ in runs(journal)] == ["good"], 60), worker.output()
    assert wait_for(lambda: depth(sqs, f"{unique}-celery") == (0, 0), 30), worker.output()
    assert "Received unregistered task" in worker.output()
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=f"{unique}-celery-quarantine")
    assert "Poison message" not in worker.output()
    assert worker.stop(signal.SIGTERM) == 0, worker.output()[-3000:]
