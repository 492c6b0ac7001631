"""Tests of sqs_broker.revocation_sync: the database's revocations in Celery's revoked set, and
real workers (prefork and solo, on the local SQS) that discard revoked tasks unrun."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.worker import state
from django.core.management import call_command

from sqs_broker import revocation_sync, revocations
from sqs_broker.models import TaskCounter
from tests.support.env import make_app
from tests.test_faults import JOURNAL, depth, runs, wait_for, with_worker, worker_env


@pytest.fixture
def celery_state() -> Iterator[None]:
    """Celery's revoked set, empty before and after the test."""
    state.revoked.clear()
    yield
    state.revoked.clear()


def test_apply__adds_and_takes_out_only_its_own_ids(celery_state) -> None:
    """Ids come and go with the database; an id remote control revoked is never taken out."""
    sync = revocation_sync.Sync(interval=5)
    state.revoked.add("by-remote-control")
    sync.apply({"a": ("alice", ""), "by-remote-control": ("bob", "")})
    assert set(state.revoked) == {"a", "by-remote-control"}
    sync.apply({"b": ("alice", "why")})
    assert set(state.revoked) == {"b", "by-remote-control"}
    assert sync.known == {"b": ("alice", "why")}


def test_apply__puts_back_an_id_celery_dropped(celery_state) -> None:
    """An id Celery's set purged (it was full) is added again at the next refresh."""
    sync = revocation_sync.Sync(interval=5)
    sync.apply({"a": ("alice", "")})
    state.revoked.discard("a")
    sync.apply({"a": ("alice", "")})
    assert "a" in state.revoked


# transaction=True: each read closes its connection, which a test's open transaction forbids.
@pytest.mark.django_db(transaction=True)
def test_refresh__reads_the_database_and_logs_a_failure_once(
    celery_state, caplog, monkeypatch
) -> None:
    """A refresh applies the unexpired rows; a database error is logged once, not per refresh."""
    revocations.revoke(["t-1"], user="alice", expires=60)
    sync = revocation_sync.Sync(interval=5)
    sync.refresh()
    assert "t-1" in state.revoked and sync.reads == 1

    def broken() -> dict[str, tuple[str, str]]:
        raise RuntimeError("database gone")

    with monkeypatch.context() as patched:
        patched.setattr(revocations, "active_ids", broken)
        sync.refresh()
        sync.refresh()
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == [
        "revocations: could not read the revoked task ids (database gone); tasks revoked since "
        "the last read still run here. Trying again every 5 s."
    ]
    assert "t-1" in state.revoked  # what was read stays until the database says otherwise
    sync.refresh()
    assert "the revoked task ids can be read again" in caplog.text


def _revoked_count(queue: str) -> int:
    return sum(TaskCounter.objects.filter(queue=queue).values_list("revoked", flat=True))


def _env(unique: str, **overrides: str) -> dict[str, str]:
    return worker_env(
        unique,
        SQS_BROKER_TELEMETRY="true",
        SQS_BROKER_TELEMETRY_INTERVAL="1",
        SQS_BROKER_REVOCATION_REFRESH="1",
        **overrides,
    )


@with_worker
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_worker_started_later__discards_the_revoked_task(
    pool: str, start_worker: Any, sqs: Any, unique: str, tmp_path: Path
) -> None:
    """Revoked before any worker runs: the worker started afterwards acknowledges it unrun."""
    env = _env(unique)
    queue = f"{unique}-celery"
    sqs.create_queue(QueueName=queue)
    journal = tmp_path / "journal"
    app = make_app(env)
    revoked = app.send_task(JOURNAL, args=(str(journal), "revoked"))
    call_command("sqs_revoke", revoked.id, "--expires", "300", "--reason", "test")
    kept = app.send_task(JOURNAL, args=(str(journal), "kept"))

    extra = ("--concurrency=2",) if pool == "prefork" else ()
    worker = start_worker(env, pool=pool, extra=extra)
    assert wait_for(lambda: [t for t, _ in runs(journal)] == ["kept"], 60), worker.output()
    # The journal line comes before the task returns: wait for its log line too.
    assert wait_for(lambda: f"[{kept.id}] succeeded" in worker.output(), 30), worker.output()
    log = worker.output()
    assert f"Discarding revoked task: {JOURNAL}[{revoked.id}]" in log
    assert f"Task {JOURNAL}[{revoked.id}] not run: revoked in the database by " in log
    assert "(test); its message was acknowledged." in log
    # Acknowledged: nothing visible, nothing left in flight to come back.
    assert wait_for(lambda: depth(sqs, queue) == (0, 0), 30), depth(sqs, queue)
    assert wait_for(lambda: _revoked_count(queue) == 1, 30), log
    assert [t for t, _ in runs(journal)] == ["kept"]


@with_worker
def test_running_worker__picks_up_a_revocation_within_the_refresh(
    start_worker: Any, sqs: Any, unique: str, tmp_path: Path
) -> None:
    """A worker already running refuses a task revoked after it started (countdown tasks)."""
    env = _env(unique)
    queue = f"{unique}-celery"
    worker = start_worker(env)
    journal = tmp_path / "journal"
    app = make_app(env)
    revoked = app.send_task(JOURNAL, args=(str(journal), "revoked"), countdown=6)
    kept = app.send_task(JOURNAL, args=(str(journal), "kept"), countdown=6)
    revocations.revoke([revoked.id], user="alice", expires=300)
    assert wait_for(lambda: "revocations: 1 task id(s) revoked" in worker.output(), 10)
    assert wait_for(lambda: f"[{kept.id}] succeeded" in worker.output(), 60), worker.output()
    assert wait_for(
        lambda: f"Discarding revoked task: {JOURNAL}[{revoked.id}]" in worker.output(), 30
    )
    assert [t for t, _ in runs(journal)] == ["kept"]
    assert wait_for(lambda: depth(sqs, queue) == (0, 0), 30), depth(sqs, queue)


@with_worker
def test_expired_revocation__no_longer_applies(
    start_worker: Any, sqs: Any, unique: str, tmp_path: Path
) -> None:
    """A revocation past its expiry is not loaded: the task runs."""
    env = _env(unique)
    sqs.create_queue(QueueName=f"{unique}-celery")
    journal = tmp_path / "journal"
    app = make_app(env)
    expired = app.send_task(JOURNAL, args=(str(journal), "ran"))
    revocations.revoke([expired.id], user="alice", expires=1)
    # Beside it, one still revoked: this worker did read the revocations.
    live = app.send_task(JOURNAL, args=(str(journal), "refused"))
    revocations.revoke([live.id], user="alice", expires=300)
    time.sleep(1.5)
    worker = start_worker(env)
    assert wait_for(lambda: f"Discarding revoked task: {JOURNAL}[{live.id}]" in worker.output(), 60)
    assert wait_for(lambda: [t for t, _ in runs(journal)] == ["ran"], 60), worker.output()
    assert f"Discarding revoked task: {JOURNAL}[{expired.id}]" not in worker.output()


def test_install_hooks__revocation_step_only_when_on() -> None:
    """SQS_BROKER_REVOCATIONS connects the worker hook; False leaves workers as they were."""
    from types import SimpleNamespace

    from celery import Celery, signals
    from django.test import override_settings

    from sqs_broker.apps import _install_revocations, install_hooks

    def connected() -> bool:
        return any(
            receiver is _install_revocations for _, receiver in signals.celeryd_init.receivers
        )

    app = Celery("hooks", set_as_current=False)
    signals.celeryd_init.disconnect(_install_revocations)
    try:
        # The process's log scrubbing is left as it is.
        quiet = {"SQS_BROKER_CELERY_APP": app, "SQS_BROKER_LOG_SCRUBBING": False}
        with override_settings(**quiet, SQS_BROKER_REVOCATIONS=False):
            install_hooks()
        assert not connected()
        with override_settings(**quiet):
            install_hooks()
        assert connected()
    finally:
        signals.celeryd_init.connect(_install_revocations, weak=False)
    _install_revocations(instance=SimpleNamespace(app=app))
    assert revocation_sync.RevocationStep in app.steps["worker"]
