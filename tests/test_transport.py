"""The project's SQS transport: faults survived, poison moved aside, batched deletes.

The unit tests feed :mod:`sqs_broker.transport`'s checks directly; the worker
tests start real ``celery -A project worker`` subprocesses on the moto server
(one per pool, each fed a Hypothesis-drawn batch of malformed messages) and
cut the endpoint with :class:`tests.support.proxy.Proxy`.
"""

from __future__ import annotations

import base64
import copy
import inspect
import json
import signal
import time
from pathlib import Path
from typing import Any

import kombu
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kombu.transport import SQS

from sqs_broker import transport
from sqs_broker.transport import Poison, check_envelope, envelope_of, quarantine_name
from tests.support.env import base_env, make_app
from tests.support.proxy import Proxy
from tests.support.queues import drain, queue_with_dlq
from tests.test_faults import JOURNAL, depth, runs, wait_for, with_worker

# --- kombu's internals -------------------------------------------------------------


def test_kombu__version_is_the_tested_one() -> None:
    """The transport overrides kombu internals: a kombu outside the tested range fails here."""
    low, high = transport.KOMBU_TESTED
    assert low <= transport.kombu_version() < high, (
        f"kombu {kombu.__version__} is outside {low}-{high}: re-read kombu/transport/SQS "
        "and kombu/asynchronous/aws against sqs_broker/transport.py, then move KOMBU_TESTED"
    )


@pytest.mark.parametrize(
    ("owner", "name"), list(transport.relied_upon()), ids=lambda v: getattr(v, "__name__", v)
)
def test_kombu__relied_upon_internal_exists(owner: Any, name: str) -> None:
    """Every kombu attribute the transport calls or replaces is still there."""
    assert hasattr(owner, name), f"{owner.__module__}.{owner.__qualname__}.{name} is gone"


def test_kombu__signatures_the_transport_calls() -> None:
    """The parameters the transport passes still exist under the same names."""
    expected = {
        SQS.Channel._release_messages: ["queue", "qname", "messages"],
        SQS.Channel._envelope_payload: ["payload", "raw_text", "message", "q_url"],
        SQS.Channel._new_release_client: ["client"],
        SQS.Channel._new_boto_client: [
            "service", "region", "access_key_id", "secret_access_key", "session_token", "config",
        ],
        SQS.Channel.sqs: ["queue"],
    }  # fmt: skip
    for function, names in expected.items():
        found = list(inspect.signature(function).parameters)[1:]
        assert found == names, (function.__qualname__, found)


def test_kombu__instance_attributes_the_transport_reads(sqs_endpoint: str, unique: str) -> None:
    """The attributes kombu and botocore set on instances, which the transport reads, exist."""
    from kombu import Connection

    env = worker_env(unique)
    app = make_app(env)
    with Connection(
        app.conf.broker_url,
        transport=transport.Transport,
        transport_options=app.conf.broker_transport_options,
    ) as connection:
        channel = connection.default_channel
        client = channel.sqs()
        owners = {
            "channel": channel,
            "transport": connection.transport,
            "sqs client": client,
            "request signer": client._request_signer,
        }
        for owner, names in transport.INSTANCE_ATTRIBUTES.items():
            for name in names:
                assert hasattr(owners[owner], name), f"{owner}.{name} is gone"
        assert isinstance(channel.qos, transport.QoS)


def test_kombu__async_failure_reaches_on_messages_ready_as_a_list() -> None:
    """kombu's bug the transport works around: a failed receive is a list, not a dict."""
    from types import SimpleNamespace

    from kombu.asynchronous.aws.connection import AsyncAWSQueryConnection

    connection = AsyncAWSQueryConnection.__new__(AsyncAWSQueryConnection)
    connection.sqs_connection = SimpleNamespace(meta=SimpleNamespace(service_model=None))
    refused = SimpleNamespace(status=599)  # what the curl client reports for a refused connection
    parsed = connection._on_list_ready(None, None, "ReceiveMessage", refused)
    assert parsed == []
    channel = SQS.Channel.__new__(SQS.Channel)
    with pytest.raises(AttributeError, match="'list' object has no attribute 'get'"):
        channel._on_messages_ready("url", "celery", [])


# --- names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "expected"),
    [
        ("app-celery", "app-celery-quarantine"),
        ("orders.fifo", "orders-quarantine.fifo"),
        ("q" * 80, "q" * 69 + "-quarantine"),
        ("f" * 75 + ".fifo", "f" * 64 + "-quarantine.fifo"),
    ],
)
def test_quarantine_name__suffix_within_80_characters(queue: str, expected: str) -> None:
    """The quarantine queue's name: -quarantine added, FIFO kept, SQS's 80 characters held."""
    name = quarantine_name(queue)
    assert name == expected and len(name) <= 80
    assert transport.is_quarantine(name) and not transport.is_quarantine(queue)


# --- what is a task message --------------------------------------------------------


def real_envelope(sqs: Any, unique: str) -> dict[str, Any]:
    """The kombu envelope of a task Celery really published (to a scratch queue)."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-scratch-")
    make_app(env).send_task(JOURNAL, args=("/dev/null", "template"))
    url = sqs.get_queue_url(QueueName=f"{unique}-scratch-celery")["QueueUrl"]
    body = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"][0]["Body"]
    sqs.delete_queue(QueueUrl=url)
    return decode_sqs_body(body)


def decode_sqs_body(body: str) -> dict[str, Any]:
    try:
        return json.loads(body)
    except ValueError:
        return json.loads(base64.b64decode(body))


def _unwrap(raw: Any) -> bytes:
    return SQS.Channel._decode_python_message_body(SQS.Channel.__new__(SQS.Channel), raw)


def check(body: str, accept: Any = frozenset({"application/json"})) -> None:
    """The transport's checks on one SQS body, as the channel runs them."""
    envelope, _ = envelope_of(body, _unwrap)
    check_envelope(envelope, SQS.Channel.codecs, accept)


ENVELOPE_TEMPLATE: dict[str, Any] = {}


@pytest.fixture
def template(sqs: Any, unique: str) -> dict[str, Any]:
    if not ENVELOPE_TEMPLATE:
        ENVELOPE_TEMPLATE.update(real_envelope(sqs, unique))
    return copy.deepcopy(ENVELOPE_TEMPLATE)


def test_check__real_celery_message_passes(template: dict[str, Any]) -> None:
    """A message Celery published passes every check, raw and base64-wrapped."""
    check(json.dumps(template))
    check(base64.b64encode(json.dumps(template).encode()).decode())


def _inner(body: Any) -> str:
    return base64.b64encode(json.dumps(body).encode()).decode()


#: One malformation per level, each a function of a valid envelope and a drawn value.
def malformed(template: dict[str, Any]) -> st.SearchStrategy[tuple[str, str]]:
    """``(level, SQS body)`` of a message that is not a task, at every decoding level."""

    def envelope(change: Any) -> Any:
        def build(value: Any) -> str:
            data = copy.deepcopy(template)
            change(data, value)
            return json.dumps(data)

        return build

    def setter(*path: str) -> Any:
        def change(data: dict[str, Any], value: Any) -> None:
            for key in path[:-1]:
                data = data[key]
            data[path[-1]] = value

        return change

    not_object = st.one_of(
        st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=3), st.booleans()
    )
    not_string = st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.booleans())
    bad_b64 = st.sampled_from(["abc", "a", "ab=c", "====", "not base64!", "YWJj\x00"])
    non_json = st.text(min_size=1, max_size=40).filter(lambda t: not _is_json(t))
    levels = {
        "sqs body: not JSON": non_json,
        "sqs body: JSON, no envelope": st.one_of(
            st.integers().map(json.dumps),
            st.lists(st.integers(), max_size=3).map(json.dumps),
            st.dictionaries(st.sampled_from(["body", "headers", "x"]), st.integers()).map(
                json.dumps
            ),
        ),
        "envelope: properties": not_object.map(envelope(setter("properties"))),
        "envelope: delivery_info": not_object.map(envelope(setter("properties", "delivery_info"))),
        "envelope: headers": st.one_of(st.integers(), st.text(max_size=5), st.lists(st.none())).map(
            envelope(setter("headers"))
        ),
        "envelope: body": st.one_of(
            st.integers(), st.none(), st.just(""), st.lists(st.integers(), max_size=2)
        ).map(envelope(setter("body"))),
        "envelope: content-type": not_string.map(envelope(setter("content-type"))),
        "body encoding: not base64": bad_b64.map(envelope(setter("body"))),
        "body encoding: unknown": st.one_of(st.text(min_size=1, max_size=10), not_string)
        .filter(lambda v: v != "base64")
        .map(envelope(setter("properties", "body_encoding"))),
        "compression: unknown": st.sampled_from(["application/x-nope", "zip", "1"]).map(
            envelope(setter("headers", "compression"))
        ),
        "compression: not compressed": st.just("application/x-gzip").map(
            envelope(setter("headers", "compression"))
        ),
        "serializer: not JSON": non_json.map(lambda t: base64.b64encode(t.encode()).decode()).map(
            envelope(setter("body"))
        ),
        "serializer: not accepted": st.sampled_from(
            ["application/x-python-serialize", "application/x-yaml", "text/x-unknown"]
        ).map(envelope(setter("content-type"))),
        "task: body not [args, kwargs, embed]": st.one_of(
            st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=5)
        )
        .map(_inner)
        .map(envelope(setter("body"))),
        "task: args/kwargs mistyped": st.tuples(not_object, not_object)
        .map(lambda pair: _inner([pair[0], pair[1], None]))
        .filter(lambda b: True)
        .map(envelope(setter("body"))),
        "task: header id": not_string.map(envelope(setter("headers", "id"))),
        "task: header task": st.one_of(st.integers(), st.just(""), st.none()).map(
            envelope(setter("headers", "task"))
        ),
        "task: header retries": st.one_of(st.text(max_size=3), st.lists(st.integers())).map(
            envelope(setter("headers", "retries"))
        ),
    }
    return st.one_of(
        *[
            strategy.map(lambda body, level=level: (level, body))
            for level, strategy in levels.items()
        ]
    )


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _valid_args_kwargs(pair: tuple[Any, Any]) -> bool:
    return isinstance(pair[0], list) and isinstance(pair[1], dict)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_check__every_malformed_level_is_poison(template: dict[str, Any], data: Any) -> None:
    """Hypothesis: every drawn malformation, at every level, is poison with a reason."""
    level, body = data.draw(malformed(template))
    if level == "task: args/kwargs mistyped":
        args, kwargs, _ = json.loads(base64.b64decode(json.loads(body)["body"]))
        if isinstance(args, list) and isinstance(kwargs, dict):
            return  # drawn well-typed: not a malformation
    with pytest.raises(Poison) as caught:
        check(body)
    assert str(caught.value), level


def test_check__messages_the_issue_names(template: dict[str, Any]) -> None:
    """The shapes that killed workers: bad padding, unknown encoding, list/str fields, int body."""
    properties = template["properties"]
    cases = {
        "Incorrect padding": ("body", "abc"),
        "unknown properties.body_encoding": ("properties", {**properties, "body_encoding": "rot"}),
        "properties is list": ("properties", []),
        "delivery_info is str": ("properties", {**properties, "delivery_info": "x"}),
        "body is int": ("body", 5),
    }  # fmt: skip
    for expected, (key, value) in cases.items():
        with pytest.raises(Poison, match=expected):
            check(json.dumps({**template, key: value}))


# --- real workers --------------------------------------------------------------------


def worker_env(unique: str, **overrides: str) -> dict[str, str]:
    return base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_WAIT_TIME_SECONDS="1", **overrides)


POOLS = ["prefork", "threads", "solo"]


@with_worker
@pytest.mark.parametrize("pool", POOLS)
@settings(
    max_examples=1,
    phases=[Phase.generate],
    report_multiple_bugs=False,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_worker__poison_moved_aside_and_valid_tasks_run(
    data: Any,
    pool: str,
    start_worker: Any,
    sqs: Any,
    unique: str,
    template: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A batch of malformed messages among tasks: the worker lives, tasks run once, poison moves."""
    suffix = f"{unique}-{pool}"
    env = worker_env(suffix)
    with_dlq = pool == "threads"
    if with_dlq:
        url, target = queue_with_dlq(sqs, f"{suffix}-celery", f"{suffix}-celery-dlq")
    else:
        url = sqs.create_queue(QueueName=f"{suffix}-celery")["QueueUrl"]
    batch = data.draw(st.lists(malformed(template), min_size=12, max_size=20))
    journal = tmp_path / "journal"
    app = make_app(env)
    for n, (_, body) in enumerate(batch):
        sqs.send_message(QueueUrl=url, MessageBody=body)
        if n % 3 == 0:
            app.send_task(JOURNAL, args=(str(journal), f"task{n}"))
    tags = {f"task{n}" for n in range(0, len(batch), 3)}
    worker = start_worker(env, pool=pool, extra=("--concurrency=2",))
    assert wait_for(lambda: {t for t, _ in runs(journal)} == tags, 60), worker.output()[-4000:]
    empty = wait_for(lambda: depth(sqs, f"{suffix}-celery") == (0, 0), 30)
    assert empty, (depth(sqs, f"{suffix}-celery"), worker.output()[-4000:])
    assert worker.process.poll() is None, worker.output()[-4000:]
    if not with_dlq:
        target = sqs.get_queue_url(QueueName=f"{suffix}-celery-quarantine")["QueueUrl"]
    moved = drain(sqs, target, visibility_timeout=60)
    assert sorted(m["Body"] for m in moved) == sorted(body for _, body in batch), worker.output()
    reasons = [m["MessageAttributes"]["sqs_broker.poison.reason"]["StringValue"] for m in moved]
    assert all(reasons)
    assert sorted(t for t, _ in runs(journal)) == sorted(tags)  # each once
    output = worker.output()
    assert "Unrecoverable error" not in output
    assert output.count("Poison message") == len(batch)
    worker.stop()
    assert worker.process.returncode == 0, output[-3000:]


@with_worker
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_worker__three_second_cut_survived(
    pool: str, start_worker: Any, sqs: Any, sqs_endpoint: str, unique: str, tmp_path: Path
) -> None:
    """A 3 s cut of a running worker's endpoint: logged once, the worker resumes by itself."""
    journal = tmp_path / "journal"
    # A receive whose answer the cut lost leaves its message in flight until
    # the visibility timeout (SQS's at-least-once delivery): keep it short.
    direct = worker_env(unique, SQS_VISIBILITY_TIMEOUT="5")
    with Proxy.to(sqs_endpoint) as proxy:
        env = {**direct, "SQS_ENDPOINT_URL": proxy.endpoint_url}
        worker = start_worker(env, pool=pool)
        app = make_app(direct)
        app.send_task(JOURNAL, args=(str(journal), "before"))
        assert wait_for(lambda: len(runs(journal)) == 1, 30), worker.output()
        proxy.cut()
        app.send_task(JOURNAL, args=(str(journal), "during"))
        time.sleep(3)
        proxy.restore()
        restored = time.monotonic()
        app.send_task(JOURNAL, args=(str(journal), "after"))
        # Within the backoff cap (5 s) plus one long poll (1 s), with room for a loaded machine.
        assert wait_for(lambda: "after" in {t for t, _ in runs(journal)}, 30), worker.output()
        resumed_after = time.monotonic() - restored
        everything = {"before", "during", "after"}
        assert wait_for(lambda: {t for t, _ in runs(journal)} == everything, 30), worker.output()
        output = worker.output()
    assert worker.process.poll() is None, output
    assert "Unrecoverable error" not in output
    assert output.count("SQS ReceiveMessage on queue") == 2, output  # failed once, answered once
    assert "answers again" in output
    assert resumed_after < 20, resumed_after


@with_worker
def test_worker__deleted_queue_is_declared_again(
    start_worker: Any, sqs: Any, unique: str, tmp_path: Path
) -> None:
    """The queue disappears under a running worker (a restarted local SQS): it is created again."""
    journal = tmp_path / "journal"
    env = worker_env(unique)
    worker = start_worker(env)
    name = f"{unique}-celery"
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def exists() -> bool:
        return name in [
            u.rsplit("/", 1)[-1] for u in sqs.list_queues(QueueNamePrefix=name).get("QueueUrls", [])
        ]

    assert wait_for(exists, 30), worker.output()
    make_app(env).send_task(JOURNAL, args=(str(journal), "after"))
    assert wait_for(lambda: len(runs(journal)) == 1, 30), worker.output()
    assert worker.process.poll() is None


@with_worker
def test_worker__deletes_batched_and_flushed_on_warm_shutdown(
    start_worker: Any, sqs: Any, sqs_endpoint: str, unique: str, tmp_path: Path
) -> None:
    """Acks go out as DeleteMessageBatch; a warm shutdown right after the tasks leaves none."""
    journal = tmp_path / "journal"
    direct = worker_env(unique)
    tasks = 30
    with Proxy.to(sqs_endpoint) as proxy:
        env = {**direct, "SQS_ENDPOINT_URL": proxy.endpoint_url}
        worker = start_worker(env, pool="prefork", extra=("--concurrency=2",))
        app = make_app(direct)
        for n in range(tasks):
            app.send_task(JOURNAL, args=(str(journal), f"t{n}"))
        assert wait_for(lambda: len(runs(journal)) == tasks, 60), worker.output()
        # Every task acknowledged (the journal is written when a task starts): the deletes
        # may still wait in a batch, which the warm shutdown must send.
        assert wait_for(lambda: worker.output().count(" succeeded in ") == tasks, 30)
        assert worker.stop(signal.SIGTERM) == 0
        counts = proxy.reset_counts()
    assert counts["DeleteMessage"] == 0, counts
    assert 3 <= counts["DeleteMessageBatch"] < tasks, counts
    assert depth(sqs, f"{unique}-celery") == (0, 0)


@with_worker
def test_worker__warm_shutdown_during_outage_is_prompt(
    start_worker: Any, sqs_endpoint: str, unique: str, tmp_path: Path
) -> None:
    """SIGTERM while SQS does not answer: the worker stops in seconds, exit 0, deletes bounded."""
    journal = tmp_path / "journal"
    direct = worker_env(unique)
    with Proxy.to(sqs_endpoint) as proxy:
        env = {**direct, "SQS_ENDPOINT_URL": proxy.endpoint_url}
        worker = start_worker(env, pool="prefork", extra=("--concurrency=2",))
        make_app(direct).send_task(JOURNAL, args=(str(journal), "before"))
        assert wait_for(lambda: len(runs(journal)) == 1, 30), worker.output()
        proxy.cut()
        time.sleep(2)  # the worker is now retrying with backoff
        stopping = time.monotonic()
        code = worker.stop(signal.SIGTERM, timeout=40)
        stopped_after = time.monotonic() - stopping
    print(f"stopped {stopped_after:.1f} s after SIGTERM")
    assert code == 0, worker.output()[-3000:]
    # The collected deletes wait at most 10 s (Channel.ack_flush_timeout); Celery's own
    # shutdown the rest.
    assert stopped_after < 20, (stopped_after, worker.output()[-3000:])
    assert "Unrecoverable error" not in worker.output()


# --- faults, without a worker --------------------------------------------------------


def test_faults__logged_once_per_outage_and_when_answered(caplog: Any) -> None:
    """Ten failures of one operation and queue: one warning, then one when SQS answers."""
    faults = transport.Faults(base=0.5, cap=5.0)
    with caplog.at_level("DEBUG", logger="sqs_broker.transport"):
        delays = [
            faults.failed("ReceiveMessage", "app-celery", transport.Fault("HTTP 503: Slow Down"))
            for _ in range(10)
        ]
        faults.answered("ReceiveMessage", "app-celery")
        faults.answered("ReceiveMessage", "app-celery")  # no outage: nothing said
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings
    assert "ReceiveMessage on queue app-celery failed: Fault: HTTP 503: Slow Down" in warnings[0]
    assert "answers again" in warnings[1] and "10 failed attempt(s)" in warnings[1]
    # Exponential, capped at 5 s, each wait half to all of its step.
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    assert all(2.5 <= d <= 5.0 for d in delays[4:]), delays


@pytest.mark.parametrize(
    ("status", "body", "code", "text"),
    [
        (599, b"", None, "HTTP 599: Failed to connect"),
        (503, b"", None, "HTTP 503"),
        (
            400,
            b'{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}',
            "ThrottlingException",
            "Rate exceeded",
        ),
        (
            400,
            b'{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"no queue"}',
            "QueueDoesNotExist",
            "no queue",
        ),
        (
            403,
            b'{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"expired"}',
            "ExpiredTokenException",
            "expired",
        ),
    ],
)
def test_answer_of__failures_become_faults_with_their_code(
    status: int, body: bytes, code: str | None, text: str
) -> None:
    """Refused, 5xx, throttled, missing queue, expired token: a Fault, never a crash."""
    from io import BytesIO
    from types import SimpleNamespace

    import boto3
    from kombu.asynchronous.http import Request
    from kombu.asynchronous.http.base import Response

    client = boto3.client("sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    raw = Response(Request("http://x"), status, buffer=BytesIO(body))
    answer = SimpleNamespace(
        status=status,
        reason="Failed to connect" if status == 599 else "",
        read=lambda: body,
        response=raw,
    )
    with pytest.raises(transport.Fault) as caught:
        transport.answer_of("ReceiveMessage", client, answer)
    assert caught.value.code == code
    assert text in str(caught.value)


# --- deletes back off; the I/O threads answer on the hub ---------------------------------


class FailingDeletes:
    """A local HTTP server answering every DeleteMessageBatch with its first entry failed."""

    def __init__(self) -> None:
        import http.server
        import threading

        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests += 1
                ids = [entry["Id"] for entry in body["Entries"]]
                answer = json.dumps({
                    "Successful": [{"Id": i} for i in ids[1:]],
                    "Failed": [{"Id": ids[0], "Code": "InternalError", "SenderFault": False,
                                "Message": "try again"}],
                }).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def run_hub(hub: Any, seconds: float) -> None:
    """Run ``hub``'s loop for ``seconds``, in this thread."""
    loop = hub.create_loop()
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        next(loop)


def test_acks__failed_entries_back_off(caplog: Any) -> None:
    """An entry SQS keeps failing is retried with backoff: a handful of requests, not millions."""
    import boto3
    from kombu.asynchronous import Hub

    from sqs_broker.transport.acks import AckBatcher
    from sqs_broker.transport.io import Requests

    server = FailingDeletes()
    client = boto3.client(
        "sqs", endpoint_url=server.url, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="y",  # noqa: S106 - a local server's
    )  # fmt: skip
    hub = Hub()
    requests = Requests(2)
    requests.attach(hub)
    faults = transport.Faults(base=0.5, cap=5.0)
    batcher = AckBatcher(requests, lambda _: client, hub.call_later, faults, 0.05, 5.0)
    url = f"{server.url}/123456789012/q"
    with caplog.at_level("WARNING", logger="sqs_broker.transport"):
        for n in range(3):
            batcher.add("q", url, f"receipt{n}", f"m{n}")
        run_hub(hub, 8.0)
    requests.close(1.0)
    server.server.shutdown()
    # The first request, then retries 0.25-0.5, 0.5-1, 1-2, 2-4 s apart: 5 or 6 in 8 s.
    assert 3 <= server.requests <= 8, server.requests
    assert batcher.deleted == 2 and batcher.pending() == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("DeleteMessageBatch on queue q failed" in w for w in warnings) == 1, warnings


def test_requests__watchdog_ends_a_request_with_no_answer() -> None:
    """A call that never returns is ended at its deadline; its late answer goes to on_late."""
    import threading

    from kombu.asynchronous import Hub

    from sqs_broker.transport.io import NoAnswer, Requests

    hub = Hub()
    requests = Requests(2, grace=0.5, watch_every=0.1)
    requests.attach(hub)
    release = threading.Event()
    done: list[Any] = []
    late: list[Any] = []
    requests.submit(
        "ReceiveMessage", "q", lambda: release.wait(10) and "answer", 0.5,
        lambda answer, error: done.append((answer, error)), late.append,
    )  # fmt: skip
    run_hub(hub, 1.5)
    assert len(done) == 1 and isinstance(done[0][1], NoAnswer), done
    assert requests.pending() == [] and requests.abandoned == 1
    release.set()
    run_hub(hub, 0.5)
    assert late == ["answer"] and len(done) == 1
    requests.close(1.0)


def test_requests__posted_work_runs_though_the_hub_closed_first() -> None:
    """What another thread posts (an acknowledgement's delete) is never dropped by the close."""
    import threading

    from kombu.asynchronous import Hub

    from sqs_broker.transport.io import Requests

    hub = Hub()
    requests = Requests(2)
    requests.attach(hub)
    ran: list[str] = []
    poster = threading.Thread(target=lambda: requests.post(lambda: ran.append("before")))
    poster.start()
    poster.join()
    assert ran == []  # waits for the hub, which never turns again
    requests.close(1.0)
    assert ran == ["before"]
    requests.post(lambda: ran.append("after"))
    assert ran == ["before", "after"]


@with_worker
def test_worker__receives_and_deletes_batched_with_a_backlog(
    start_worker: Any, sqs: Any, sqs_endpoint: str, unique: str, tmp_path: Path
) -> None:
    """A 200-task backlog, prefork -c 2: at most 0.3 receive and delete requests per task."""
    from sqs_broker.publishing import publish_many

    journal = tmp_path / "journal"
    tasks = 200
    direct = worker_env(unique)
    app = make_app(direct)
    publish_many(
        [app.signature(JOURNAL, args=(str(journal), f"t{n}")) for n in range(tasks)], app=app
    )
    with Proxy.to(sqs_endpoint) as proxy:
        worker = start_worker(
            {**direct, "SQS_ENDPOINT_URL": proxy.endpoint_url},
            pool="prefork",
            extra=("--concurrency=2",),
        )
        assert wait_for(lambda: len(runs(journal)) == tasks, 90), worker.output()[-3000:]
        assert wait_for(lambda: depth(sqs, f"{unique}-celery") == (0, 0), 10)
        counts = proxy.reset_counts()
    work = ("ReceiveMessage", "DeleteMessageBatch", "DeleteMessage", "ChangeMessageVisibilityBatch")
    per_task = sum(counts[action] for action in work) / tasks
    print(f"\n{per_task:.3f} requests per task: {dict(counts)}")
    # The floor is 0.2 (10 per receive, 10 per delete); one receive per free slot costs ~1.
    assert per_task <= 0.3, counts


def test_lease__held_message_extended_until_dropped(sqs: Any, unique: str) -> None:
    """A held message stays invisible past its 3 s lease; dropped, it returns; counted."""
    from sqs_broker.transport import lease as lease_module

    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="held")
    message = sqs.receive_message(QueueUrl=url, VisibilityTimeout=3)["Messages"][0]
    before = lease_module.extensions()
    faults = transport.Faults(base=0.5, cap=5.0)
    lease = lease_module.Lease(3, lambda _: sqs, faults, 5.0)
    try:
        lease.hold(f"{unique}-celery", url, message, None)
        time.sleep(7)  # two leases: it would have been visible twice without extensions
        assert depth(sqs, f"{unique}-celery") == (0, 1)
        assert lease.extensions >= 2 and lease_module.extensions() - before == lease.extensions
        lease.drop(message["ReceiptHandle"])
    finally:
        lease.close()
    assert wait_for(lambda: depth(sqs, f"{unique}-celery") == (1, 0), 5)
