"""sqs_broker.pidbox_cleanup: a worker's mailbox and subscription removed at warm shutdown."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from celery import signals

from sqs_broker import pidbox_cleanup
from sqs_broker.topology import Topology
from tests.support.env import base_env, database_url, make_app, run_python
from tests.test_faults import wait_for, with_worker
from tests.test_mailboxes import Account, remote_app
from tests.test_remote_control import caller, remote_env


def _connected() -> bool:
    return any(
        receiver_key[0] == pidbox_cleanup.__name__
        for receiver_key, *_ in signals.worker_shutdown.receivers
    )


def test_install__only_with_remote_control() -> None:
    """Without remote control nothing is connected; with it, the shutdown handler is."""
    signals.worker_shutdown.disconnect(dispatch_uid=pidbox_cleanup.__name__)
    pidbox_cleanup.install(make_app(base_env()))
    assert not _connected()
    pidbox_cleanup.install(remote_app("x-"))
    assert _connected()
    signals.worker_shutdown.disconnect(dispatch_uid=pidbox_cleanup.__name__)


def test_shutdown__removes_the_mailbox_and_subscription(
    sqs: Any, sqs_endpoint: str, unique: str, caplog: Any
) -> None:
    """The worker's own mailbox and its subscription go; another worker's stay."""
    app = remote_app(f"{unique}-")
    topo = Topology.of(app)
    account = Account(sqs, sqs_endpoint, topo)
    mine, other = topo.pidbox_queue("celery@me"), topo.pidbox_queue("celery@other")
    account.mailbox(mine)
    account.mailbox(other)
    with caplog.at_level("INFO", logger=pidbox_cleanup.__name__):
        pidbox_cleanup._on_shutdown(sender=SimpleNamespace(hostname="celery@me", app=app))
    assert account.queues(f"{unique}-") == {other}
    assert account.subscribed() == {other}
    assert f"Removed the remote-control mailbox {mine} and 1 SNS" in caplog.text


def test_shutdown__a_failure_is_logged_not_raised(unique: str, caplog: Any) -> None:
    """SNS or SQS unreachable: a warning naming the sweep, and the shutdown goes on."""
    app = remote_app(f"{unique}-")
    app.conf.broker_url = "sqs://127.0.0.1:9"  # nothing listens there
    pidbox_cleanup._on_shutdown(sender=SimpleNamespace(hostname="celery@me", app=app))
    assert "sqs_remote sweep removes it later" in caplog.text


@with_worker
def test_warm_shutdown__real_worker_leaves_no_mailbox(
    start_worker: Any, sqs: Any, sqs_endpoint: str, unique: str
) -> None:
    """A real worker's mailbox and subscription exist while it answers, and are gone after
    its warm shutdown (SIGTERM)."""
    env = remote_env(unique)
    worker = start_worker(env)
    app = caller(env)
    assert wait_for(lambda: bool(app.control.ping(timeout=1.0, limit=1)), 30), worker.output()
    (hostname,) = app.control.ping(timeout=2.0, limit=1)[0]
    topo = Topology.of(app)
    account = Account(sqs, sqs_endpoint, topo)
    mailbox = topo.pidbox_queue(hostname)
    assert mailbox in account.queues(f"{unique}-")
    assert mailbox in account.subscribed()
    assert worker.stop() == 0
    assert "Removed the remote-control mailbox" in worker.output(), worker.output()
    assert mailbox not in account.queues(f"{unique}-")
    assert mailbox not in account.subscribed()


def _reply_queues(sqs: Any, unique: str) -> set[str]:
    urls = sqs.list_queues(QueueNamePrefix=f"{unique}-").get("QueueUrls", [])
    return {u.rsplit("/", 1)[-1] for u in urls if u.endswith("-reply-celery-pidbox")}


@with_worker
def test_exit__a_callers_reply_queue_goes_with_it(start_worker: Any, sqs: Any, unique: str) -> None:
    """A process that called remote control (the project's app, set up by Django) and exits
    leaves no reply queue behind."""
    env = remote_env(unique)
    worker = start_worker(env)
    app = caller(env)
    assert wait_for(lambda: bool(app.control.ping(timeout=1.0, limit=1)), 30), worker.output()
    before = _reply_queues(sqs, unique)
    script = (
        "import django; django.setup(); from project.celery import app; "
        "print(len(app.control.ping(timeout=3.0, limit=1)))"
    )
    done = run_python(
        "-c",
        script,
        env={**env, "DATABASE_URL": database_url(), "DJANGO_SECRET_KEY": "x" * 50},
    )
    assert done.stdout.strip() == "1", done.stdout + done.stderr
    assert _reply_queues(sqs, unique) == before
