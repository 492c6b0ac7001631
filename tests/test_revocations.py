"""Tests of sqs_broker.revocations: revoking, reading, expiry and the default expiry from SQS."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from sqs_broker import revocations
from sqs_broker.models import Revocation
from sqs_broker.topology import Topology
from tests.support.env import base_env, make_app


@pytest.mark.django_db
def test_revoke__stores_who_when_why_and_audits(caplog) -> None:
    """Each id gets a row with the user, reason and expiry, and one audit line names them all."""
    before = timezone.now()
    with caplog.at_level(logging.INFO, logger="sqs_broker.audit"):
        outcome = revocations.revoke(["a", "b", "a"], user="alice", reason="bad input", expires=60)
    assert (outcome.added, outcome.renewed) == (["a", "b"], [])
    rows = {r.task_id: r for r in Revocation.objects.all()}
    assert sorted(rows) == ["a", "b"]
    row = rows["a"]
    assert (row.revoked_by, row.reason) == ("alice", "bad input")
    assert row.revoked_at >= before
    assert row.expires_at == row.revoked_at + timedelta(seconds=60) == outcome.expires_at
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert record.getMessage() == (
        f"sqs_broker.revocations.revoke by alice: revoked a, b until "
        f"{outcome.expires_at.isoformat(timespec='seconds')} (bad input)"
    )


@pytest.mark.django_db
def test_revoke__again_renews_the_expiry() -> None:
    """An id revoked twice keeps one row, with the later expiry, user and reason."""
    revocations.revoke(["a"], user="alice", expires=60)
    outcome = revocations.revoke(["a", "c"], user="bob", reason="again", expires=3600)
    assert (outcome.added, outcome.renewed) == (["c"], ["a"])
    row = Revocation.objects.get(task_id="a")
    assert (row.revoked_by, row.reason, row.expires_at) == ("bob", "again", outcome.expires_at)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("ids", "kwargs", "message"),
    [
        ([], {}, "at least one task id"),
        ([""], {}, "non-empty string"),
        ([" a"], {}, "without surrounding spaces"),
        (["x" * 256], {}, "at most 255 characters"),
        (["a"], {"expires": 0}, "from 1 to 1209600"),
        (["a"], {"expires": 14 * 86400 + 1}, "from 1 to 1209600"),
        (["a"], {"expires": True}, "from 1 to 1209600"),
        (["a"], {"reason": "r" * 501}, "at most 500 characters"),
        (["a"], {"user": ""}, "Say who revokes"),
    ],
)
def test_revoke__bad_input_named(ids, kwargs, message) -> None:
    """Bad ids, expiry, reason or user: a ValueError naming it, and nothing stored."""
    arguments = {"user": "alice", "expires": 60, **kwargs}
    with pytest.raises(ValueError, match=message):
        revocations.revoke(ids, **arguments)
    assert not Revocation.objects.exists()


@pytest.mark.django_db
def test_active__unexpired_only_newest_first_and_pruned_on_revoke() -> None:
    """Expired rows are not active; the next revoke deletes them."""
    now = timezone.now()
    Revocation.objects.create(
        task_id="old", revoked_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1),
        revoked_by="alice",
    )  # fmt: skip
    revocations.revoke(["first"], user="alice", expires=60)
    revocations.revoke(["second"], user="bob", reason="why", expires=60)
    assert [r.task_id for r in revocations.active()] == ["second", "first"]
    assert revocations.active_ids() == {"first": ("alice", ""), "second": ("bob", "why")}
    assert not Revocation.objects.filter(task_id="old").exists()


@pytest.mark.django_db
def test_forget__withdraws_and_audits_only_what_was_revoked(caplog) -> None:
    """forget() deletes the rows of revoked ids and says which; unknown ids are skipped."""
    revocations.revoke(["a", "b"], user="alice", expires=60)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sqs_broker.audit"):
        assert revocations.forget(["b", "zzz"], user="bob") == ["b"]
    assert revocations.active_ids().keys() == {"a"}
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert record.getMessage() == "sqs_broker.revocations.forget by bob: revocation withdrawn of b"


@pytest.mark.django_db
def test_default_expiry__longest_retention_of_the_apps_queues(sqs, unique) -> None:
    """The longest MessageRetentionPeriod of the app's queues; SQS's 4 days, said why, if none."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-")
    app = make_app(env, task_queues=None)
    with override_settings(SQS_BROKER_CELERY_APP=app):
        assert revocations.default_expiry(Topology.of(app)) == (
            4 * 86400,
            f"SQS's default retention; the app's queues could not be read ({unique}-celery: "
            "QueueDoesNotExist on GetQueueUrl: The specified queue does not exist.)",
        )
        sqs.create_queue(
            QueueName=f"{unique}-celery", Attributes={"MessageRetentionPeriod": "864000"}
        )
        assert revocations.default_expiry(Topology.of(app)) == (
            864000,
            "the longest message retention of the app's queues",
        )


@pytest.mark.django_db
def test_default_expiry__unreadable_queues_said(unique) -> None:
    """SQS unreachable: 4 days, and the reason names a queue and its error."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL="http://127.0.0.1:9")
    app = make_app(env)
    with override_settings(SQS_BROKER_CELERY_APP=app):
        seconds, why = revocations.default_expiry(Topology.of(app))
    assert seconds == 4 * 86400
    assert why.startswith(
        f"SQS's default retention; the app's queues could not be read ({unique}-celery: "
    )
