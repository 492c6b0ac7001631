"""Celery's remote control on SQS through SNS fanout: real workers on the local SQS and SNS,
called through ``app.control`` and the ``celery`` command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kombu import Exchange, Producer

from sqs_broker import control
from sqs_broker.topology import entity_name
from tests.support.env import make_app, run_python
from tests.test_faults import JOURNAL, runs, wait_for, with_worker, worker_env

ADD = "project.demo.tasks.add"
SLOW = "project.demo.tasks.slow"


def remote_env(unique: str, **overrides: str) -> dict[str, str]:
    """A worker's environment with remote control on (long polls of 1 s)."""
    return worker_env(unique, SQS_REMOTE_CONTROL="true", **overrides)


def caller(env: dict[str, str]) -> Any:
    """A Celery app calling as a web process does (one reply queue per thread)."""
    app = make_app(env)
    control.install(app)
    return app


def answering(app: Any, workers: int = 1) -> list[str]:
    """The hostnames of ``workers`` workers once all answer (each subscribes as it starts)."""
    names: list[str] = []

    def all_answer() -> bool:
        names[:] = sorted(
            n for reply in app.control.ping(timeout=1.0, limit=workers) for n in reply
        )
        return len(names) == workers

    assert wait_for(all_answer, 60), names
    return names


def only(replies: dict[str, Any] | None, hostname: str) -> Any:
    """The one worker's reply of an inspect call."""
    assert replies is not None and list(replies) == [hostname], replies
    return replies[hostname]


def reply_queues(sqs: Any, unique: str) -> list[str]:
    urls = sqs.list_queues(QueueNamePrefix=f"{unique}-").get("QueueUrls", [])
    return sorted(u.rsplit("/", 1)[-1] for u in urls if u.endswith("-reply-celery-pidbox"))


@with_worker
def test_ping__one_worker_answers_within_two_seconds(
    start_worker: Any, sqs: Any, unique: str
) -> None:
    """ping reaches a worker through SNS, its answer comes back, and calls reuse one reply queue."""
    env = remote_env(unique)
    worker = start_worker(env)
    app = caller(env)
    (hostname,) = answering(app)
    figures = []
    for _ in range(5):
        started = time.monotonic()
        replies = app.control.ping(timeout=2.0, limit=1)
        figures.append(time.monotonic() - started)
        assert replies == [{hostname: {"ok": "pong"}}], worker.output()
    print(f"ping, 1 worker, 5 calls: {', '.join(f'{f:.3f}' for f in figures)} s")
    assert max(figures) < 2.0
    # Every call of this thread used the same reply queue, kept between calls.
    assert len(reply_queues(sqs, unique)) == 1, reply_queues(sqs, unique)


@with_worker
def test_ping__several_workers_answer_within_two_seconds(start_worker: Any, unique: str) -> None:
    """Three workers each get the broadcast and all three answers arrive within 2 s."""
    env = remote_env(unique)
    for _ in range(3):
        start_worker(env, wait=False)
    app = caller(env)
    names = answering(app, 3)
    figures = []
    for _ in range(3):
        started = time.monotonic()
        replies = app.control.ping(timeout=2.0, limit=3)
        figures.append(time.monotonic() - started)
        assert sorted(n for reply in replies for n in reply) == names
    print(f"ping, 3 workers, 3 calls: {', '.join(f'{f:.3f}' for f in figures)} s")
    assert max(figures) < 2.0


@with_worker
def test_ping__from_the_celery_command_line(start_worker: Any, sqs: Any, unique: str) -> None:
    """`celery -A project inspect ping` answers; its reply queue is deleted after the call."""
    env = remote_env(unique)
    start_worker(env)
    (hostname,) = answering(caller(env))
    before = set(reply_queues(sqs, unique))
    started = time.monotonic()
    done = run_python(
        "-m", "celery", "-A", "project", "inspect", "ping", "--timeout", "5", env=env
    )  # fmt: skip
    print(f"celery inspect ping (a new process): {time.monotonic() - started:.2f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{hostname}: OK" in done.stdout and "pong" in done.stdout, done.stdout
    assert set(reply_queues(sqs, unique)) == before


@with_worker
def test_inspect__stats_queues_active_reserved_scheduled(
    start_worker: Any, unique: str, tmp_path: Path
) -> None:
    """stats, active_queues, active, reserved and scheduled describe what the worker holds."""
    env = remote_env(unique)
    start_worker(env, pool="prefork", extra=("--concurrency=1",))
    app = caller(env)
    (hostname,) = answering(app)
    inspect = app.control.inspect(timeout=3.0, limit=1)
    stats = only(inspect.stats(), hostname)
    assert stats["pool"]["max-concurrency"] == 1, stats
    queues = only(inspect.active_queues(), hostname)
    assert [q["name"] for q in queues] == ["celery"], queues

    running = app.send_task(SLOW, args=(6.0,))
    waiting = app.send_task(ADD, args=(1, 2))
    later = app.send_task(ADD, args=(3, 4), countdown=60)
    assert wait_for(lambda: bool(only(inspect.active(), hostname)), 20)
    assert [t["id"] for t in only(inspect.active(), hostname)] == [running.id]
    assert wait_for(
        lambda: [t["id"] for t in only(inspect.reserved(), hostname)] == [waiting.id], 20
    ), only(inspect.reserved(), hostname)
    assert wait_for(
        lambda: [s["request"]["id"] for s in only(inspect.scheduled(), hostname)] == [later.id], 20
    ), only(inspect.scheduled(), hostname)


@with_worker
def test_revoke__a_scheduled_task_never_runs(
    start_worker: Any, unique: str, tmp_path: Path
) -> None:
    """control revoke reaches the worker at once: revoked lists the id and the task never runs."""
    env = remote_env(unique)
    worker = start_worker(env)
    app = caller(env)
    (hostname,) = answering(app)
    journal = tmp_path / "journal"
    revoked = app.send_task(JOURNAL, args=(str(journal), "revoked"), countdown=5)
    kept = app.send_task(JOURNAL, args=(str(journal), "kept"), countdown=5)
    inspect = app.control.inspect(timeout=3.0, limit=1)
    assert wait_for(lambda: len(only(inspect.scheduled(), hostname)) == 2, 20)
    answer = app.control.revoke(revoked.id, reply=True, timeout=3.0, limit=1)
    assert len(answer) == 1 and revoked.id in answer[0][hostname]["ok"], answer
    assert revoked.id in only(inspect.revoked(), hostname)
    assert wait_for(lambda: f"[{kept.id}] succeeded" in worker.output(), 30), worker.output()
    assert f"Discarding revoked task: {JOURNAL}[{revoked.id}]" in worker.output()
    assert [tag for tag, _ in runs(journal)] == ["kept"]


@with_worker
def test_control__rate_limit_pool_and_consumers(start_worker: Any, sqs: Any, unique: str) -> None:
    """rate_limit, pool_grow, pool_shrink, add_consumer and cancel_consumer change the worker."""
    env = remote_env(unique)
    start_worker(env, pool="prefork", extra=("--concurrency=1",))
    app = caller(env)
    (hostname,) = answering(app)
    call = {"reply": True, "timeout": 3.0, "limit": 1}
    inspect = app.control.inspect(timeout=3.0, limit=1)

    answer = app.control.rate_limit(ADD, "10/m", **call)
    assert answer == [{hostname: {"ok": "new rate limit set successfully"}}], answer
    registered = only(inspect.registered("rate_limit"), hostname)
    assert f"{ADD} [rate_limit=10/m]" in registered, registered

    assert app.control.pool_grow(2, **call) == [{hostname: {"ok": "pool will grow"}}]
    assert wait_for(lambda: len(only(inspect.stats(), hostname)["pool"]["processes"]) == 3, 20)
    assert app.control.pool_shrink(1, **call) == [{hostname: {"ok": "pool will shrink"}}]
    assert wait_for(lambda: len(only(inspect.stats(), hostname)["pool"]["processes"]) == 2, 20)

    answer = app.control.add_consumer("extra", **call)
    assert answer == [{hostname: {"ok": "add consumer extra"}}], answer
    names = lambda: sorted(q["name"] for q in only(inspect.active_queues(), hostname))  # noqa: E731
    assert wait_for(lambda: names() == ["celery", "extra"], 20), names()
    sqs.get_queue_url(QueueName=f"{unique}-extra")  # declared by the worker
    answer = app.control.cancel_consumer("extra", **call)
    assert answer == [{hostname: {"ok": "no longer consuming from extra"}}], answer
    assert wait_for(lambda: names() == ["celery"], 20), names()


@with_worker
@pytest.mark.parametrize("sts", [False, True], ids=["keys", "sts"])
def test_predefined_queues__mailbox_and_replies_created_with_the_connection_credentials(
    start_worker: Any,
    sqs: Any,
    sqs_endpoint: str,
    unique: str,
    tmp_path: Path,
    monkeypatch: Any,
    sts: bool,
) -> None:
    """Under predefined_queues (with an STS role too) the mailbox and reply queues, never
    predefined, still work."""
    name = f"{unique}-jobs"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    extra: dict[str, str] = {}
    if sts:
        # kombu asks STS through boto3's default client: the local server's, here.
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sqs_endpoint)
        extra = {
            "SQS_STS_ROLE_ARN": "arn:aws:iam::123456789012:role/celery",
            "AWS_ENDPOINT_URL_STS": sqs_endpoint,
        }
    env = remote_env(unique, SQS_PREDEFINED_QUEUES=json.dumps({name: {"url": url}}), **extra)
    worker = start_worker(env, queues="jobs")
    app = caller(env)
    (hostname,) = answering(app)
    assert app.control.ping(timeout=2.0, limit=1) == [{hostname: {"ok": "pong"}}]
    queues = only(app.control.inspect(timeout=3.0, limit=1).active_queues(), hostname)
    assert [q["name"] for q in queues] == ["jobs"]
    journal = tmp_path / "journal"
    app.send_task(JOURNAL, args=(str(journal), "ran"), queue="jobs")
    assert wait_for(lambda: [t for t, _ in runs(journal)] == ["ran"], 30), worker.output()
    pidbox = sqs.list_queues(QueueNamePrefix=f"{unique}-w0-").get("QueueUrls", [])
    mailbox = entity_name(f"{unique}-{hostname}.celery.pidbox")
    assert [u.rsplit("/", 1)[-1] for u in pidbox] == [mailbox]


@with_worker
def test_shutdown__the_worker_stops(start_worker: Any, unique: str) -> None:
    """control shutdown stops the worker it is sent to (a warm shutdown)."""
    env = remote_env(unique)
    worker = start_worker(env)
    app = caller(env)
    (hostname,) = answering(app)
    app.control.shutdown(destination=[hostname])
    assert wait_for(lambda: worker.process.poll() is not None, 30), worker.output()
    assert worker.process.returncode == 0
    assert "Got shutdown from remote" in worker.output()


def test_transport__declares_fanout_only_with_sns() -> None:
    """Celery starts a worker's mailbox only on a transport listing fanout: with supports_fanout."""
    from kombu import Connection

    on = Connection("sqs://", transport="sqs_broker.transport:Transport",
                    transport_options={"supports_fanout": True})  # fmt: skip
    off = Connection("sqs://", transport="sqs_broker.transport:Transport")
    assert on.supports_exchange_type("fanout") and on.supports_exchange_type("direct")
    assert not off.supports_exchange_type("fanout") and off.supports_exchange_type("direct")


@with_worker
def test_reply__to_a_caller_that_is_gone_creates_no_queue(
    start_worker: Any, sqs: Any, unique: str
) -> None:
    """A reply whose queue no longer exists is dropped: the worker never creates it."""
    env = remote_env(unique)
    worker = start_worker(env)
    app = caller(env)
    answering(app)
    exchange = Exchange("celery.pidbox", type="fanout", durable=False)
    request = {
        "method": "ping",
        "arguments": {},
        "destination": None,
        "pattern": None,
        "matcher": None,
        "ticket": "t-gone",
        "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "gone-caller"},
    }
    with app.connection_for_write() as conn:
        Producer(conn.default_channel).publish(request, exchange=exchange, declare=[exchange])
    gone = f"{unique}-gone-caller-reply-celery-pidbox"
    assert wait_for(lambda: f"Reply queue {gone} no longer exists" in worker.output(), 20), (
        worker.output()
    )
    assert sqs.list_queues(QueueNamePrefix=f"{unique}-gone").get("QueueUrls", []) == []


def test_transport__sns_client_has_deadlines() -> None:
    """The SNS client (mailbox subscription, broadcasts) gets the transport's timeouts, the SQS
    client kombu's configuration as before."""
    from types import SimpleNamespace

    from sqs_broker.transport import Channel

    channel = Channel.__new__(Channel)
    channel.connection = SimpleNamespace(
        client=SimpleNamespace(transport_options={}, hostname=None, port=None)
    )
    keys = {"region": "us-east-1", "access_key_id": "k", "secret_access_key": "s"}
    sns = channel._new_boto_client(service="sns", **keys).meta.config
    assert (sns.connect_timeout, sns.read_timeout) == (
        Channel.connect_timeout,
        Channel.request_timeout,
    )
    assert sns.retries["total_max_attempts"] == 2
    sqs = channel._new_boto_client(service="sqs", **keys).meta.config
    assert sqs.read_timeout == 60  # botocore's: the transport bounds SQS calls its own way
