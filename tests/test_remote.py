"""Tests of sqs_broker.remote: the calls it makes from the heartbeats, and what it makes of replies.

Celery's ``app.control`` is replaced by ``tests.support.remote.Control``, which
records each call and answers as the named workers would (Celery's reply
shapes); the real-worker tests over SNS and SQS are in tests/dashboard/test_workers.py.
"""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.utils import timezone

from sqs_broker import remote
from tests.support.remote import ACTIVE, SCHEDULED, Control, beat, remote_app


@pytest.mark.django_db
def test_tasks__off_asks_nothing():
    """With remote control off, nothing is sent and the answer says it is off."""
    control = Control({"celery@a": {"active": []}})
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(control, on=False)):
        found = remote.tasks()
    assert found.enabled is False and found.workers == []
    assert control.calls == []


@pytest.mark.django_db
def test_tasks__limit_from_heartbeats_and_silent_workers_named():
    """limit = the live workers (not lost, stopped or beat); the silent one is named."""
    beat("celery@a")
    beat("celery@b", pool="threads")
    beat("celery@lost", seconds_ago=600)
    beat("celery@gone", stopped_at=timezone.now())
    beat("beat@host", pool="beat")
    control = Control({"celery@a": {"active": ACTIVE, "reserved": [], "scheduled": SCHEDULED}})
    with override_settings(
        SQS_BROKER_CELERY_APP=remote_app(control), SQS_BROKER_REMOTE_TIMEOUT=0.7
    ):
        found = remote.tasks()
    first, *rest = control.calls
    assert first == ("active", {"timeout": 0.7, "limit": 2, "destination": None})
    # The next calls ask only who answered the first: the silent one is waited for once.
    assert rest == [
        (kind, {"timeout": 0.7, "limit": 1, "destination": ["celery@a"]})
        for kind in ("reserved", "scheduled")
    ]
    assert found.expected == 2 and found.missing == ["celery@b"]
    a, b = found.workers
    assert (a.hostname, a.answered, a.pool, a.can_terminate) == ("celery@a", True, "prefork", True)
    assert (b.hostname, b.answered, b.can_terminate, b.can_resize) == (
        "celery@b",
        False,
        False,
        False,
    )
    (running,) = a.active
    assert (running.id, running.name, running.worker_pid) == ("t-1", "project.demo.add", 42)
    assert running.started == "2023-11-14T22:13:20+00:00"
    (waiting,) = a.scheduled
    assert (waiting.id, waiting.eta, waiting.kind) == (
        "t-2",
        "2030-01-01T00:00:00+00:00",
        "scheduled",
    )


@pytest.mark.django_db
def test_tasks__arguments_scrubbed_and_cut(monkeypatch):
    """A known secret in a task's arguments is masked; long arguments are cut."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-secret-0123456789abcdef")
    request = {"id": "t", "name": "n", "args": ["canary-secret-0123456789abcdef", "y" * 500]}
    control = Control({"celery@a": {"active": [request], "reserved": [], "scheduled": []}})
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(control)):
        (worker,) = remote.tasks().workers
    shown = worker.active[0].args
    assert "canary-secret" not in shown
    assert len(shown) == remote.MAX_ARGS_SHOWN and shown.endswith("…")


@pytest.mark.django_db
def test_tasks__unknown_who_should_answer_without_heartbeats():
    """Without heartbeats no limit is set (the call waits its timeout); nobody named missing."""
    control = Control({"celery@a": {"active": [], "reserved": [], "scheduled": []}})
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(control)):
        found = remote.tasks()
    assert control.calls[0][1]["limit"] is None  # nobody known: the first call waits it out
    assert control.calls[1][1]["destination"] == ["celery@a"]
    assert found.expected is None and found.missing == []
    assert [w.hostname for w in found.workers] == ["celery@a"]


@pytest.mark.django_db
def test_tasks__nobody_answering_is_asked_once():
    """When no worker answers the first call, the other two are not sent: one timeout in all."""
    beat("celery@a")
    control = Control({})
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(control)):
        found = remote.tasks()
    assert [c[0] for c in control.calls] == ["active"]
    assert found.missing == ["celery@a"] and found.error is None
    assert [(w.hostname, w.answered) for w in found.workers] == [("celery@a", False)]


@pytest.mark.django_db
def test_tasks__a_failed_call_is_said():
    """The broker refusing the call is an error on the answer, not an exception or 'no task'."""
    beat("celery@a")
    control = Control({}, fail=ConnectionError("SNS said no"))
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(control)):
        found = remote.tasks()
    assert found.error == "ConnectionError: SNS said no"
    assert found.missing == ["celery@a"]


@pytest.mark.django_db
def test_revoke__terminate_only_where_the_pool_can():
    """The revoke goes to all; terminate to the prefork worker only; the threads one is named."""
    beat("celery@p")
    beat("celery@t", pool="threads")
    ok = {"revoke": {"ok": "tasks {'x'} flagged as revoked"}}
    control = Control({"celery@p": ok, "celery@t": ok})
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(control)):
        outcome = remote.revoke("x", terminate=True)
    (everyone, stop) = control.calls
    assert everyone[1]["destination"] is None and "terminate" not in everyone[1]
    assert everyone[1]["limit"] == 2
    assert stop[1]["destination"] == ["celery@p"] and stop[1]["terminate"] is True
    assert stop[1]["signal"] == "SIGTERM" and stop[1]["limit"] == 1
    assert sorted(outcome.done) == ["celery@p", "celery@t"]
    assert outcome.notes == [
        "Not stopped on celery@t if it runs there: the threads pool cannot terminate a task"
    ]
    assert outcome.missing == [] and outcome.refused == {}


@pytest.mark.django_db
def test_revoke__terminate_without_heartbeats_is_sent_to_none():
    """Without heartbeats nobody's pool is known: the revoke goes out, terminate to no one, said."""
    control = Control({"celery@a": {"revoke": {"ok": "revoked"}}})
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(control)):
        outcome = remote.revoke("x", terminate=True)
    assert [c[1].get("terminate") for c in control.calls] == [None]
    assert list(outcome.done) == ["celery@a"]
    assert outcome.notes == [
        "Terminate was sent to no worker: no heartbeat says which pool each one runs"
    ]


@pytest.mark.django_db
def test_actions__refusals_and_silence_named():
    """An error reply is a refusal; an asked worker that stays silent is missing."""
    beat("celery@a")
    beat("celery@b")
    control = Control({"celery@a": {"pool_grow": {"error": "autoscale on"}}})
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(control)):
        grown = remote.resize_pool("celery@a", 2)
        limited = remote.rate_limit("project.demo.add", "10/m")
    assert control.calls[0] == (
        "pool_grow",
        {"n": 2, "destination": ["celery@a"], "reply": True, "timeout": 2, "limit": 1},
    )
    assert grown.refused == {"celery@a": "autoscale on"} and grown.missing == []
    assert control.calls[1][1]["limit"] == 2 and control.calls[1][1]["destination"] is None
    assert limited.missing == ["celery@a", "celery@b"] and not limited.done


@pytest.mark.django_db
def test_shutdown__sent_without_waiting():
    """Celery's shutdown has no reply: sent with reply=False, to the one worker."""
    control = Control({})
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(control)):
        outcome = remote.shutdown("celery@a")
    assert control.calls == [("shutdown", {"destination": ["celery@a"], "reply": False})]
    assert outcome.sent_only and outcome.error is None


def test_resize_pool__zero_is_refused():
    """Resizing by 0 is a clear error, not a call."""
    with pytest.raises(ValueError, match="at least 1"):
        remote.resize_pool("celery@a", 0)
