"""sqs_broker.pidbox_cleanup: a worker's mailbox and subscription removed at warm shutdown."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from celery import signals

from sqs_broker import pidbox_cleanup
from sqs_broker.topology import Topology
from tests.support.env import base_env, make_app
from tests.test_mailboxes import Account, remote_app


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
