"""sqs_broker.control: a caller's reply queue named after its process and thread, installed by
the app's hooks only with SQS_BROKER_REMOTE_CONTROL."""

from __future__ import annotations

import threading

from celery import Celery
from django.test import override_settings

from sqs_broker import control
from sqs_broker.apps import install_hooks


def test_install__one_reply_queue_per_thread_for_every_call() -> None:
    """Every call of a thread (a new bound mailbox each time) names one reply queue; another
    thread gets its own; kombu's mailbox names a new one per call."""
    app = Celery("control", set_as_current=False)
    # Two calls' mailboxes alive at once: kombu names each reply queue after its object.
    stock = [app.control.mailbox(None) for _ in range(2)]
    assert stock[0].reply_queue.name != stock[1].reply_queue.name
    control.install(app)
    control.install(app)  # twice is once
    kept = [app.control.mailbox(None) for _ in range(2)]
    first, second = (box.reply_queue.name for box in kept)
    assert first == second and first.endswith(".reply.celery.pidbox")
    elsewhere: list[str] = []
    thread = threading.Thread(target=lambda: elsewhere.append(app.control.mailbox(None).oid))
    thread.start()
    thread.join()
    assert elsewhere and f"{elsewhere[0]}.reply.celery.pidbox" != first


def test_install_hooks__remote_control_only_with_its_setting(plain_factory: None) -> None:
    """SqsBrokerConfig.ready() gives the app the kept reply queue only with the setting on."""
    on = Celery("on", set_as_current=False)
    with override_settings(SQS_BROKER_CELERY_APP=on, SQS_BROKER_REMOTE_CONTROL=True):
        install_hooks()
    assert isinstance(on.control.mailbox, control.KeptReplyMailbox)
    off = Celery("off", set_as_current=False)
    with override_settings(SQS_BROKER_CELERY_APP=off):
        install_hooks()
    assert not isinstance(off.control.mailbox, control.KeptReplyMailbox)
